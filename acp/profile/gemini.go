package profile

import (
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/catalog"
)

// gemini configures Gemini CLI (@google/gemini-cli, run with --acp). The
// MCP server comes through session/new (Gemini connects to it during
// session/new), the credential and the model through the environment,
// quiet settings through $HOME/.gemini/settings.json.
func (b *builder) gemini() error {
	// In a folder it does not trust, Gemini CLI skips HTTP MCP servers
	// without a word: the session's working directory is trusted.
	b.set("GEMINI_CLI_TRUST_WORKSPACE", "true")
	// It would otherwise relaunch itself in a child process (for memory
	// flags), which the supervisor would not see.
	b.set("GEMINI_CLI_NO_RELAUNCH", "1")
	b.set("GEMINI_TELEMETRY_ENABLED", "false")
	if b.spec.Model != "" {
		// An explicit model: its "auto" router (an extra classifier call
		// with a model of its choosing) is not used.
		b.set("GEMINI_MODEL", b.spec.Model)
	}
	c := b.spec.Credential
	switch c.kind() {
	case KindAPIKey:
		b.setSecret("GEMINI_API_KEY", c.Secret)
		if c.BaseURL != "" {
			b.set("GOOGLE_GEMINI_BASE_URL", c.BaseURL)
		}
	case KindPlatformProxy:
		// The root URL, without /v1beta; with it set, session/new picks the
		// "gateway" auth method by itself. The key goes as x-goog-api-key.
		b.set("GOOGLE_GEMINI_BASE_URL", proxyURL(b.spec.ProxyBaseURL, catalog.ProviderGoogle))
		b.setSecret("GEMINI_API_KEY", c.Secret)
	}
	settings, _ := json.MarshalIndent(map[string]any{
		"privacy": map[string]any{"usageStatisticsEnabled": false},
		"general": map[string]any{"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
	}, "", "  ")
	dir := filepath.Join(b.home, ".gemini")
	b.l.Dirs = append(b.l.Dirs, dir)
	b.l.Files = append(b.l.Files, File{Path: filepath.Join(dir, "settings.json"), Mode: 0o600, Content: settings})
	b.note("send the MCP server %q in session/new (http, header Authorization: Bearer <MCP token>)", b.spec.MCP.Name)
	b.note("after session/new, session/set_mode %q: tool calls come to the broker as permission requests (yolo runs them unasked)", b.p.InitialMode)
	return nil
}

// geminiOwnTool recognises Gemini CLI's permission request for a tool of
// our MCP server: kind "other", title "<tool> (<server> MCP Server)" and a
// tool-call ID that Gemini derives from the function it offered the
// model, "mcp_<server>_<tool>__…". Both must agree: the title alone is
// text, and an underscore in a server or tool name makes the ID alone
// ambiguous.
func geminiOwnTool(server string, tc acp.ToolCall) bool {
	if tc.Kind != "" && tc.Kind != acp.ToolKindOther {
		return false
	}
	tool, ok := strings.CutSuffix(tc.Title, " ("+server+" MCP Server)")
	if !ok || tool == "" || strings.ContainsAny(tool, " ()") {
		return false
	}
	return strings.HasPrefix(tc.ToolCallID, "mcp_"+server+"_"+tool+"__")
}
