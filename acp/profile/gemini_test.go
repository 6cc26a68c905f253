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
	// The request alone, as Gemini CLI sends it.
	own := func(server string, tc acp.ToolCall) bool {
		return p.ownTool(server, acp.RequestPermissionRequest{SessionID: "s", ToolCall: tc}, acp.ToolCall{})
	}
	if !p.ownTool("broker", acp.RequestPermissionRequest{SessionID: "s", ToolCall: acp.ToolCall{ToolCallID: rec.ToolCallID}}, rec) {
		t.Error("the recorded tool call, described by the updates only, is not recognised")
	}
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

// TestGeminiPrepareLoad: before session/load, the session's chat files
// (chats/session-<minute>-<first 8 of the ID>.jsonl, in any project) are
// renamed out of the name a fresh start of the same session would append
// to; other sessions' files, a link named like ours, and anything reached
// through a link out of HOME are left alone. Nothing recorded yet is no
// error.
func TestGeminiPrepareLoad(t *testing.T) {
	const id = "53269ea7-03fc-4e4d-8a52-c6e5dbf14e1c"
	home, outside := t.TempDir(), t.TempDir()
	if err := geminiPrepareLoad(home, id); err != nil {
		t.Fatalf("nothing recorded: %v", err)
	}
	chats := filepath.Join(home, ".gemini", "tmp", "proj", "chats")
	if err := os.MkdirAll(chats, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(chats, "session-2026-12-06T02-23-53269ea7.jsonl", "ours")
	write(chats, "session-2026-12-06T02-23-53269ea7-r1.jsonl", "ours, resumed before")
	write(chats, "session-2026-12-06T02-23-aaaaaaaa.jsonl", "another session")
	write(outside, "session-2026-12-06T02-20-53269ea7.jsonl", "outside HOME")
	if err := os.Symlink(filepath.Join(outside, "session-2026-12-06T02-20-53269ea7.jsonl"), filepath.Join(chats, "session-2026-12-06T02-21-53269ea7.jsonl")); err != nil {
		t.Fatal(err)
	}
	// A project whose chats directory is a link out of HOME.
	if err := os.MkdirAll(filepath.Join(home, ".gemini", "tmp", "evil"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(home, ".gemini", "tmp", "evil", "chats")); err != nil {
		t.Fatal(err)
	}
	if err := geminiPrepareLoad(home, id); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	entries, _ := os.ReadDir(chats)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(chats, e.Name()))
		got[e.Name()] = string(b)
	}
	want := map[string]string{
		"session-2026-12-06T02-23-53269ea7-r2.jsonl": "ours",
		"session-2026-12-06T02-23-53269ea7-r1.jsonl": "ours, resumed before",
		"session-2026-12-06T02-23-aaaaaaaa.jsonl":    "another session",
		"session-2026-12-06T02-21-53269ea7.jsonl":    "outside HOME", // the link, read through
	}
	for name, content := range want {
		if got[name] != content {
			t.Errorf("%s = %q, want %q (all: %v)", name, got[name], content, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("files %v", got)
	}
	if _, err := os.Stat(filepath.Join(outside, "session-2026-12-06T02-20-53269ea7.jsonl")); err != nil {
		t.Errorf("a file outside HOME was moved: %v", err)
	}
	if err := geminiPrepareLoad(home, "short"); err == nil {
		t.Error("a short ACP session ID was accepted")
	}
}
