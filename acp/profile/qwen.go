package profile

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/agentbroker/agentbroker/acp"
)

func (b *builder) qwen() error {
	base, key := b.openAICompat()
	// Otherwise it starts a second Node process of itself (for a larger
	// heap) once its first one has loaded: one start instead of two.
	b.set("QWEN_CODE_NO_RELAUNCH", "true")
	b.set("OPENAI_BASE_URL", base)
	b.setSecret("OPENAI_API_KEY", key)
	if b.spec.Model != "" {
		b.set("OPENAI_MODEL", b.spec.Model)
	}
	qs := &qwenSettings{server: b.spec.MCP.Name}
	content, err := qs.merge(nil)
	if err != nil {
		return err
	}
	b.l.Files = append(b.l.Files, File{
		Path:    filepath.Join(b.home, ".qwen", "settings.json"),
		Mode:    0o600,
		Content: content,
		merge:   qs.merge,
	})
	b.note("send the MCP server %q in session/new; Qwen Code connects to it about 0.5 s after session/new returns", b.spec.MCP.Name)
	b.note("after session/new, session/set_mode %q: the default \"auto\" makes a classifier call and offers two allow_once options", b.p.InitialMode)
	return nil
}

// qwenSettings is what the broker owns in $HOME/.qwen/settings.json.
type qwenSettings struct{ server string }

// merge keeps the keys the agent or the user wrote and sets ours:
// tools.visible lists our tools (mcp__<server>__<tool>), the others the
// file already lists are kept; usage statistics are off.
func (qs *qwenSettings) merge(existing []byte) ([]byte, error) {
	cfg := map[string]any{}
	if len(strings.TrimSpace(string(existing))) > 0 {
		if err := json.Unmarshal(existing, &cfg); err != nil {
			return nil, fmt.Errorf("%w: existing settings.json: %v", ErrBadValue, err)
		}
		if cfg == nil {
			return nil, fmt.Errorf("%w: existing settings.json is not a JSON object", ErrBadValue)
		}
	}
	tools, ok := cfg["tools"].(map[string]any)
	if !ok {
		if _, present := cfg["tools"]; present {
			return nil, fmt.Errorf("%w: settings.json tools is not an object", ErrBadValue)
		}
		tools = map[string]any{}
	}
	var visible []any
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			visible = append(visible, s)
		}
	}
	for _, t := range projectTools {
		add("mcp__" + qs.server + "__" + t.name)
	}
	if old, ok := tools["visible"].([]any); ok {
		for _, v := range old {
			if s, ok := v.(string); ok {
				add(s)
			}
		}
	}
	tools["visible"] = visible
	cfg["tools"] = tools
	privacy, _ := cfg["privacy"].(map[string]any)
	if privacy == nil {
		privacy = map[string]any{}
	}
	privacy["usageStatisticsEnabled"] = false
	cfg["privacy"] = privacy
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render settings.json: %w", err)
	}
	return append(out, '\n'), nil
}

// qwenOwnTool: Qwen Code names the tool in the tool call's _meta
// (toolName "mcp__<server>__<tool>", provenance "mcp", serverId <server>),
// in the request and in its updates; its title is free text.
func qwenOwnTool(server string, req acp.RequestPermissionRequest, updates acp.ToolCall) bool {
	return either(req, updates, func(t acp.ToolCall) bool {
		name, ok := cutPrefix(metaString(t.Meta, "toolName"), "mcp__"+server+"__")
		if !ok || !isProjectToolName(name) {
			return false
		}
		if p := metaString(t.Meta, "provenance"); p != "" && p != "mcp" {
			return false
		}
		if id := metaString(t.Meta, "serverId"); id != "" && id != server {
			return false
		}
		return true
	})
}
