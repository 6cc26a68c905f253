package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/agentbroker/agentbroker/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// Test secrets: recognisable, so that a leak is found by substring.
const (
	testAPIKey   = "sk-test-APIKEY-7f3e9c"
	testOAuth    = "oauth-test-TOKEN-2b8d41"
	testInfer    = "inf-test-TOKEN-5a6c02"
	testMCP      = "mcp-test-TOKEN-91d7e4"
	testAuthJSON = `{"OPENAI_API_KEY":null,"tokens":{"access_token":"at-test-AUTHJSON-4c1f","refresh_token":"rt-test-AUTHJSON-88aa"}}`
	testProxy    = "http://127.0.0.1:7420"
	testBaseURL  = "https://llm-gateway.example.com/v1"
)

var allSecrets = map[string]string{
	testAPIKey:   "<API_KEY>",
	testOAuth:    "<OAUTH_TOKEN>",
	testInfer:    "<INFERENCE_TOKEN>",
	testMCP:      "<MCP_TOKEN>",
	testAuthJSON: "<AUTH_JSON>",
}

// kinds of the matrix: credential kinds plus the api-key + base URL variant
// and one unknown kind.
type credCase struct {
	name    string
	kind    CredentialKind
	baseURL string
}

var credCases = []credCase{
	{"none", KindNone, ""},
	{"api-key", KindAPIKey, ""},
	{"api-key-base-url", KindAPIKey, testBaseURL},
	{"oauth-token", KindOAuthToken, ""},
	{"platform-proxy", KindPlatformProxy, ""},
	{"bogus", "bogus", ""},
}

func secretFor(p Name, k CredentialKind) string {
	switch k {
	case KindAPIKey:
		return testAPIKey
	case KindOAuthToken:
		if p == Codex || p == CodexZed {
			return testAuthJSON
		}
		return testOAuth
	case KindPlatformProxy:
		return testInfer
	case "bogus":
		return "x"
	}
	return ""
}

func specFor(p Profile, c credCase, proxy string, withSecret bool, sessionDir, installDir string) LaunchSpec {
	spec := LaunchSpec{
		SessionID:    "sess-1",
		SessionDir:   sessionDir,
		Cwd:          "/work/project",
		MCP:          MCPServer{Name: "broker", URL: "http://127.0.0.1:7420/mcp", Token: NewSecret(testMCP)},
		Credential:   Credential{Kind: c.kind, BaseURL: c.baseURL},
		ProxyBaseURL: proxy,
		InstallDir:   installDir,
	}
	if withSecret {
		spec.Credential.Secret = NewSecret(secretFor(p.Name, c.kind))
	}
	switch p.Name {
	case ClaudeCode:
		spec.Model = "claude-opus-4-8"
	case Codex, CodexZed, OpenCode, Copilot, Qwen:
		spec.Model = "gpt-5.5"
	case Gemini:
		spec.Model = "gemini-3.8-flash"
	case Amp:
		spec.Command = []string{"node", "/opt/amp-acp/dist/index.js"} // the amp CLI is in installDir
	case Custom:
		spec.Command = []string{"/usr/local/bin/refagent", "--stdio"}
		spec.MCP = MCPServer{}
	}
	return spec
}

// expectErr is the independent statement of which combinations fail.
func expectErr(p Profile, c credCase, proxy string, withSecret bool) error {
	switch {
	case c.kind == "bogus":
		return ErrUnsupportedCredential
	case c.kind == KindNone && p.Name != Custom:
		return ErrMissingSecret
	case c.kind != KindNone && p.Name == Custom:
		return ErrUnsupportedCredential
	case p.Name == Amp && c.kind != KindAPIKey:
		return ErrUnsupportedCredential
	case (p.Name == OpenCode || p.Name == Copilot || p.Name == Qwen || p.Name == Gemini) && c.kind == KindOAuthToken:
		return ErrUnsupportedCredential
	case p.Name == Amp && c.baseURL != "":
		return ErrUnsupportedCredential
	case c.kind == KindPlatformProxy && proxy == "":
		return ErrBadValue
	case c.kind != KindNone && !withSecret:
		return ErrMissingSecret
	}
	return nil
}

