package profile

import (
	"encoding/json"
	"strings"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/catalog"
)

// projectTools are our MCP server's tools (mcpserver.Tools, which a test
// compares with this list): Qwen Code is told to keep them visible, and the
// OpenCode and Copilot recognisers match a permission request against them.
var projectTools = []struct{ name, title string }{
	{"get_project", "Get project"},
	{"get_instructions", "Get project instructions"},
	{"list_tasks", "List tasks"},
	{"get_task", "Get task"},
	{"search_tasks", "Search tasks"},
	{"search_knowledge", "Search knowledge"},
	{"get_knowledge", "Get knowledge entry"},
	{"list_sessions", "List sessions"},
	{"get_session_messages", "Get session messages"},
	{"search_messages", "Search session messages"},
	{"update_task", "Update task"},
	{"add_knowledge", "Add knowledge"},
}

// openAIDefaultBase is OpenAI's API, for an api-key credential without a
// base URL of its own.
const openAIDefaultBase = "https://api.openai.com/v1"

// openAICompat is where an OpenAI-compatible agent (OpenCode, Copilot's
// bring-your-own-provider mode, Qwen Code) sends its Chat Completions calls
// and with which key: the broker's proxy with the session's inference
// token, or the user's own key to OpenAI or to the base URL they gave.
func (b *builder) openAICompat() (baseURL string, key Secret) {
	c := b.spec.Credential
	switch c.kind() {
	case KindPlatformProxy:
		b.note("model calls go to the proxy's Chat Completions route; the catalog's %s policy decides the models", b.p.Agent)
		return proxyURL(b.spec.ProxyBaseURL, catalog.ProviderOpenAI), c.Secret
	default: // KindAPIKey: validateCredential accepts nothing else
		if c.BaseURL != "" {
			return strings.TrimRight(c.BaseURL, "/"), c.Secret
		}
		return openAIDefaultBase, c.Secret
	}
}

// metaString reads a string field of a tool call's _meta.
func metaString(meta json.RawMessage, key string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(meta, &m) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(m[key], &s)
	return s
}

// isProjectToolName reports whether name is one of our tools.
func isProjectToolName(name string) bool {
	for _, t := range projectTools {
		if t.name == name {
			return true
		}
	}
	return false
}

// either applies f to the request's tool call and to the tool call as the
// session's updates described it.
func either(req acp.RequestPermissionRequest, updates acp.ToolCall, f func(acp.ToolCall) bool) bool {
	return f(req.ToolCall) || f(updates)
}

// cutPrefix is strings.CutPrefix that also refuses an empty rest.
func cutPrefix(s, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	return rest, ok && rest != ""
}
