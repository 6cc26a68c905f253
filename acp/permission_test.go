package acp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func opts(kinds ...PermissionOptionKind) []PermissionOption {
	var out []PermissionOption
	for i, k := range kinds {
		out = append(out, PermissionOption{OptionID: fmt.Sprintf("opt-%d", i), Name: string(k), Kind: k})
	}
	return out
}

// Decisions go by kind, with fallbacks, never by position or ID.
func TestPermissionFallbacks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		allow   bool
		options []PermissionOption
		outcome string
		kind    PermissionOptionKind
	}{
		{"allow prefers once", true, opts(RejectOnce, AllowAlways, AllowOnce), OutcomeSelected, AllowOnce},
		{"allow falls back to always", true, opts(RejectOnce, AllowAlways), OutcomeSelected, AllowAlways},
		{"allow with no allow option rejects", true, opts(RejectAlways, RejectOnce), OutcomeSelected, RejectOnce},
		{"reject prefers once", false, opts(AllowOnce, RejectAlways, RejectOnce), OutcomeSelected, RejectOnce},
		{"reject falls back to always", false, opts(AllowOnce, RejectAlways), OutcomeSelected, RejectAlways},
		{"reject with no reject option cancels", false, opts(AllowOnce, AllowAlways), OutcomeCancelled, ""},
		{"nothing offered", true, nil, OutcomeCancelled, ""},
		{"unknown kinds are ignored", true, []PermissionOption{{OptionID: "x", Kind: "allow_forever"}}, OutcomeCancelled, ""},
		// Qwen Code's auto mode: two allow_once, one of which switches the
		// mode. Neither is chosen by its place, nor is allow_always.
		{"two allow_once are not told apart by order", true, opts(AllowOnce, AllowOnce, AllowAlways, RejectOnce), OutcomeSelected, RejectOnce},
		{"two reject_once are not told apart by order", false, opts(AllowOnce, RejectOnce, RejectOnce), OutcomeCancelled, ""},
		{"ambiguous allow with ambiguous reject cancels", true, opts(AllowOnce, AllowOnce, RejectOnce, RejectOnce), OutcomeCancelled, ""},
	} {
		req := RequestPermissionRequest{SessionID: "s", Options: tc.options}
		var d PermissionDecision
		if tc.allow {
			d = allow(req, ToolCall{}, "test")
		} else {
			d = reject(req, ToolCall{}, "test")
		}
		if d.Outcome.Outcome != tc.outcome || d.Kind != tc.kind {
			t.Errorf("%s: %+v", tc.name, d)
		}
		if d.Outcome.Outcome == OutcomeSelected {
			found := false
			for _, o := range tc.options {
				found = found || (o.OptionID == d.Outcome.OptionID && o.Kind == d.Kind)
			}
			if !found {
				t.Errorf("%s: selected %q, not an offered option of kind %s", tc.name, d.Outcome.OptionID, d.Kind)
			}
		}
	}
	if o, ok := ChooseOption(opts(AllowAlways, AllowOnce), true); !ok || o.Kind != AllowOnce {
		t.Fatal("ChooseOption")
	}
	if o, ok := ChooseOption(opts(AllowOnce, AllowOnce), true); ok {
		t.Fatalf("ChooseOption picked %+v between two allow_once options", o)
	}
}