// TestConfigSubsetEnv is the "config ⊆ env" contract: for every profile ×
// credential kind × proxy mode × secret present or not, either Build fails
// with the expected sentinel before anything starts, or the launch is
// consistent: every environment variable a generated config names is set
// and non-empty, an OAuth login never yields an API-key provider or env_key,
// and no secret reaches argv or a config file. Each successful launch is
// also prepared on disk and kept as a golden file.
func TestConfigSubsetEnv(t *testing.T) {
	t.Parallel()
	const sessionDir, installDir = "/sessions/sess-1", "/opt/agentbroker/agents"
	goldenDir := filepath.Join("testdata", "golden")
	produced := map[string]bool{}
	var errorsGolden strings.Builder
	for _, p := range All() {
		for _, c := range credCases {
			for _, proxy := range []string{"", testProxy} {
				for _, withSecret := range []bool{true, false} {
					if c.kind == KindNone && !withSecret {
						continue
					}
					name := fmt.Sprintf("%s/%s/proxy=%v/secret=%v", p.Name, c.name, proxy != "", withSecret)
					spec := specFor(p, c, proxy, withSecret, sessionDir, installDir)
					l, err := Build(p.Name, spec)
					want := expectErr(p, c, proxy, withSecret)
					if want != nil {
						if !errors.Is(err, want) {
							t.Errorf("%s: Build = %v, want %v", name, err, want)
							continue
						}
						checkNoSecret(t, name+" error", err.Error())
						fmt.Fprintf(&errorsGolden, "%s\n\t%v\n", name, err)
						continue
					}
					if err != nil {
						t.Errorf("%s: Build: %v", name, err)
						continue
					}
					checkLaunch(t, name, p, spec, l)
					if proxy != "" && c.kind != KindPlatformProxy {
						// ProxyBaseURL is ignored by other kinds.
						spec.ProxyBaseURL = ""
						l2, err := Build(p.Name, spec)
						if err != nil || renderGolden(l2) != renderGolden(l) {
							t.Errorf("%s: ProxyBaseURL changed a %s launch", name, c.kind)
						}
						continue
					}
					file := fmt.Sprintf("%s_%s.golden", p.Name, c.name)
					produced[file] = true
					compareGolden(t, filepath.Join(goldenDir, file), renderGolden(l))
					prepareAndCheck(t, name, p, c, proxy)
				}
			}
		}
	}
	produced["errors.golden"] = true
	compareGolden(t, filepath.Join(goldenDir, "errors.golden"), errorsGolden.String())
	// No orphan golden files.
	entries, _ := os.ReadDir(goldenDir)
	for _, e := range entries {
		if !produced[e.Name()] {
			if *update {
				os.Remove(filepath.Join(goldenDir, e.Name()))
				continue
			}
			t.Errorf("orphan golden file %s (run go test ./acp/profile -update)", e.Name())
		}
	}
}

func checkNoSecret(t *testing.T, where, s string) {
	t.Helper()
	for secret := range allSecrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains a secret %s", where, allSecrets[secret])
		}
	}
	for _, frag := range []string{"at-test-AUTHJSON", "rt-test-AUTHJSON"} {
		if strings.Contains(s, frag) {
			t.Errorf("%s contains part of auth.json", where)
		}
	}
}

// allowedEnv is every variable a launch may set; anything else would have
// come from somewhere it should not.
var allowedEnv = []string{
	"PATH", "LANG", "TMPDIR", "HOME",
	"IS_SANDBOX", "ENABLE_TOOL_SEARCH", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_TELEMETRY",
	"DISABLE_AUTOUPDATER", "ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
	"ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_OAUTH_TOKEN",
	"CODEX_HOME", "INITIAL_AGENT_MODE", "OPENAI_API_KEY", EnvMCPToken, EnvInferenceToken, "AMP_API_KEY",
	"OPENCODE_CONFIG_CONTENT", "OPENCODE_DISABLE_MODELS_FETCH", "OPENCODE_DISABLE_AUTOUPDATE", "OPENCODE_DISABLE_SHARE",
	"OPENCODE_DISABLE_LSP_DOWNLOAD", "OPENCODE_DISABLE_CLAUDE_CODE",
	"COPILOT_OFFLINE", "COPILOT_AUTO_UPDATE", "COPILOT_PROVIDER_BASE_URL", "COPILOT_PROVIDER_API_KEY", "COPILOT_MODEL",
	"COPILOT_PKG_CACHE_HOME", "OPENAI_BASE_URL", "OPENAI_MODEL", "QWEN_CODE_NO_RELAUNCH",
	"GEMINI_CLI_TRUST_WORKSPACE", "GEMINI_CLI_NO_RELAUNCH", "GEMINI_TELEMETRY_ENABLED", "GEMINI_MODEL", "GEMINI_API_KEY",
	"GOOGLE_GEMINI_BASE_URL",
}

