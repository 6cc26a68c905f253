package profile

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/pelletier/go-toml/v2"
)

// codex configures both Codex adapters: @agentclientprotocol/codex-acp and
// Zed's codex-acp. Both run the Codex core, which reads $CODEX_HOME.
func (b *builder) codex() error {
	codexHome := filepath.Join(b.home, ".codex")
	b.set("CODEX_HOME", codexHome)
	b.l.Dirs = append(b.l.Dirs, codexHome)
	b.setSecret(EnvMCPToken, b.spec.MCP.Token)
	if b.p.Name == Codex {
		b.set("INITIAL_AGENT_MODE", b.p.InitialMode)
	}
	cc := &codexConfig{
		serverName: b.spec.MCP.Name,
		serverURL:  b.spec.MCP.URL,
		model:      b.spec.Model,
		env:        b.env, // the final environment: ExtraEnv lands in the same map
	}
	c := b.spec.Credential
	switch c.kind() {
	case KindAPIKey:
		b.setSecret("OPENAI_API_KEY", c.Secret)
		if c.BaseURL != "" {
			// Codex ignores OPENAI_BASE_URL: a custom endpoint needs a
			// provider block.
			cc.provider = providerBlock(c.BaseURL, "OPENAI_API_KEY")
		} else {
			b.l.AuthMethod = "api-key"
			if b.p.Name == CodexZed {
				b.l.AuthMethod = "openai-api-key"
			}
			b.note("after initialize, authenticate {\"methodId\":%q} (codex-acp 2.6 answers session/new with -32000 Authentication required without it)", b.l.AuthMethod)
		}
	case KindOAuthToken:
		// The login lives in auth.json. No provider block, no env_key, no
		// OPENAI_API_KEY: an env-var-backed provider would point Codex at a
		// variable an OAuth launch never sets (SAM's crash).
		cc.oauth = true
		b.secret = append(b.secret, c.Secret.Reveal())
		b.l.Files = append(b.l.Files, File{
			Path:         filepath.Join(codexHome, "auth.json"),
			Mode:         0o600,
			Content:      []byte(c.Secret.Reveal()),
			Secret:       true,
			KeepExisting: true,
		})
		b.note("auth.json is written only when absent: Codex refreshes the login in place, and a restart keeps its refreshed copy")
	case KindPlatformProxy:
		b.setSecret(EnvInferenceToken, c.Secret)
		cc.provider = providerBlock(proxyURL(b.spec.ProxyBaseURL, catalog.ProviderOpenAI), EnvInferenceToken)
		b.note("Codex makes side calls (titles) with other model IDs; the proxy must route or refuse them")
	}
	if len(b.spec.AgentModels) > 0 {
		models, added, err := codexModels(b.spec.AgentModels, b.spec.Models, b.spec.AllowedModels)
		if err != nil {
			return err
		}
		if len(added) > 0 {
			cc.modelCatalog = filepath.Join(codexHome, codexModelsFile)
			b.l.Files = append(b.l.Files, File{Path: cc.modelCatalog, Mode: 0o600, Content: models})
			b.note("Codex's own model catalog lacks %s: model_catalog_json adds the catalog's facts (input window, reasoning efforts) on a copy of its nearest entry", strings.Join(added, ", "))
		}
	}
	content, err := cc.merge(nil)
	if err != nil {
		return err
	}
	b.l.Files = append(b.l.Files, File{
		Path:    filepath.Join(codexHome, "config.toml"),
		Mode:    0o600,
		Content: content,
		merge:   cc.merge,
	})
	b.note("the MCP server %q is in config.toml; if it is also sent in session/new, use the same name so that it replaces the entry", cc.serverName)
	return nil
}

func providerBlock(baseURL, envKey string) map[string]any {
	return map[string]any{
		"name":     ProviderID,
		"base_url": baseURL,
		"env_key":  envKey,
		// "chat" is refused by this Codex.
		"wire_api": "responses",
	}
}

// codexConfig is what the broker owns in Codex's config.toml.
type codexConfig struct {
	serverName string
	serverURL  string
	model      string
	provider   map[string]any // nil: no provider block
	oauth      bool
	env        map[string]string
	// modelCatalog is the model_catalog_json path, or "".
	modelCatalog string
}

const codexHeader = `# Written by agentbroker before the agent starts. It owns model, model_provider,
# approvals_reviewer, model_catalog_json, [model_providers.agentbroker] and its
# own [mcp_servers.*] entry; other keys are kept on rewrite, comments are not.

`

