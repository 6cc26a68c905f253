package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// session makes a 0700 session directory, a working directory and a fake
// install of every profile's entry point, and returns a valid Codex spec
// over them.
func session(t *testing.T) LaunchSpec {
	t.Helper()
	root := t.TempDir()
	spec := validSpec()
	spec.SessionDir = filepath.Join(root, "session")
	spec.Cwd = root
	spec.InstallDir = filepath.Join(root, "install")
	if err := os.Mkdir(spec.SessionDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range All() {
		if p.Entry != "" {
			entry := filepath.Join(spec.InstallDir, p.Entry)
			os.MkdirAll(filepath.Dir(entry), 0o755)
			os.WriteFile(entry, nil, 0o755)
		}
	}
	return spec
}

func mustPrepare(t *testing.T, name Name, spec LaunchSpec) *Launch {
	t.Helper()
	l, err := Build(name, spec)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if err := l.Prepare(); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return l
}

const userConfig = `# my own settings
approval_policy = "never"
model = "o3"
model_provider = "agentbroker"   # stale, from an earlier proxy launch

[projects."/work/project"]
trust_level = "trusted"

[mcp_servers.docs]
command = "docs-mcp"
args = ["--stdio"]

[mcp_servers.off]
url = "http://127.0.0.1:9/mcp"
bearer_token_env_var = "NOT_SET_BUT_DISABLED"
enabled = false

[mcp_servers.broker]
command = "an old stdio entry under our name"

[model_providers.mine]
name = "mine"
base_url = "http://127.0.0.1:9999/v1"
env_key = "MINE_KEY"

[model_providers.agentbroker]
name = "agentbroker"
base_url = "http://stale/proxy/openai/v1"
env_key = "AGENTBROKER_INFERENCE_TOKEN"

[[notify.hooks]]
cmd = "a"
[[notify.hooks]]
cmd = "b"
when = 1979-05-27T07:32:00Z
`

func readConfig(t *testing.T, path string) (string, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return string(b), m
}

// TestCodexConfigMerge: an existing config.toml keeps the user's keys, loses
// what an earlier launch of another credential kind wrote, gets our keys,
// and a second Prepare writes the same bytes.
func TestCodexConfigMerge(t *testing.T) {
	t.Parallel()
	spec := session(t)
	codexHome := filepath.Join(spec.SessionDir, "home", ".codex")
	configPath := filepath.Join(codexHome, "config.toml")
	if err := os.MkdirAll(codexHome, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configPath, []byte(userConfig), 0o644); err != nil {
		t.Fatal(err)
	}

	// 1. An OAuth launch over a config a proxy launch left behind.
	oauth := spec
	oauth.Credential = Credential{Kind: KindOAuthToken, Secret: NewSecret(testAuthJSON)}
	mustPrepare(t, Codex, oauth)
	first, cfg := readConfig(t, configPath)
	if cfg["approval_policy"] != "never" || cfg["model"] != "gpt-5.5" {
		t.Errorf("approval_policy %v, model %v", cfg["approval_policy"], cfg["model"])
	}
	if _, ok := cfg["model_provider"]; ok {
		t.Errorf("OAuth launch kept model_provider = %v", cfg["model_provider"])
	}
	providers := cfg["model_providers"].(map[string]any)
	if _, ok := providers[ProviderID]; ok {
		t.Error("OAuth launch kept the agentbroker provider block")
	}
	if _, ok := providers["mine"]; !ok {
		t.Error("the user's own provider was dropped")
	}
	servers := cfg["mcp_servers"].(map[string]any)
	if _, ok := servers["docs"]; !ok {
		t.Error("the user's MCP server was dropped")
	}
	if b := servers["broker"].(map[string]any); b["command"] != nil || b["url"] != spec.MCP.URL || b["bearer_token_env_var"] != EnvMCPToken {
		t.Errorf("our MCP entry = %v, want it replaced wholesale", b)
	}
	if p := cfg["projects"].(map[string]any)["/work/project"].(map[string]any); p["trust_level"] != "trusted" {
		t.Errorf("projects = %v", p)
	}
	if hooks := cfg["notify"].(map[string]any)["hooks"].([]any); len(hooks) != 2 {
		t.Errorf("array of tables = %v", hooks)
	}
	if strings.Contains(first, "my own settings") {
		t.Log("comments survived (unexpected, but harmless)")
	}
	if fi, _ := os.Stat(configPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("config.toml mode %v after merge, want 0600", fi.Mode())
	}
	if fi, _ := os.Stat(codexHome); fi.Mode().Perm() != 0o700 {
		t.Errorf("CODEX_HOME mode %v, want 0700", fi.Mode())
	}
	authPath := filepath.Join(codexHome, "auth.json")
	if b, _ := os.ReadFile(authPath); string(b) != testAuthJSON {
		t.Error("auth.json not written")
	}

	// 2. Idempotent: the same launch again writes the same bytes, and a
	// refreshed auth.json is kept.
	os.WriteFile(authPath, []byte(`{"refreshed":true}`), 0o600)
	mustPrepare(t, Codex, oauth)
	if again, _ := readConfig(t, configPath); again != first {
		t.Errorf("second Prepare changed config.toml:\n%s\n---\n%s", first, again)
	}
	if b, _ := os.ReadFile(authPath); string(b) != `{"refreshed":true}` {
		t.Error("Prepare overwrote the agent's refreshed auth.json")
	}

	// 3. Switching to the proxy brings our provider back, keeps the rest.
	mustPrepare(t, Codex, spec)
	proxied, cfg := readConfig(t, configPath)
	prov := cfg["model_providers"].(map[string]any)[ProviderID].(map[string]any)
	if cfg["model_provider"] != ProviderID || prov["base_url"] != testProxy+"/proxy/openai/v1" || prov["env_key"] != EnvInferenceToken {
		t.Errorf("proxy launch: model_provider %v, block %v", cfg["model_provider"], prov)
	}
	if cfg["approval_policy"] != "never" {
		t.Error("user key lost on the switch")
	}
	mustPrepare(t, Codex, spec)
	if again, _ := readConfig(t, configPath); again != proxied {
		t.Error("second proxy Prepare changed config.toml")
	}
}

// TestMergedConfigMustMatchEnv: a user's config that selects a provider or
// an MCP server whose environment variable the launch does not set fails
// Prepare, and an OAuth login refuses an env-key provider even when the
// variable is there.
func TestMergedConfigMustMatchEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		config   string
		kind     CredentialKind
		extraEnv []string
		want     error
	}{
		{"selected provider without its key", "model_provider = \"mine\"\n[model_providers.mine]\nenv_key = \"MINE_KEY\"\n", KindAPIKey, nil, ErrMissingSecret},
		{"selected provider with its key", "model_provider = \"mine\"\n[model_providers.mine]\nenv_key = \"MINE_KEY\"\n", KindAPIKey, []string{"MINE_KEY=k"}, nil},
		{"OAuth through an env-key provider", "model_provider = \"mine\"\n[model_providers.mine]\nenv_key = \"MINE_KEY\"\n", KindOAuthToken, []string{"MINE_KEY=k"}, ErrUnsupportedCredential},
		{"MCP server without its token", "[mcp_servers.other]\nurl = \"http://x/mcp\"\nbearer_token_env_var = \"OTHER_TOKEN\"\n", KindAPIKey, nil, ErrMissingSecret},
		{"MCP header without its variable", "[mcp_servers.other]\nurl = \"http://x/mcp\"\nenv_http_headers = { \"X-Key\" = \"OTHER_KEY\" }\n", KindAPIKey, nil, ErrMissingSecret},
		{"not TOML", "model = \n", KindAPIKey, nil, ErrBadValue},
		{"mcp_servers not a table", "mcp_servers = 3\n", KindAPIKey, nil, ErrBadValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := session(t)
			spec.ExtraEnv = tc.extraEnv
			spec.Credential = Credential{Kind: tc.kind, Secret: NewSecret(testAPIKey)}
			if tc.kind == KindOAuthToken {
				spec.Credential.Secret = NewSecret(testAuthJSON)
			}
			codexHome := filepath.Join(spec.SessionDir, "home", ".codex")
			os.MkdirAll(codexHome, 0o700)
			path := filepath.Join(codexHome, "config.toml")
			os.WriteFile(path, []byte(tc.config), 0o600)
			l, err := Build(Codex, spec)
			if err != nil {
				t.Fatal(err)
			}
			err = l.Prepare()
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Prepare = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if b, _ := os.ReadFile(path); string(b) != tc.config {
					t.Error("a failed Prepare rewrote config.toml")
				}
			}
		})
	}
}