func checkLaunch(t *testing.T, name string, p Profile, spec LaunchSpec, l *Launch) {
	t.Helper()
	env := map[string]string{}
	for _, kv := range l.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Errorf("%s: env entry %q", name, kv)
		}
		if _, dup := env[k]; dup {
			t.Errorf("%s: env sets %s twice", name, k)
		}
		if !slices.Contains(allowedEnv, k) {
			t.Errorf("%s: unexpected env %s", name, k)
		}
		env[k] = v
		if _, isSecret := allSecrets[v]; isSecret && !slices.Contains(l.SecretEnv, k) {
			t.Errorf("%s: %s holds a secret but is not in SecretEnv", name, k)
		}
	}
	for _, k := range l.SecretEnv {
		if env[k] == "" {
			t.Errorf("%s: SecretEnv names %s, which is not set", name, k)
		}
	}
	if !slices.IsSorted(l.Env) {
		t.Errorf("%s: Env not sorted", name)
	}
	under := func(what, path string) {
		if !strings.HasPrefix(path, spec.SessionDir+"/") {
			t.Errorf("%s: %s %q is not inside the session directory", name, what, path)
		}
	}
	under("HOME", env["HOME"])
	under("TMPDIR", env["TMPDIR"])
	checkNoSecret(t, name+" argv", strings.Join(append([]string{l.Path}, l.Args...), " "))
	checkNoSecret(t, name+" RedactedEnv", strings.Join(l.RedactedEnv(), " "))
	checkNoSecret(t, name+" String", l.String())

	var config map[string]any
	for _, f := range l.Files {
		under("file", f.Path)
		if f.Mode != 0o600 {
			t.Errorf("%s: %s mode %o", name, f.Path, f.Mode)
		}
		if !f.Secret {
			checkNoSecret(t, name+" "+f.Path, string(f.Content))
		}
		if strings.HasSuffix(f.Path, ".toml") {
			if err := toml.Unmarshal(f.Content, &config); err != nil {
				t.Fatalf("%s: %s: %v", name, f.Path, err)
			}
			for _, ref := range envRefs(config) {
				if env[ref.name] == "" {
					t.Errorf("%s: config names %s (%s), which the environment does not set", name, ref.name, ref.where)
				}
			}
		}
	}
	kind := spec.Credential.kind()
	isCodex := p.Name == Codex || p.Name == CodexZed
	if isCodex {
		under("CODEX_HOME", env["CODEX_HOME"])
		if config == nil {
			t.Fatalf("%s: no config.toml", name)
		}
		srv, _ := config["mcp_servers"].(map[string]any)["broker"].(map[string]any)
		if srv["url"] != spec.MCP.URL || srv["bearer_token_env_var"] != EnvMCPToken || env[EnvMCPToken] != testMCP {
			t.Errorf("%s: MCP server entry %v, token env set %v", name, srv, env[EnvMCPToken] != "")
		}
		if config["model"] != spec.Model {
			t.Errorf("%s: model = %v", name, config["model"])
		}
	} else if p.Name == Qwen {
		if len(l.Files) != 1 || l.Files[0].Path != filepath.Join(env["HOME"], ".qwen", "settings.json") {
			t.Errorf("%s: qwen files %v", name, l.Files)
		}
	} else if p.Name == Gemini {
		// Only its settings, quiet (no usage statistics, no auto-update).
		var settings struct {
			Privacy struct {
				UsageStatisticsEnabled *bool `json:"usageStatisticsEnabled"`
			} `json:"privacy"`
			General struct {
				EnableAutoUpdate *bool `json:"enableAutoUpdate"`
			} `json:"general"`
		}
		if len(l.Files) != 1 || l.Files[0].Path != filepath.Join(env["HOME"], ".gemini", "settings.json") || l.Files[0].Secret ||
			json.Unmarshal(l.Files[0].Content, &settings) != nil ||
			settings.Privacy.UsageStatisticsEnabled == nil || *settings.Privacy.UsageStatisticsEnabled ||
			settings.General.EnableAutoUpdate == nil || *settings.General.EnableAutoUpdate {
			t.Errorf("%s: gemini files %v", name, l.Files)
		}
		if env["GEMINI_CLI_TRUST_WORKSPACE"] != "true" || env["GEMINI_MODEL"] != spec.Model || len(l.Args) == 0 || l.Args[len(l.Args)-1] != "--acp" {
			t.Errorf("%s: gemini trust %q, model %q, args %q", name, env["GEMINI_CLI_TRUST_WORKSPACE"], env["GEMINI_MODEL"], l.Args)
		}
		if l.OwnTool == nil || l.loadPrep == nil || l.home != env["HOME"] {
			t.Errorf("%s: gemini launch without its own-tool recogniser or its session/load preparation", name)
		}
	} else if len(l.Files) != 0 {
		t.Errorf("%s: %s writes files: %v", name, p.Name, l.Files)
	}
	checkOpenAICompat(t, name, p, spec, env)
	providers, _ := config["model_providers"].(map[string]any)
	switch kind {
	case KindOAuthToken:
		// The SAM bug: an OAuth login must not produce an API-key shape.
		for _, k := range []string{"OPENAI_API_KEY", "ANTHROPIC_API_KEY", EnvInferenceToken, "ANTHROPIC_BASE_URL"} {
			if _, ok := env[k]; ok {
				t.Errorf("%s: OAuth launch sets %s", name, k)
			}
		}
		if _, ok := config["model_provider"]; ok || len(providers) > 0 {
			t.Errorf("%s: OAuth launch has a model provider: %v %v", name, config["model_provider"], providers)
		}
		if isCodex {
			i := slices.IndexFunc(l.Files, func(f File) bool { return filepath.Base(f.Path) == "auth.json" })
			if i < 0 || !l.Files[i].Secret || string(l.Files[i].Content) != testAuthJSON ||
				filepath.Dir(l.Files[i].Path) != env["CODEX_HOME"] {
				t.Errorf("%s: no secret auth.json in CODEX_HOME", name)
			}
		} else if env["CLAUDE_CODE_OAUTH_TOKEN"] != testOAuth {
			t.Errorf("%s: CLAUDE_CODE_OAUTH_TOKEN not set", name)
		}
	case KindPlatformProxy:
		if isCodex {
			prov, _ := providers[ProviderID].(map[string]any)
			if config["model_provider"] != ProviderID || prov["base_url"] != testProxy+"/proxy/openai/v1" ||
				prov["env_key"] != EnvInferenceToken || prov["wire_api"] != "responses" || env[EnvInferenceToken] != testInfer {
				t.Errorf("%s: proxy provider %v", name, prov)
			}
			if _, ok := env["OPENAI_API_KEY"]; ok {
				t.Errorf("%s: proxy launch sets OPENAI_API_KEY", name)
			}
		} else if p.Name == Gemini {
			if env["GOOGLE_GEMINI_BASE_URL"] != testProxy+"/proxy/gemini" || env["GEMINI_API_KEY"] != testInfer || !slices.Contains(l.SecretEnv, "GEMINI_API_KEY") {
				t.Errorf("%s: Gemini proxy env %q %v", name, env["GOOGLE_GEMINI_BASE_URL"], env["GEMINI_API_KEY"] == testInfer)
			}
		} else if p.Name == ClaudeCode && (env["ANTHROPIC_BASE_URL"] != testProxy+"/proxy/anthropic" || env["ANTHROPIC_API_KEY"] != testInfer) {
			t.Errorf("%s: Claude proxy env %q %v", name, env["ANTHROPIC_BASE_URL"], env["ANTHROPIC_API_KEY"] == testInfer)
		}
	case KindAPIKey:
		if p.Name == Gemini && (env["GEMINI_API_KEY"] != testAPIKey || env["GOOGLE_GEMINI_BASE_URL"] != spec.Credential.BaseURL) {
			t.Errorf("%s: Gemini api-key env: key set %v, base URL %q", name, env["GEMINI_API_KEY"] == testAPIKey, env["GOOGLE_GEMINI_BASE_URL"])
		}
		if isCodex {
			_, hasProvider := providers[ProviderID]
			if hasProvider != (spec.Credential.BaseURL != "") || (l.AuthMethod == "") == (spec.Credential.BaseURL == "") {
				t.Errorf("%s: api-key: provider block %v, auth method %q", name, hasProvider, l.AuthMethod)
			}
		}
	}
	if p.Name == ClaudeCode && env["IS_SANDBOX"] != "1" {
		t.Errorf("%s: Claude without IS_SANDBOX=1 refuses to run as root", name)
	}
}

