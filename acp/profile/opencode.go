package profile

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/agentbroker/agentbroker/acp"
)

// openCodeProvider is the provider block's name: the model is
// "agentbroker/<model>".
const openCodeProvider = "agentbroker"

func (b *builder) opencode() error {
	// `opencode acp` serves its own HTTP API on loopback and talks to it:
	// by default on port 4096, the same for every session. Each launch gets
	// a free port of its own, which the confinement then allows.
	port, err := freeLoopbackPort()
	if err != nil {
		return fmt.Errorf("OpenCode's own server port: %w", err)
	}
	b.l.Args = append(b.l.Args, "--port", strconv.Itoa(int(port)), "--hostname", "127.0.0.1")
	b.l.LoopbackPorts = append(b.l.LoopbackPorts, port)
	base, key := b.openAICompat()
	// The key stays in the environment: the config names it with OpenCode's
	// {env:…} substitution, so the config itself holds no secret.
	keyEnv := "OPENAI_API_KEY"
	if b.spec.Credential.kind() == KindPlatformProxy {
		keyEnv = EnvInferenceToken
	}
	b.setSecret(keyEnv, key)
	model := b.spec.Model
	cfg := map[string]any{
		"$schema":    "https://opencode.ai/config.json",
		"autoupdate": false,
		"share":      "disabled",
		"provider": map[string]any{
			openCodeProvider: map[string]any{
				"npm":     "@ai-sdk/openai-compatible",
				"name":    "agentbroker",
				"options": map[string]any{"baseURL": base, "apiKey": "{env:" + keyEnv + "}"},
				"models":  map[string]any{},
			},
		},
		// MCP tools run unasked unless a permission rule says "ask": ask, so
		// that the session's permission policy decides every call.
		"permission": map[string]any{b.spec.MCP.Name + "_*": "ask"},
	}
	if model != "" {
		cfg["provider"].(map[string]any)[openCodeProvider].(map[string]any)["models"] = map[string]any{model: map[string]any{"name": model}}
		// The small model (titles, summaries) is the session's model too: the
		// one model known to pass the proxy.
		cfg["model"] = openCodeProvider + "/" + model
		cfg["small_model"] = openCodeProvider + "/" + model
	}
	content, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("render OpenCode config: %w", err)
	}
	b.set("OPENCODE_CONFIG_CONTENT", string(content))
	b.set("OPENCODE_DISABLE_MODELS_FETCH", "1")
	b.set("OPENCODE_DISABLE_AUTOUPDATE", "1")
	b.set("OPENCODE_DISABLE_SHARE", "1")
	b.set("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
	// Not the user's Claude Code prompts and skills: the session's home is
	// its own, but the working directory may carry them.
	b.set("OPENCODE_DISABLE_CLAUDE_CODE", "1")
	b.note("send the MCP server %q in session/new; OpenCode names its tools %s_<tool> and asks for them (permission rule %s_*: ask)",
		b.spec.MCP.Name, b.spec.MCP.Name, b.spec.MCP.Name)
	return nil
}

// openCodeOwnTool: OpenCode titles an MCP call "<server>_<tool>", kind
// "other", in the request and in its tool_call update. The title is
// OpenCode's name of the tool, not text the model chose, and must name one
// of our tools exactly.
func openCodeOwnTool(server string, req acp.RequestPermissionRequest, updates acp.ToolCall) bool {
	return either(req, updates, func(t acp.ToolCall) bool {
		if t.Kind != acp.ToolKindOther {
			return false
		}
		name, ok := cutPrefix(t.Title, server+"_")
		return ok && isProjectToolName(name)
	})
}

// freeLoopbackPort asks the kernel for a free TCP port on 127.0.0.1. It is
// free when asked; the agent binds it a moment later.
func freeLoopbackPort() (uint16, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port), nil
}
