package acp_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/internal/refagent"
)

const (
	mcpName = "agentbroker"
	taskID  = "tsk_01HZX"
)

var getTaskPrompt = []acp.ContentBlock{acp.TextBlock(`call get_task with {"task_id":"` + taskID + `"}`)}

// decisions records permission decisions.
type decisions struct {
	mu  sync.Mutex
	all []acp.PermissionDecision
}

func (d *decisions) add(x acp.PermissionDecision) {
	d.mu.Lock()
	d.all = append(d.all, x)
	d.mu.Unlock()
}
func (d *decisions) list() []acp.PermissionDecision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.all)
}

// TestLiveToolCall drives the reference agent through a whole turn that
// calls our MCP tool: in-process and as a process, with the HTTP entry
// (bearer header) and with the stdio bridge entry (token in env).
func TestLiveToolCall(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		process bool
		stdio   bool
	}{
		{"in-process/http", false, false},
		{"in-process/stdio-bridge", false, true},
		{"process/http", true, false},
		{"process/stdio-bridge", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fix := newMCPFixture(t, "tok-"+strings.ReplaceAll(tc.name, "/", "-"))
			var p *agentProc
			if tc.process {
				env := []string{}
				if tc.stdio {
					env = append(env, "REFAGENT_MCP_HTTP=0")
				}
				p = startProcess(t, env...)
			} else {
				p = startInProcess(t, refagent.Options{NoHTTPMCP: tc.stdio})
			}
			col := &collector{}
			var dec decisions
			c := connect(t, p, &acp.ConnOptions{
				OnUpdate:      col.OnUpdate,
				Permissions:   acp.PolicyAllowProjectTools,
				MCPServerName: mcpName,
				OnPermission:  dec.add,
				WorkDir:       t.TempDir(),
			})
			ctx := ctxT(t, 60*time.Second)
			sess, err := c.Handshake(ctx, acp.HandshakeOptions{
				MCP: &acp.MCPConfig{Name: mcpName, URL: fix.URL, Token: fix.Token, BridgeCommand: selfExe(t)},
			})
			if err != nil {
				t.Fatal(err)
			}
			entry := sess.MCPServer
			if tc.stdio {
				if entry.Type != acp.MCPTransportStdio || !slices.Equal(entry.Args, []string{acp.BridgeSubcommand}) {
					t.Fatalf("entry = %v, want the stdio bridge", entry)
				}
				if slices.ContainsFunc(entry.Args, func(a string) bool { return strings.Contains(a, fix.Token) }) || strings.Contains(entry.Command, fix.Token) {
					t.Fatal("the token is in argv")
				}
			} else if entry.Type != acp.MCPTransportHTTP {
				t.Fatalf("entry = %v, want http", entry)
			}
			if strings.Contains(entry.String(), fix.Token) {
				t.Fatalf("McpServer.String leaks the token: %s", entry)
			}
			// Like Claude and Codex, the agent connected at session/new.
			if fix.listed.Load() == 0 || fix.authorized.Load() == 0 {
				t.Fatalf("the agent did not list tools with the bearer token (listed %d, authorized %d)", fix.listed.Load(), fix.authorized.Load())
			}
			if n := fix.unauthorized.Load(); n != 0 {
				t.Fatalf("%d requests without the right bearer token", n)
			}

			stop, err := c.Prompt(ctx, sess.ID, getTaskPrompt)
			if err != nil || stop != acp.StopEndTurn {
				t.Fatalf("Prompt = %q, %v", stop, err)
			}
			if calls := fix.Calls(); !slices.Equal(calls, []string{taskID}) {
				t.Fatalf("get_task calls = %q", calls)
			}
			reply := col.text(acp.UpdateAgentMessageChunk)
			want := "get_task returned: task " + taskID + ": Write the ACP docs (status: open)"
			if !strings.Contains(reply, want) {
				t.Fatalf("reply %q does not contain %q", reply, want)
			}
			ups := col.all()
			checkSeq(t, ups)
			// The turn's updates, in order.
			var turn []string
			for _, u := range ups {
				switch u.Update.Kind {
				case acp.UpdateToolCall, acp.UpdateToolCallUpdate:
					turn = append(turn, u.Update.Kind+":"+u.Update.ToolCall.Status)
				case acp.UpdatePlan, acp.UpdateAgentThoughtChunk, acp.UpdateAgentMessageChunk:
					turn = append(turn, u.Update.Kind)
				}
			}
			wantTurn := []string{"plan", "agent_thought_chunk", "tool_call:pending", "tool_call_update:in_progress",
				"tool_call_update:completed", "agent_message_chunk", "plan"}
			if !slices.Equal(turn, wantTurn) {
				t.Fatalf("turn updates = %q, want %q", turn, wantTurn)
			}
			for _, u := range ups {
				if u.Update.Kind == acp.UpdateToolCall && u.Update.ToolCall.Title != "mcp__"+mcpName+"__get_task" {
					t.Fatalf("tool call title %q", u.Update.ToolCall.Title)
				}
			}
			d := dec.list()
			if len(d) != 1 || d[0].Kind != acp.AllowOnce || d[0].Outcome.OptionID != refagent.OptionProceed {
				t.Fatalf("permission decisions = %+v, want allow_once (%q)", d, refagent.OptionProceed)
			}
		})
	}
}