type envRef struct{ where, name string }

// envRefs lists every environment variable a Codex config names, in any
// provider (selected or not) and any MCP server. It is deliberately
// stricter than the package's own check.
func envRefs(cfg map[string]any) []envRef {
	var refs []envRef
	for _, section := range []string{"model_providers", "mcp_servers"} {
		tables, _ := cfg[section].(map[string]any)
		for _, id := range slices.Sorted(maps.Keys(tables)) {
			t, _ := tables[id].(map[string]any)
			for _, key := range []string{"env_key", "bearer_token_env_var"} {
				if v, ok := t[key].(string); ok {
					refs = append(refs, envRef{section + "." + id + "." + key, v})
				}
			}
			h, _ := t["env_http_headers"].(map[string]any)
			for hk, v := range h {
				refs = append(refs, envRef{section + "." + id + ".env_http_headers." + hk, fmt.Sprint(v)})
			}
		}
	}
	return refs
}

// prepareAndCheck builds the same launch in a real temporary session
// directory, prepares it twice and checks what landed on disk.
func prepareAndCheck(t *testing.T, name string, p Profile, c credCase, proxy string) {
	t.Helper()
	root := t.TempDir()
	sessionDir, installDir := filepath.Join(root, "session"), filepath.Join(root, "install")
	if err := os.Mkdir(sessionDir, 0o700); err != nil {
		t.Fatal(err)
	}
	spec := specFor(p, c, proxy, true, sessionDir, installDir)
	spec.Cwd = root
	l, err := Build(p.Name, spec)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if p.Entry != "" {
		if err := l.Prepare(); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), p.Package) {
			t.Errorf("%s: Prepare without the install = %v, want ErrNotInstalled naming %s", name, err, p.Package)
		}
		for i, f := range p.requiredFiles(installDir) {
			os.MkdirAll(filepath.Dir(f), 0o755)
			os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755)
			if i == 0 && len(p.requiredFiles(installDir)) > 1 {
				// The entry alone is not the whole install (Copilot's unpacked package).
				if err := l.Prepare(); !errors.Is(err, ErrNotInstalled) {
					t.Errorf("%s: Prepare with the entry alone = %v, want ErrNotInstalled", name, err)
				}
			}
		}
	}
	if err := l.Prepare(); err != nil {
		t.Fatalf("%s: Prepare: %v", name, err)
	}
	first := snapshot(t, sessionDir)
	if err := l.Prepare(); err != nil {
		t.Fatalf("%s: second Prepare: %v", name, err)
	}
	if second := snapshot(t, sessionDir); !maps.Equal(first, second) {
		t.Errorf("%s: Prepare is not idempotent", name)
	}
	for _, d := range l.Dirs {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: dir %s: %v %v", name, d, err, fi.Mode())
		}
	}
	for _, f := range l.Files {
		got, err := os.ReadFile(f.Path)
		if err != nil || !bytes.Equal(got, f.Content) {
			t.Errorf("%s: %s on disk differs from Content (%v)", name, f.Path, err)
		}
		if fi, err := os.Stat(f.Path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %s mode %v", name, f.Path, fi.Mode())
		}
	}
}