// How the agents describe a call to our MCP server "broker" (from the
// transcripts), and things that must not count.
func TestIsProjectTool(t *testing.T) {
	t.Parallel()
	tc := func(s string) ToolCall {
		var x ToolCall
		if err := json.Unmarshal([]byte(s), &x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	yes := map[string]string{
		"claude request":   `{"toolCallId":"toolu_1","name":"mcp__broker__broker_ping","status":"pending","rawInput":{"message":"hi"},"title":"mcp__broker__broker_ping","kind":"other","content":[],"_meta":{"claudeCode":{"toolName":"mcp__broker__broker_ping","mcpServer":{"name":"broker","source":"dynamic"}}}}`,
		"claude meta only": `{"toolCallId":"toolu_1","_meta":{"claudeCode":{"toolName":"mcp__broker__broker_ping"}}}`,
		"codex tool_call":  `{"toolCallId":"call_1","kind":"execute","title":"mcp.broker.broker_ping","status":"in_progress","rawInput":{"server":"broker","tool":"broker_ping","arguments":{}},"_meta":{"is_mcp_tool_call":true}}`,
		"zed tool_call":    `{"toolCallId":"call_1","title":"Tool: broker/broker_ping","status":"in_progress","rawInput":{"server":"broker","tool":"broker_ping","arguments":{}}}`,
		"zed request":      `{"toolCallId":"call_1","status":"pending","title":"Approve MCP tool call","rawInput":{"server_name":"broker","request":{"_meta":{"codex_approval_kind":"mcp_tool_call"}}}}`,
		"refagent":         `{"toolCallId":"call_1","title":"mcp__broker__get_task","kind":"other","status":"pending"}`,
	}
	no := map[string]string{
		"codex request alone":  `{"toolCallId":"call_1","kind":"execute","status":"pending"}`,
		"other server":         `{"toolCallId":"t","title":"mcp__evil__broker_ping","kind":"other","_meta":{"claudeCode":{"toolName":"mcp__evil__broker_ping"}}}`,
		"prefix of a name":     `{"toolCallId":"t","title":"mcp__brokerx__ping","kind":"other"}`,
		"shell titled like":    `{"toolCallId":"t","title":"mcp__broker__ping","kind":"execute","rawInput":{"command":"rm -rf /"}}`,
		"server without tool":  `{"toolCallId":"t","rawInput":{"server":"broker"}}`,
		"server_name, no kind": `{"toolCallId":"t","rawInput":{"server_name":"broker"}}`,
		"empty":                `{"toolCallId":"t"}`,
	}
	for name, s := range yes {
		if !isProjectTool("broker", tc(s), nil) {
			t.Errorf("%s: not recognised", name)
		}
	}
	for name, s := range no {
		if isProjectTool("broker", tc(s), nil) {
			t.Errorf("%s: recognised", name)
		}
	}
}

// The policies end to end over a pipe: allow-all, allow-project-tools
// (ours allowed, others asked), and an asker answering an unknown ID.
func TestPermissionPolicies(t *testing.T) {
	t.Parallel()
	const ours = `{"toolCallId":"c1","title":"mcp__broker__get_task","kind":"other"}`
	const theirs = `{"toolCallId":"c2","title":"Run rm","kind":"execute"}`
	options := `[{"optionId":"yes","name":"Yes","kind":"allow_once"},{"optionId":"always","name":"Always","kind":"allow_always"},{"optionId":"no","name":"No","kind":"reject_once"}]`
	ask := func(answer string) Asker {
		return AskerFunc(func(ctx context.Context, req PermissionRequest) (string, error) { return answer, nil })
	}
	for _, tc := range []struct {
		name     string
		policy   PermissionPolicy
		asker    Asker
		toolCall string
		want     string // optionId, or "cancelled"
	}{
		{"allow-all", PolicyAllowAll, nil, theirs, "yes"},
		{"project tools: ours", PolicyAllowProjectTools, nil, ours, "yes"},
		{"project tools: theirs, nobody to ask", PolicyAllowProjectTools, nil, theirs, "no"},
		{"project tools: theirs, asked", PolicyAllowProjectTools, ask("always"), theirs, "always"},
		{"ask: person says no", PolicyAsk, ask("no"), ours, "no"},
		{"ask: unknown answer rejects", PolicyAsk, ask("maybe"), ours, "no"},
		{"ask: asker error rejects", PolicyAsk, AskerFunc(func(context.Context, PermissionRequest) (string, error) {
			return "", errors.New("viewer went away")
		}), ours, "no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, a := newPipeConn(t, &ConnOptions{Permissions: tc.policy, Asker: tc.asker, MCPServerName: "broker", AskTimeout: time.Second})
			a.send(t, `{"jsonrpc":"2.0","id":"p1","method":"session/request_permission","params":{"sessionId":"s","toolCall":`+tc.toolCall+`,"options":`+options+`}}`+"\n")
			l := a.waitFor(t, `"id":"p1"`)
			var m struct {
				Result RequestPermissionResponse `json:"result"`
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			got := m.Result.Outcome.OptionID
			if m.Result.Outcome.Outcome == OutcomeCancelled {
				got = OutcomeCancelled
			}
			if got != tc.want {
				t.Fatalf("answered %s, want %s", l, tc.want)
			}
		})
	}
}

func TestParsePermissionPolicy(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"ask", "allow-project-tools", "allow-all"} {
		if p, err := ParsePermissionPolicy(s); err != nil || string(p) != s {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParsePermissionPolicy("yolo"); err == nil {
		t.Error("yolo accepted")
	}
}

func TestMCPServerEntry(t *testing.T) {
	t.Parallel()
	httpCaps := AgentCapabilities{McpCapabilities: McpCapabilities{HTTP: true}}
	const tok = "eyJhbGciOiJFZERTQSJ9.secret-token"
	e, err := NewMCPServerEntry(httpCaps, "agentbroker", "http://127.0.0.1:7420/mcp", tok, "/usr/bin/agentbroker")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e)
	if want := `{"type":"http","name":"agentbroker","url":"http://127.0.0.1:7420/mcp","headers":[{"name":"Authorization","value":"Bearer ` + tok + `"}]}`; string(b) != want {
		t.Fatalf("http entry\n %s\nwant\n %s", b, want)
	}
	s, err := NewMCPServerEntry(AgentCapabilities{}, "agentbroker", "http://127.0.0.1:7420/mcp", tok, "/usr/bin/agentbroker")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(s)
	if want := `{"name":"agentbroker","command":"/usr/bin/agentbroker","args":["mcp-bridge"],"env":[{"name":"AGENTBROKER_MCP_URL","value":"http://127.0.0.1:7420/mcp"},{"name":"AGENTBROKER_MCP_TOKEN","value":"` + tok + `"}]}`; string(b) != want {
		t.Fatalf("stdio entry\n %s\nwant\n %s", b, want)
	}
	// Round trip of both shapes.
	for _, x := range []McpServer{e, s} {
		b, _ := json.Marshal(x)
		var y McpServer
		if err := json.Unmarshal(b, &y); err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(y)
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip %s -> %s", b, b2)
		}
	}
	// No secret in logs or in formatted output.
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("entry", "mcp", e, "stdio", s, "env", s.Env[1], "header", e.Headers[0])
	for _, out := range []string{logs.String(), fmt.Sprintf("%v %+v %#v %s", e, s, s, e), fmt.Sprint(s.Env, e.Headers)} {
		if strings.Contains(out, "secret-token") {
			t.Fatalf("token leaked: %s", out)
		}
	}
	if !strings.Contains(logs.String(), "AGENTBROKER_MCP_TOKEN") {
		t.Fatalf("env names should be logged: %s", logs.String())
	}

	for _, tc := range []struct {
		name, url, token, cmd, sname string
		caps                         AgentCapabilities
	}{
		{"newline in token", "http://h/mcp", "a\nb", "x", "n", httpCaps},
		{"CR in token", "http://h/mcp", "a\rb", "x", "n", httpCaps},
		{"NUL in token", "http://h/mcp", "a\x00b", "x", "n", httpCaps},
		{"line separator", "http://h/mcp", "a\u2028b", "x", "n", httpCaps},
		{"newline in URL", "http://h/mcp\nX-Evil: 1", "t", "x", "n", httpCaps},
		{"newline in name", "http://h/mcp", "t", "x", "n\n", httpCaps},
		{"newline in command", "http://h/mcp", "t", "x\n", "n", AgentCapabilities{}},
		{"empty token", "http://h/mcp", "", "x", "n", httpCaps},
		{"empty name", "http://h/mcp", "t", "x", "", httpCaps},
		{"not http", "file:///etc/passwd", "t", "x", "n", httpCaps},
		{"relative URL", "/mcp", "t", "x", "n", httpCaps},
		{"stdio without a command", "http://h/mcp", "t", "", "n", AgentCapabilities{}},
	} {
		if _, err := NewMCPServerEntry(tc.caps, tc.sname, tc.url, tc.token, tc.cmd); !errors.Is(err, ErrInvalidMCPEntry) {
			t.Errorf("%s: %v", tc.name, err)
		} else if strings.Contains(err.Error(), "a\nb") {
			t.Errorf("%s: the error repeats the token", tc.name)
		}
	}
}
