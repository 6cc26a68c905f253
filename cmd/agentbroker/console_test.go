package main

import (
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
			{Name: "claude-code", Title: "Claude Code", CatalogAgent: "claude-code", Credentials: []string{"api-key", "oauth-token", "platform-proxy"}},
			{Name: "codex", Title: "Codex", CatalogAgent: "codex", Credentials: []string{"api-key", "oauth-token", "platform-proxy"}},
			{Name: "codex-zed", Title: "Codex (Zed's adapter)", CatalogAgent: "codex", Credentials: []string{"api-key", "oauth-token", "platform-proxy"}},
			{Name: "custom", Title: "Custom (the broker's --custom-agent)", CatalogAgent: "", Credentials: []string{"none"}},
			{Name: "gemini", Title: "Gemini CLI", CatalogAgent: "gemini", Credentials: []string{"api-key", "platform-proxy"}},
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
