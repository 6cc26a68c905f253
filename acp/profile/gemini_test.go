package profile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentbroker/agentbroker/acp"
)

// TestGeminiOwnTool checks Gemini CLI's permission requests against the
// one recorded from the real agent (Gemini CLI 0.61.0, an MCP server named
// "broker" with a tool broker_ping; shared/reference/acp-transcripts/
// more-agents/gemini-cli-0.61.0-e2e.jsonl) and its shape for ours
// (server "agentbroker", tool get_task): ours is recognised, another
// server's, another kind's or a title and ID that disagree are not; and
// the broker's policy then picks the allow_once option by kind.
func TestGeminiOwnTool(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "gemini-cli-0.61.0-permission.json"))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Params acp.RequestPermissionRequest `json:"params"`
	}
	if err := json.Unmarshal(raw, &msg); err != nil {
		t.Fatal(err)
	}
	rec := msg.Params.ToolCall
	p, err := Lookup(Gemini)
	if err != nil {
		t.Fatal(err)
	}
	own := p.ownTool
	if !own("broker", rec) {
		t.Errorf("the recorded request (%q, %q) is not recognised for server broker", rec.Title, rec.ToolCallID)
	}
	if own("agentbroker", rec) {
		t.Error("the recorded request for server broker is recognised for server agentbroker")
	}
	ours := acp.ToolCall{ToolCallID: "mcp_agentbroker_get_task__mcp_agentbroker_get_task_1796504772170_0",
		Title: "get_task (agentbroker MCP Server)", Kind: acp.ToolKindOther}
	for _, tt := range []struct {
		name string
		tc   acp.ToolCall
		want bool
	}{
		{"ours", ours, true},
		{"ours, kind unset", func() acp.ToolCall { c := ours; c.Kind = ""; return c }(), true},
		{"a shell command titled like ours", func() acp.ToolCall { c := ours; c.Kind = "execute"; return c }(), false},
		{"title of ours, ID of another tool", func() acp.ToolCall { c := ours; c.ToolCallID = "mcp_agentbroker_delete_task__x"; return c }(), false},
		{"ID of ours, another server's title", func() acp.ToolCall { c := ours; c.Title = "get_task (other MCP Server)"; return c }(), false},
		{"a server whose name extends ours", acp.ToolCall{ToolCallID: "mcp_agentbroker_x_get_task__1", Title: "get_task (agentbroker_x MCP Server)", Kind: "other"}, false},
		{"a built-in tool", acp.ToolCall{ToolCallID: "run_shell_command__1", Title: "get_task", Kind: "execute"}, false},
		{"no tool name", acp.ToolCall{ToolCallID: "mcp_agentbroker___1", Title: " (agentbroker MCP Server)", Kind: "other"}, false},
	} {
		if got := own("agentbroker", tt.tc); got != tt.want {
			t.Errorf("%s: recognised %v, want %v", tt.name, got, tt.want)
		}
	}
	// The options are chosen by kind: allow_once is proceed_once, not the
	// first (allow_always for the whole server).
	if o, ok := acp.ChooseOption(msg.Params.Options, true); !ok || o.OptionID != "proceed_once" {
		t.Errorf("allow picks %+v", o)
	}
	if o, ok := acp.ChooseOption(msg.Params.Options, false); !ok || o.OptionID != "cancel" {
		t.Errorf("reject picks %+v", o)
	}
}
