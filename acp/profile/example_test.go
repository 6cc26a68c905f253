package profile_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/agentbroker/agentbroker/acp/profile"
)

// Codex through the broker's inference proxy: the inference token and the
// MCP token travel in the environment, and config.toml names them.
func ExampleBuild() {
	l, err := profile.Build(profile.Codex, profile.LaunchSpec{
		SessionID:  "sess-1",
		SessionDir: "/var/lib/agentbroker/sessions/sess-1", // created 0700 by the caller
		Cwd:        "/home/me/src/project",
		Model:      "gpt-5.5",
		MCP: profile.MCPServer{
			Name:  "broker",
			URL:   "http://127.0.0.1:7420/mcp",
			Token: profile.NewSecret("the-session-mcp-token"),
		},
		Credential: profile.Credential{
			Kind:   profile.KindPlatformProxy,
			Secret: profile.NewSecret("the-session-inference-token"),
		},
		ProxyBaseURL: "http://127.0.0.1:7420",
		InstallDir:   "/opt/agentbroker/agents",
	})
	if err != nil {
		log.Fatal(err)
	}
	// Then: l.Prepare() writes the files, and the supervisor starts
	// l.Path with l.Args, l.Env and l.Dir.
	fmt.Println(l.Path, l.Args)
	fmt.Println(strings.Join(l.RedactedEnv(), "\n"))
	fmt.Println("set mode:", l.InitialMode)
	for _, f := range l.Files {
		fmt.Printf("--- %s\n%s", f.Path, f.Content)
	}
	// Output:
	// node [/opt/agentbroker/agents/node_modules/@agentclientprotocol/codex-acp/dist/index.js]
	// AGENTBROKER_INFERENCE_TOKEN=[REDACTED]
	// AGENTBROKER_MCP_TOKEN=[REDACTED]
	// CODEX_HOME=/var/lib/agentbroker/sessions/sess-1/home/.codex
	// HOME=/var/lib/agentbroker/sessions/sess-1/home
	// INITIAL_AGENT_MODE=workspace-write
	// LANG=C.UTF-8
	// PATH=/opt/agentbroker/agents/node_modules/.bin:/usr/local/bin:/usr/bin:/bin
	// TMPDIR=/var/lib/agentbroker/sessions/sess-1/tmp
	// set mode: workspace-write
	// --- /var/lib/agentbroker/sessions/sess-1/home/.codex/config.toml
	// # Written by agentbroker before the agent starts. It owns model, model_provider,
	// # approvals_reviewer, model_catalog_json, [model_providers.agentbroker] and its
	// # own [mcp_servers.*] entry; other keys are kept on rewrite, comments are not.
	//
	// approvals_reviewer = 'user'
	// model = 'gpt-5.5'
	// model_provider = 'agentbroker'
	//
	// [mcp_servers]
	// [mcp_servers.broker]
	// bearer_token_env_var = 'AGENTBROKER_MCP_TOKEN'
	// url = 'http://127.0.0.1:7420/mcp'
	//
	// [model_providers]
	// [model_providers.agentbroker]
	// base_url = 'http://127.0.0.1:7420/proxy/openai/v1'
	// env_key = 'AGENTBROKER_INFERENCE_TOKEN'
	// name = 'agentbroker'
	// wire_api = 'responses'
}