// TestLiveHandshakeAuth: the agent answers session/new -32000; Handshake
// authenticates with the chosen method and retries once.
func TestLiveHandshakeAuth(t *testing.T) {
	t.Parallel()
	t.Run("chooser", func(t *testing.T) {
		t.Parallel()
		p := startInProcess(t, refagent.Options{RequireAuth: true})
		c := connect(t, p, &acp.ConnOptions{})
		var offered []acp.AuthMethod
		sess, err := c.Handshake(ctxT(t, 20*time.Second), acp.HandshakeOptions{Cwd: t.TempDir(),
			ChooseAuth: func(m []acp.AuthMethod) (string, error) { offered = m; return m[0].ID, nil }})
		if err != nil {
			t.Fatal(err)
		}
		if sess.Authenticated != refagent.AuthMethodID || len(offered) != 1 {
			t.Fatalf("authenticated %q with %v", sess.Authenticated, offered)
		}
		var methods []string
		for _, m := range p.rec.messages(t) {
			if m["method"] != nil {
				methods = append(methods, strings.Trim(string(m["method"]), `"`))
			}
		}
		want := []string{"initialize", "session/new", "authenticate", "session/new"}
		if !slices.Equal(methods, want) {
			t.Fatalf("client sent %q, want %q", methods, want)
		}
	})
	t.Run("no chooser", func(t *testing.T) {
		t.Parallel()
		p := startInProcess(t, refagent.Options{RequireAuth: true})
		c := connect(t, p, &acp.ConnOptions{})
		_, err := c.Handshake(ctxT(t, 20*time.Second), acp.HandshakeOptions{Cwd: t.TempDir()})
		if !errors.Is(err, acp.ErrNoAuthMethod) || !errors.Is(err, acp.ErrAuthRequired) {
			t.Fatalf("Handshake = %v, want ErrNoAuthMethod and ErrAuthRequired", err)
		}
	})
}

