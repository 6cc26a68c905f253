package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/internal/console"
	"github.com/agentbroker/agentbroker/sessions"
)

// TestConsoleAgents: the start form offers the agents the broker is
// configured to launch, in the profiles' order, each with the catalog
// agent sessions.Manager checks its model against and the credential
// kinds its profile accepts.
func TestConsoleAgents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		configured map[profile.Name]sessions.AgentConfig
		want       []console.Agent
	}{
		{"none", nil, nil},
		{"the defaults and custom", (&config{CustomAgent: "refagent"}).agentConfigs(), []console.Agent{
			{Name: "claude-code", Title: "Claude Code", CatalogAgent: "claude-code", Credentials: []string{"api-key", "oauth-token", "platform-proxy"}, NotInstalled: true},
			{Name: "codex", Title: "Codex", CatalogAgent: "codex", Credentials: []string{"api-key", "oauth-token", "platform-proxy"}, NotInstalled: true},
			{Name: "codex-zed", Title: "Codex (Zed's adapter)", CatalogAgent: "codex", Credentials: []string{"api-key", "oauth-token", "platform-proxy"}, NotInstalled: true},
			{Name: "custom", Title: "Custom (the broker's --custom-agent)", CatalogAgent: "", Credentials: []string{"none"}},
			{Name: "gemini", Title: "Gemini CLI", CatalogAgent: "gemini", Credentials: []string{"api-key", "platform-proxy"}, NotInstalled: true},
			{Name: "opencode", Title: "OpenCode", CatalogAgent: "opencode", Credentials: []string{"api-key", "platform-proxy"}, NotInstalled: true},
			{Name: "copilot", Title: "Copilot CLI", CatalogAgent: "copilot", Credentials: []string{"api-key", "platform-proxy"}, NotInstalled: true},
			{Name: "qwen", Title: "Qwen Code", CatalogAgent: "qwen", Credentials: []string{"api-key", "platform-proxy"}, NotInstalled: true},
		}},
		{"an installed adapter is not marked", map[profile.Name]sessions.AgentConfig{
			profile.Qwen: {InstallDir: installedQwen(t)}}, []console.Agent{
			{Name: "qwen", Title: "Qwen Code", CatalogAgent: "qwen", Credentials: []string{"api-key", "platform-proxy"}},
		}},
		{"amp, and a custom agent with a catalog agent", map[profile.Name]sessions.AgentConfig{
			profile.Custom: {CatalogAgent: "claude-code"}, profile.Amp: {}}, []console.Agent{
			{Name: "amp", Title: "Amp", CatalogAgent: "amp", Credentials: []string{"api-key"}},
			{Name: "custom", Title: "Custom (the broker's --custom-agent)", CatalogAgent: "claude-code", Credentials: []string{"none"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := consoleAgents(tt.configured); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("consoleAgents = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// installedQwen lays out a Qwen Code install at its pinned version.
func installedQwen(t *testing.T) string {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "node_modules", "@qwen-code", "qwen-code")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pkg, "cli.js"), []byte("//\n"), 0o644)
	os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"version":"0.24.4"}`), 0o644)
	return dir
}
