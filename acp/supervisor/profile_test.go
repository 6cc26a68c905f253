package supervisor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/agentbroker/agentbroker/acp/profile"
)

// TestProfileLaunch runs a real Codex launch (proxy credential) with the
// test binary standing in for the adapter: the files exist before the
// process starts, every variable config.toml names is in the environment
// the process actually got, and neither token is in its argv or the log.
func TestProfileLaunch(t *testing.T) {
	t.Parallel()
	const mcpToken, inferToken = "mcp-e2e-TOKEN-0c4e", "inf-e2e-TOKEN-77b1"
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	sessionDir := filepath.Join(root, "session")
	if err := os.Mkdir(sessionDir, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := profile.Build(profile.Codex, profile.LaunchSpec{
		SessionID:    "sess-e2e",
		SessionDir:   sessionDir,
		Cwd:          root,
		Model:        "gpt-5.5",
		MCP:          profile.MCPServer{Name: "broker", URL: "http://127.0.0.1:7420/mcp", Token: profile.NewSecret(mcpToken)},
		Credential:   profile.Credential{Kind: profile.KindPlatformProxy, Secret: profile.NewSecret(inferToken)},
		ProxyBaseURL: "http://127.0.0.1:7420",
		Command:      []string{exe, "-test.run=^$"},
		ExtraEnv:     []string{peerEnv + "=env", "GORACE=atexit_sleep_ms=0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Prepare(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	p := start(t, Spec{
		Path: l.Path, Args: l.Args, Env: l.Env, Dir: l.Dir,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err := p.MarkReady(); err != nil {
		t.Fatal(err)
	}
	var report struct{ Keys []string }
	if err := json.Unmarshal([]byte(readLine(t, bufio.NewReader(p.Stdout()))), &report); err != nil {
		t.Fatal(err)
	}
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Pid()))
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid()))

	codexHome, _ := l.Getenv("CODEX_HOME")
	raw, err := os.ReadFile(filepath.Join(codexHome, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ModelProviders map[string]struct {
			EnvKey string `toml:"env_key"`
		} `toml:"model_providers"`
		MCPServers map[string]struct {
			BearerTokenEnvVar string `toml:"bearer_token_env_var"`
		} `toml:"mcp_servers"`
	}
	if err := toml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	named := []string{cfg.ModelProviders["agentbroker"].EnvKey, cfg.MCPServers["broker"].BearerTokenEnvVar}
	for _, name := range named {
		if name == "" || !slices.Contains(report.Keys, name) {
			t.Errorf("config.toml names %q, which the running agent does not have (it has %v)", name, report.Keys)
		}
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{mcpToken, inferToken} {
		if strings.Contains(string(cmdline), tok) || strings.Contains(logs.String(), tok) || strings.Contains(string(raw), tok) {
			t.Errorf("a token reached argv, the log or config.toml")
		}
		if !strings.Contains(string(environ), tok) {
			t.Errorf("a token is missing from the agent's environment")
		}
	}
}