// merge parses existing (which may be empty), replaces the keys the broker
// owns, checks the result against the environment and renders it. The same
// input gives the same bytes: go-toml/v2 sorts map keys.
func (cc *codexConfig) merge(existing []byte) ([]byte, error) {
	cfg := map[string]any{}
	if len(bytes.TrimSpace(existing)) > 0 {
		if err := toml.Unmarshal(existing, &cfg); err != nil {
			return nil, fmt.Errorf("%w: existing config.toml: %v", ErrBadValue, err)
		}
	}
	providers, err := table(cfg, "model_providers")
	if err != nil {
		return nil, err
	}
	// Drop what an earlier launch of this session wrote: the credential
	// kind may have changed (from the proxy to an OAuth login, say).
	delete(providers, ProviderID)
	if mp, _ := cfg["model_provider"].(string); mp == ProviderID {
		delete(cfg, "model_provider")
	}
	if cc.provider != nil {
		providers[ProviderID] = maps.Clone(cc.provider)
		cfg["model_provider"] = ProviderID
	}
	if len(providers) > 0 {
		cfg["model_providers"] = providers
	} else {
		delete(cfg, "model_providers")
	}
	servers, err := table(cfg, "mcp_servers")
	if err != nil {
		return nil, err
	}
	servers[cc.serverName] = map[string]any{
		"url":                  cc.serverURL,
		"bearer_token_env_var": EnvMCPToken,
	}
	cfg["mcp_servers"] = servers
	if cc.model != "" {
		cfg["model"] = cc.model
	}
	if cc.modelCatalog != "" {
		cfg["model_catalog_json"] = cc.modelCatalog
	} else {
		delete(cfg, "model_catalog_json")
	}
	// Codex 0.166's default reviewer of approvals ("auto_review") is a model
	// call to gpt-5.6-luna, which no source we trust prices or limits (the
	// catalog leaves it out and the proxy refuses it). Approvals go to the
	// user instead: the broker, through session/request_permission, where
	// the session's permission policy decides.
	cfg["approvals_reviewer"] = "user"
	if err := checkCodexConfig(cfg, cc.env, cc.oauth); err != nil {
		return nil, err
	}
	out, err := toml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("render config.toml: %w", err)
	}
	return append([]byte(codexHeader), out...), nil
}

// table returns cfg[key] as a table, or a new empty one.
func table(cfg map[string]any, key string) (map[string]any, error) {
	v, ok := cfg[key]
	if !ok {
		return map[string]any{}, nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: config.toml %s is a %T, not a table", ErrBadValue, key, v)
	}
	return t, nil
}

// checkCodexConfig is the config ⊆ env check at write time: every
// environment variable that the selected model provider and every enabled
// MCP server name must be set and non-empty in env, and an OAuth login never
// runs through a provider that takes its key from the environment.
// Unselected providers are not checked: Codex reads only the selected one.
func checkCodexConfig(cfg map[string]any, env map[string]string, oauth bool) error {
	need := func(where, name string) error {
		if env[name] == "" {
			return fmt.Errorf("%w: config.toml %s names %s, which the agent's environment does not set", ErrMissingSecret, where, name)
		}
		return nil
	}
	headers := func(where string, t map[string]any) error {
		h, _ := t["env_http_headers"].(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(h)) {
			if name, ok := h[k].(string); ok {
				if err := need(where+".env_http_headers."+k, name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	selected := "openai" // Codex's built-in provider: OPENAI_API_KEY or auth.json
	if v, ok := cfg["model_provider"]; ok {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: config.toml model_provider is a %T", ErrBadValue, v)
		}
		selected = s
	}
	providers, _ := cfg["model_providers"].(map[string]any)
	if p, ok := providers[selected].(map[string]any); ok {
		where := "model_providers." + selected
		if k, _ := p["env_key"].(string); k != "" {
			if oauth {
				return fmt.Errorf("%w: an OAuth login (auth.json) cannot go through model provider %q, which takes its key from %s", ErrUnsupportedCredential, selected, k)
			}
			if err := need(where+".env_key", k); err != nil {
				return err
			}
		}
		if err := headers(where, p); err != nil {
			return err
		}
	}
	servers, _ := cfg["mcp_servers"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		s, ok := servers[name].(map[string]any)
		if !ok {
			return fmt.Errorf("%w: config.toml mcp_servers.%s is not a table", ErrBadValue, name)
		}
		if enabled, ok := s["enabled"].(bool); ok && !enabled {
			continue
		}
		where := "mcp_servers." + name
		if k, _ := s["bearer_token_env_var"].(string); k != "" {
			if err := need(where+".bearer_token_env_var", k); err != nil {
				return err
			}
		}
		if err := headers(where, s); err != nil {
			return err
		}
	}
	return nil
}