func TestPrepareRefuses(t *testing.T) {
	t.Parallel()
	t.Run("open session directory", func(t *testing.T) {
		t.Parallel()
		spec := session(t)
		os.Chmod(spec.SessionDir, 0o755)
		l, _ := Build(ClaudeCode, spec)
		if err := l.Prepare(); !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "0700") {
			t.Errorf("Prepare = %v", err)
		}
	})
	t.Run("missing session directory", func(t *testing.T) {
		t.Parallel()
		spec := session(t)
		spec.SessionDir += "-nope"
		l, _ := Build(ClaudeCode, spec)
		if err := l.Prepare(); !errors.Is(err, ErrBadValue) {
			t.Errorf("Prepare = %v", err)
		}
	})
	t.Run("symlinked config", func(t *testing.T) {
		t.Parallel()
		spec := session(t)
		codexHome := filepath.Join(spec.SessionDir, "home", ".codex")
		os.MkdirAll(codexHome, 0o700)
		target := filepath.Join(spec.Cwd, "elsewhere.toml")
		os.WriteFile(target, []byte("x = 1\n"), 0o600)
		os.Symlink(target, filepath.Join(codexHome, "config.toml"))
		l, _ := Build(Codex, spec)
		if err := l.Prepare(); !errors.Is(err, ErrBadValue) {
			t.Errorf("Prepare = %v", err)
		}
		if b, _ := os.ReadFile(target); string(b) != "x = 1\n" {
			t.Error("Prepare wrote through a symlink")
		}
	})
	t.Run("missing cwd", func(t *testing.T) {
		t.Parallel()
		spec := session(t)
		spec.Cwd = filepath.Join(spec.Cwd, "missing")
		l, _ := Build(ClaudeCode, spec)
		if err := l.Prepare(); !errors.Is(err, ErrBadValue) {
			t.Errorf("Prepare = %v", err)
		}
	})
	t.Run("not installed", func(t *testing.T) {
		t.Parallel()
		spec := session(t)
		spec.InstallDir = filepath.Join(spec.Cwd, "empty")
		l, _ := Build(CodexZed, spec)
		err := l.Prepare()
		if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "npm install --prefix") {
			t.Errorf("Prepare = %v", err)
		}
	})
}