// snapshot maps every path under dir to its mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		content := ""
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			content = string(b)
		}
		out[path] = fmt.Sprintf("%v %s", fi.Mode(), content)
		return nil
	})
	return out
}

// renderGolden renders a launch with secrets replaced by placeholders.
func renderGolden(l *Launch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "profile: %s\npath: %s\nargs: %q\ndir: %s\n", l.Profile, l.Path, l.Args, l.Dir)
	fmt.Fprintf(&b, "auth method: %q\ninitial mode: %q\nmcp connect: %s\n", l.AuthMethod, l.InitialMode, l.MCPConnect)
	b.WriteString("env:\n")
	for _, kv := range l.Env {
		fmt.Fprintf(&b, "  %s\n", kv)
	}
	fmt.Fprintf(&b, "secret env: %q\ndirs: %q\nnotes:\n", l.SecretEnv, l.Dirs)
	for _, n := range l.Notes {
		fmt.Fprintf(&b, "  - %s\n", n)
	}
	for _, f := range l.Files {
		fmt.Fprintf(&b, "-- %s (%04o, merged %v, secret %v, keep existing %v) --\n%s\n",
			f.Path, f.Mode, f.Merged(), f.Secret, f.KeepExisting, f.Content)
	}
	s := b.String()
	// The agent's own loopback port is picked per launch.
	for _, port := range l.LoopbackPorts {
		s = strings.ReplaceAll(s, strconv.Itoa(int(port)), "<PORT>")
	}
	// Longest first: auth.json contains no other secret, but be safe.
	for _, secret := range slices.SortedFunc(maps.Keys(allSecrets), func(a, b string) int { return len(b) - len(a) }) {
		s = strings.ReplaceAll(s, secret, allSecrets[secret])
	}
	return s
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%v (run go test ./acp/profile -update)", err)
		return
	}
	if string(want) != got {
		t.Errorf("%s differs (if intended, run go test ./acp/profile -update and review the diff)\ngot:\n%s", path, got)
	}
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	want := map[Name]struct {
		agent string
		mcp   MCPConnect
		mode  string
		eof   bool
	}{
		ClaudeCode: {"claude-code", MCPAtSessionNew, "default", false},
		Codex:      {"codex", MCPAtSessionNew, "workspace-write", false},
		CodexZed:   {"codex", MCPAtSessionNew, "auto", true},
		Amp:        {"amp", MCPAtFirstPrompt, "", false},
		Custom:     {"", MCPAtSessionNew, "", false},
		OpenCode:   {"opencode", MCPAtSessionNew, "", false},
		Copilot:    {"copilot", MCPAfterSessionNew, CopilotAgentMode, false},
		Qwen:       {"qwen", MCPAfterSessionNew, "default", false},
		Gemini:     {"gemini", MCPAtSessionNew, "default", false},
	}
	cat := catalog.Embedded()
	all := All()
	if len(all) != len(want) {
		t.Fatalf("%d profiles, want %d", len(all), len(want))
	}
	for _, p := range all {
		w := want[p.Name]
		if p.Agent != w.agent || p.MCPConnect != w.mcp || p.InitialMode != w.mode || p.IgnoresStdinEOF != w.eof {
			t.Errorf("%s = %+v", p.Name, p)
		}
		if p.Agent != "" {
			if _, err := cat.Policy(p.Agent); err != nil {
				t.Errorf("%s maps to catalog agent %q: %v", p.Name, p.Agent, err)
			}
		}
	}
	if _, err := Lookup("no-such-agent"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("Lookup(no-such-agent) = %v", err)
	}
	if _, err := Build("no-such-agent", LaunchSpec{}); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("Build(no-such-agent) = %v", err)
	}
	p, _ := Lookup(Codex)
	p.Credentials[0] = "mutated"
	if q, _ := Lookup(Codex); q.Credentials[0] == "mutated" {
		t.Error("Lookup shares the profile's slices")
	}
}

