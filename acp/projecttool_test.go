package acp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestProjectToolHook: a request in a shape only the agent's profile
// knows (ConnOptions.ProjectTool) is allowed under allow-project-tools
// with the allow_once option; without the hook, or for another server's
// tool, nobody is there to ask and it is rejected.
func TestProjectToolHook(t *testing.T) {
	t.Parallel()
	// Gemini CLI's shape, which isProjectTool does not know.
	const req = `{"jsonrpc":"2.0","id":"p1","method":"session/request_permission","params":{"sessionId":"s",` +
		`"toolCall":{"toolCallId":"mcp_broker_get_task__1","title":"get_task (broker MCP Server)","kind":"other"},` +
		`"options":[{"optionId":"proceed_always_server","name":"All","kind":"allow_always"},{"optionId":"proceed_once","name":"Allow","kind":"allow_once"},{"optionId":"cancel","name":"Reject","kind":"reject_once"}]}}` + "\n"
	hook := func(server string, req RequestPermissionRequest, _ ToolCall) bool {
		tc := req.ToolCall
		return strings.HasPrefix(tc.ToolCallID, "mcp_"+server+"_") && strings.HasSuffix(tc.Title, "("+server+" MCP Server)")
	}
	for _, tc := range []struct {
		name   string
		server string
		hook   ToolRecognizer
		want   string
	}{
		{"recognised by the profile", "broker", hook, "proceed_once"},
		{"no hook", "broker", nil, "cancel"},
		{"another server", "other", hook, "cancel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, a := newPipeConn(t, &ConnOptions{Permissions: PolicyAllowProjectTools, MCPServerName: tc.server, ProjectTool: tc.hook, AskTimeout: time.Second})
			a.send(t, req)
			l := a.waitFor(t, `"id":"p1"`)
			var m struct {
				Result RequestPermissionResponse `json:"result"`
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			if m.Result.Outcome.OptionID != tc.want {
				t.Fatalf("answered %s, want %s", l, tc.want)
			}
		})
	}
}