// TestLiveLoadSession resumes a session in a new agent process.
func TestLiveLoadSession(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	dir := t.TempDir()
	p1 := startInProcess(t, refagent.Options{StateDir: state})
	c1 := connect(t, p1, &acp.ConnOptions{})
	ctx := ctxT(t, 20*time.Second)
	s1, err := c1.Handshake(ctx, acp.HandshakeOptions{Cwd: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Prompt(ctx, s1.ID, []acp.ContentBlock{acp.TextBlock("remember the milk")}); err != nil {
		t.Fatal(err)
	}
	c1.Close()

	p2 := startInProcess(t, refagent.Options{StateDir: state})
	col := &collector{}
	c2 := connect(t, p2, &acp.ConnOptions{OnUpdate: col.OnUpdate})
	s2, err := c2.Handshake(ctx, acp.HandshakeOptions{Cwd: dir, ResumeSessionID: s1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !s2.Loaded || s2.ID != s1.ID {
		t.Fatalf("session %q loaded=%v, want %q loaded", s2.ID, s2.Loaded, s1.ID)
	}
	c2.Close() // delivers what was received
	if got := col.text(acp.UpdateUserMessageChunk); got != "remember the milk" {
		t.Fatalf("replayed user message %q", got)
	}
	if got := col.text(acp.UpdateAgentMessageChunk); got != "You said: remember the milk" {
		t.Fatalf("replayed agent message %q", got)
	}
}

// TestLiveModeAndModel: SetMode; SetModel is checked against the catalog
// before anything is sent.
func TestLiveModeAndModel(t *testing.T) {
	t.Parallel()
	p := startInProcess(t, refagent.Options{})
	col := &collector{}
	c := connect(t, p, &acp.ConnOptions{OnUpdate: col.OnUpdate, Agent: "claude-code"})
	ctx := ctxT(t, 20*time.Second)
	sess, err := c.Handshake(ctx, acp.HandshakeOptions{Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetMode(ctx, sess.ID, "yolo"); err != nil {
		t.Fatal(err)
	}
	before := len(p.rec.messages(t))
	for _, bad := range []string{"gpt-5.5", "claude-3-opus-20240229", "no-such-model"} {
		if _, err := c.SetModel(ctx, sess.ID, bad); err == nil {
			t.Fatalf("SetModel(%q) succeeded", bad)
		}
		if _, err := c.SetConfigOption(ctx, sess.ID, "model", bad); err == nil {
			t.Fatalf("SetConfigOption(model, %q) succeeded", bad)
		}
	}
	if after := len(p.rec.messages(t)); after != before {
		t.Fatalf("refused models were sent: %d messages before, %d after", before, after)
	}
	resp, err := c.SetModel(ctx, sess.ID, "claude-opus-4-8")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range resp.ConfigOptions {
		if o.ID == "model" && o.Current() != "claude-opus-4-8" {
			t.Fatalf("model is %q after SetModel", o.Current())
		}
	}
	if got := c.ConfigOptions(sess.ID); len(got) != 2 {
		t.Fatalf("tracked config options: %v", got)
	}
	// Not a model option: no catalog check.
	if _, err := c.SetConfigOption(ctx, sess.ID, "mode", "default"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !slices.Contains(col.kinds(), acp.UpdateCurrentMode) {
		t.Fatalf("no current_mode_update in %q", col.kinds())
	}

	// Without an agent name, models cannot be set at all.
	p2 := startInProcess(t, refagent.Options{})
	c2 := connect(t, p2, &acp.ConnOptions{})
	s2, err := c2.Handshake(ctx, acp.HandshakeOptions{Cwd: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.SetModel(ctx, s2.ID, "claude-opus-4-8"); !errors.Is(err, acp.ErrNoModelCheck) {
		t.Fatalf("SetModel without an agent = %v", err)
	}
}

// TestLiveFS: the agent reads and writes through our fs handlers, confined
// to the session's working directory.
func TestLiveFS(t *testing.T) {
	t.Parallel()
	p := startInProcess(t, refagent.Options{})
	col := &collector{}
	dir := t.TempDir()
	c := connect(t, p, &acp.ConnOptions{OnUpdate: col.OnUpdate, WorkDir: dir})
	ctx := ctxT(t, 20*time.Second)
	sess, err := c.Handshake(ctx, acp.HandshakeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	say := func(s string) string {
		t.Helper()
		before := len(col.all())
		if _, err := c.Prompt(ctx, sess.ID, []acp.ContentBlock{acp.TextBlock(s)}); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, u := range col.all()[before:] {
			if u.Update.Kind == acp.UpdateAgentMessageChunk {
				b.WriteString(u.Update.Text())
			}
		}
		return b.String()
	}
	if got := say("fs:write notes/todo.txt buy milk"); !strings.HasPrefix(got, "wrote ") {
		t.Fatalf("write: %q", got)
	}
	if got := say("fs:read notes/todo.txt"); got != "read: buy milk" {
		t.Fatalf("read: %q", got)
	}
	if got := say("fs:read /etc/hostname"); !strings.Contains(got, "-32602") || !strings.Contains(got, "outside") {
		t.Fatalf("read outside: %q", got)
	}
	if got := say("fs:read missing.txt"); !strings.Contains(got, "-32002") {
		t.Fatalf("read missing: %q", got)
	}
	// Without WorkDir we advertise no fs, and the agent does not ask.
	p2 := startInProcess(t, refagent.Options{})
	c2 := connect(t, p2, &acp.ConnOptions{})
	s2, err := c2.Handshake(ctx, acp.HandshakeOptions{Cwd: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Prompt(ctx, s2.ID, []acp.ContentBlock{acp.TextBlock("fs:read notes/todo.txt")}); err != nil {
		t.Fatal(err)
	}
	var init *acp.InitializeRequest
	for _, m := range p2.rec.messages(t) {
		if string(m["method"]) == `"initialize"` {
			init = new(acp.InitializeRequest)
			json.Unmarshal(m["params"], init)
		}
	}
	if init == nil || init.ClientCapabilities.FS.ReadTextFile || init.ClientCapabilities.Terminal {
		t.Fatalf("initialize without WorkDir: %+v", init)
	}
}