func validSpec() LaunchSpec {
	return LaunchSpec{
		SessionID:    "sess-1",
		SessionDir:   "/sessions/sess-1",
		Cwd:          "/work/project",
		Model:        "gpt-5.5",
		MCP:          MCPServer{Name: "broker", URL: "http://127.0.0.1:7420/mcp", Token: NewSecret(testMCP)},
		Credential:   Credential{Kind: KindPlatformProxy, Secret: NewSecret(testInfer)},
		ProxyBaseURL: testProxy,
		InstallDir:   "/opt/agents",
	}
}

// TestBadValuesFailBuild: malformed input fails Build with a sentinel and
// an error that names the field but never the secret.
func TestBadValuesFailBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		profile Name
		mutate  func(*LaunchSpec)
		want    error
	}{
		{"token with newline", Codex, func(s *LaunchSpec) { s.Credential.Secret = NewSecret(testInfer + "\n") }, ErrBadValue},
		{"api key with CR", ClaudeCode, func(s *LaunchSpec) { s.Credential = Credential{Kind: KindAPIKey, Secret: NewSecret(testAPIKey + "\r")} }, ErrBadValue},
		{"token with space", ClaudeCode, func(s *LaunchSpec) { s.Credential.Secret = NewSecret("a " + testInfer) }, ErrBadValue},
		{"MCP token with NUL", Codex, func(s *LaunchSpec) { s.MCP.Token = NewSecret(testMCP + "\x00") }, ErrBadValue},
		{"MCP token missing", Codex, func(s *LaunchSpec) { s.MCP.Token = Secret{} }, ErrMissingSecret},
		{"MCP token missing (claude)", ClaudeCode, func(s *LaunchSpec) { s.MCP.Token = NewSecret("") }, ErrMissingSecret},
		{"MCP URL with newline", Codex, func(s *LaunchSpec) { s.MCP.URL += "\nx = 1" }, ErrBadValue},
		{"MCP URL not http", Codex, func(s *LaunchSpec) { s.MCP.URL = "file:///etc/passwd" }, ErrBadValue},
		{"MCP URL with user info", Codex, func(s *LaunchSpec) { s.MCP.URL = "http://u:p@127.0.0.1/mcp" }, ErrBadValue},
		{"MCP missing", Amp, func(s *LaunchSpec) {
			s.MCP = MCPServer{}
			s.Command = []string{"amp-acp"}
			s.Credential = Credential{Kind: KindAPIKey, Secret: NewSecret(testAPIKey)}
		}, ErrBadValue},
		{"MCP name with a dot", Codex, func(s *LaunchSpec) { s.MCP.Name = "a.b" }, ErrBadValue},
		{"proxy URL with query", Codex, func(s *LaunchSpec) { s.ProxyBaseURL += "/?x=1" }, ErrBadValue},
		{"proxy URL with tab", ClaudeCode, func(s *LaunchSpec) { s.ProxyBaseURL += "\t" }, ErrBadValue},
		{"proxy URL with quote", Codex, func(s *LaunchSpec) { s.ProxyBaseURL += `"` }, ErrBadValue},
		{"base URL with oauth", ClaudeCode, func(s *LaunchSpec) {
			s.Credential = Credential{Kind: KindOAuthToken, Secret: NewSecret(testOAuth), BaseURL: testBaseURL}
		}, ErrBadValue},
		{"auth.json not JSON", Codex, func(s *LaunchSpec) {
			s.Credential = Credential{Kind: KindOAuthToken, Secret: NewSecret("at-test-AUTHJSON-4c1f")}
		}, ErrBadValue},
		{"auth.json empty", CodexZed, func(s *LaunchSpec) { s.Credential = Credential{Kind: KindOAuthToken, Secret: NewSecret("  ")} }, ErrMissingSecret},
		{"relative session dir", Codex, func(s *LaunchSpec) { s.SessionDir = "sessions/s1" }, ErrBadValue},
		{"unclean session dir", Codex, func(s *LaunchSpec) { s.SessionDir = "/sessions/../etc" }, ErrBadValue},
		{"relative cwd", Codex, func(s *LaunchSpec) { s.Cwd = "." }, ErrBadValue},
		{"no install, no command", Codex, func(s *LaunchSpec) { s.InstallDir = "" }, ErrBadValue},
		{"amp without command", Amp, func(s *LaunchSpec) { s.Credential = Credential{Kind: KindAPIKey, Secret: NewSecret(testAPIKey)} }, ErrBadValue},
		{"ExtraEnv sets HOME", Codex, func(s *LaunchSpec) { s.ExtraEnv = []string{"HOME=/root"} }, ErrBadValue},
		{"ExtraEnv sets a credential", ClaudeCode, func(s *LaunchSpec) { s.ExtraEnv = []string{"ANTHROPIC_AUTH_TOKEN=x"} }, ErrBadValue},
		{"ExtraEnv sets AGENTBROKER_", ClaudeCode, func(s *LaunchSpec) { s.ExtraEnv = []string{"AGENTBROKER_X=1"} }, ErrBadValue},
		{"ExtraEnv malformed", Codex, func(s *LaunchSpec) { s.ExtraEnv = []string{"NOVALUE"} }, ErrBadValue},
		{"ExtraEnv with newline", Codex, func(s *LaunchSpec) { s.ExtraEnv = []string{"FOO=a\nb"} }, ErrBadValue},
		{"model with newline", Codex, func(s *LaunchSpec) { s.Model = "gpt-5.5\nmodel_provider = 'x'" }, ErrBadValue},
		{"secret in the command", Codex, func(s *LaunchSpec) { s.Command = []string{"agent", "--token=" + testInfer} }, ErrBadValue},
		{"kind none for codex", Codex, func(s *LaunchSpec) { s.Credential = Credential{} }, ErrMissingSecret},
		{"proxy for amp", Amp, func(s *LaunchSpec) { s.Command = []string{"amp-acp"} }, ErrUnsupportedCredential},
	} {
		spec := validSpec()
		tc.mutate(&spec)
		_, err := Build(tc.profile, spec)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Build = %v, want %v", tc.name, err, tc.want)
			continue
		}
		checkNoSecret(t, tc.name, err.Error())
	}
	// And the valid spec builds for both Codex adapters and Claude.
	for _, n := range []Name{Codex, CodexZed, ClaudeCode} {
		if _, err := Build(n, validSpec()); err != nil {
			t.Errorf("%s: valid spec: %v", n, err)
		}
	}
}

func TestExtraEnv(t *testing.T) {
	t.Parallel()
	spec := validSpec()
	spec.ExtraEnv = []string{"PATH=/opt/node/bin:/usr/bin", "RUST_LOG=info"}
	l, err := Build(Codex, spec)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := l.Getenv("PATH"); v != "/opt/node/bin:/usr/bin" {
		t.Errorf("PATH = %q", v)
	}
	if v, _ := l.Getenv("RUST_LOG"); v != "info" {
		t.Errorf("RUST_LOG = %q", v)
	}
	if slices.Contains(l.SecretEnv, "RUST_LOG") {
		t.Error("ExtraEnv treated as secret")
	}
}

// TestSecretRedaction: secrets print as [REDACTED] however a spec, a
// credential or a launch is formatted or logged.
func TestSecretRedaction(t *testing.T) {
	t.Parallel()
	spec := validSpec()
	spec.Credential = Credential{Kind: KindOAuthToken, Secret: NewSecret(testAuthJSON)}
	l, err := Build(Codex, spec)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, v := range []any{spec, &spec, spec.Credential, spec.Credential.Secret, spec.MCP, *l, l, l.Files[0]} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json %T: %v", v, err)
		}
		out.Write(b)
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("launch", "spec", spec, "cred", spec.Credential, "launch", l, "secret", spec.MCP.Token)
	}
	s := out.String()
	checkNoSecret(t, "formatted output", s)
	if strings.Contains(s, "eyJ") || strings.Contains(s, "at-test") { // base64 of '{"' or a bare fragment
		t.Error("formatted output holds encoded file content")
	}
	if !strings.Contains(out.String(), "[REDACTED]") {
		t.Error("no [REDACTED] marker in the output")
	}
	if got := fmt.Sprint(Secret{}); got != "" {
		t.Errorf("empty secret prints %q", got)
	}
	if NewSecret("x").Reveal() != "x" || !NewSecret("").IsZero() {
		t.Error("Reveal/IsZero")
	}
}

// TestClaudeModelsPinned: every model Claude Code would choose for itself
// (its default, the opus/sonnet/haiku aliases, side calls, subagents) is
// pinned to the session's model, the one the proxy is known to accept.
func TestClaudeModelsPinned(t *testing.T) {
	t.Parallel()
	spec := LaunchSpec{SessionID: "s1", SessionDir: t.TempDir(), Cwd: t.TempDir(), Model: "claude-sonnet-4-6",
		MCP:        MCPServer{Name: "agentbroker", URL: "http://127.0.0.1:7420/mcp", Token: NewSecret("mcp-token")},
		Credential: Credential{Kind: KindPlatformProxy, Secret: NewSecret("inference-token")}, ProxyBaseURL: "http://127.0.0.1:7420",
		InstallDir: t.TempDir()}
	l, err := Build(ClaudeCode, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
		"ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_SUBAGENT_MODEL"} {
		if got, _ := l.Getenv(k); got != "claude-sonnet-4-6" {
			t.Errorf("%s = %q; want the session's model", k, got)
		}
	}
}
