package acp_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/internal/refagent"
)

func handshake(t *testing.T, c *acp.Conn, fix *mcpFixture) *acp.Session {
	t.Helper()
	o := acp.HandshakeOptions{Cwd: t.TempDir()}
	if fix != nil {
		o.MCP = &acp.MCPConfig{Name: mcpName, URL: fix.URL, Token: fix.Token, BridgeCommand: selfExe(t)}
	}
	sess, err := c.Handshake(ctxT(t, 30*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// Non-JSON lines, JSON that is not JSON-RPC and a response with a null id
// on the agent's stdout are skipped; the turn goes on.
func TestFaultGarbage(t *testing.T) {
	t.Parallel()
	p := startInProcess(t, refagent.Options{})
	col := &collector{}
	c := connect(t, p, &acp.ConnOptions{OnUpdate: col.OnUpdate})
	sess := handshake(t, c, nil)
	stop, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("fault:garbage")})
	if err != nil || stop != acp.StopEndTurn {
		t.Fatalf("Prompt = %q, %v", stop, err)
	}
	if got := col.text(acp.UpdateAgentMessageChunk); got != "after the garbage" {
		t.Fatalf("reply %q", got)
	}
	// 7 bad lines (the blank one is skipped silently).
	if n := c.Stats().SkippedLines; n != 7 {
		t.Fatalf("skipped %d lines, want 7", n)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}
}

// A JSON line over the limit fails the connection with ErrLineTooLong,
// and the Prompt waiting on it says so.
func TestFaultLineTooLong(t *testing.T) {
	t.Parallel()
	p := startInProcess(t, refagent.Options{})
	c := connect(t, p, &acp.ConnOptions{MaxLineBytes: 16 << 10})
	sess := handshake(t, c, nil)
	_, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("fault:bigline 40000")})
	if !errors.Is(err, acp.ErrLineTooLong) {
		t.Fatalf("Prompt = %v, want ErrLineTooLong", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), acp.ErrLineTooLong) {
		t.Fatalf("Err = %v", c.Err())
	}
	// Under the limit, the same line is fine.
	p2 := startInProcess(t, refagent.Options{})
	col := &collector{}
	c2 := connect(t, p2, &acp.ConnOptions{MaxLineBytes: 64 << 10, OnUpdate: col.OnUpdate})
	s2 := handshake(t, c2, nil)
	if _, err := c2.Prompt(ctxT(t, 10*time.Second), s2.ID, []acp.ContentBlock{acp.TextBlock("fault:bigline 40000")}); err != nil {
		t.Fatal(err)
	}
	if n := len(col.text(acp.UpdateAgentMessageChunk)); n != 40000 {
		t.Fatalf("got %d bytes", n)
	}
}

// The agent exits in the middle of a turn: Prompt fails naming the cause,
// and the update sent before the exit was delivered.
func TestFaultExitMidTurn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		process bool
		prompt  string
	}{
		{"in-process/exit-mid-turn", false, "fault:exit-mid-turn"},
		{"process/exit-mid-turn", true, "fault:exit-mid-turn"},
		{"process/crash", true, "fault:crash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p *agentProc
			if tc.process {
				p = startProcess(t)
			} else {
				p = startInProcess(t, refagent.Options{})
			}
			col := &collector{}
			c := connect(t, p, &acp.ConnOptions{OnUpdate: col.OnUpdate})
			sess := handshake(t, c, nil)
			_, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock(tc.prompt)})
			if !errors.Is(err, acp.ErrPeerClosed) {
				t.Fatalf("Prompt = %v, want ErrPeerClosed", err)
			}
			if !strings.Contains(err.Error(), "session/prompt") || !strings.Contains(err.Error(), "agent closed its output") {
				t.Fatalf("error %q does not name the call and the cause", err)
			}
			if tc.prompt == "fault:exit-mid-turn" {
				if got := col.text(acp.UpdateAgentMessageChunk); got != "about to exit" {
					t.Fatalf("update before the exit: %q", got)
				}
			}
			if tc.process {
				select {
				case err := <-p.done:
					if err == nil {
						t.Fatal("the process exited 0")
					}
					p.done <- err
				case <-time.After(5 * time.Second):
					t.Fatal("the process did not exit")
				}
			}
		})
	}
}

// Under "ask", a permission request nobody answers is rejected when
// AskTimeout passes: reject_once is chosen by kind, the agent does not
// call the tool.
func TestFaultAskTimeout(t *testing.T) {
	t.Parallel()
	fix := newMCPFixture(t, "tok-ask")
	p := startInProcess(t, refagent.Options{})
	col := &collector{}
	var dec decisions
	asked := make(chan acp.PermissionRequest, 1)
	c := connect(t, p, &acp.ConnOptions{
		OnUpdate:      col.OnUpdate,
		Permissions:   acp.PolicyAsk,
		AskTimeout:    200 * time.Millisecond,
		MCPServerName: mcpName,
		OnPermission:  dec.add,
		Asker: acp.AskerFunc(func(ctx context.Context, req acp.PermissionRequest) (string, error) {
			asked <- req
			<-ctx.Done() // nobody answers
			return "", ctx.Err()
		}),
	})
	sess := handshake(t, c, fix)
	start := time.Now()
	stop, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, getTaskPrompt)
	if err != nil || stop != acp.StopEndTurn {
		t.Fatalf("Prompt = %q, %v", stop, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("answered after %v, before the timeout", d)
	}
	req := <-asked
	if !req.ProjectTool || req.ToolCall.Title != "mcp__agentbroker__get_task" {
		t.Fatalf("the asker was shown %+v", req)
	}
	d := dec.list()
	if len(d) != 1 || d[0].Kind != acp.RejectOnce || d[0].Outcome.OptionID != refagent.OptionDeny || !strings.Contains(d[0].Reason, "timed out") {
		t.Fatalf("decision %+v, want reject_once (%q) after a timeout", d, refagent.OptionDeny)
	}
	if calls := fix.Calls(); len(calls) != 0 {
		t.Fatalf("the tool was called: %q", calls)
	}
	if got := col.text(acp.UpdateAgentMessageChunk); !strings.Contains(got, "Permission denied") {
		t.Fatalf("reply %q", got)
	}
}

// Cancel while a permission request is pending: session/cancel is sent,
// then the request is answered "cancelled", and the turn ends cancelled.
func TestFaultCancelDuringToolCall(t *testing.T) {
	t.Parallel()
	fix := newMCPFixture(t, "tok-cancel")
	p := startInProcess(t, refagent.Options{})
	col := &collector{}
	var dec decisions
	asked := make(chan struct{}, 1)
	c := connect(t, p, &acp.ConnOptions{
		OnUpdate:      col.OnUpdate,
		Permissions:   acp.PolicyAsk,
		MCPServerName: mcpName,
		OnPermission:  dec.add,
		Asker: acp.AskerFunc(func(ctx context.Context, req acp.PermissionRequest) (string, error) {
			asked <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		}),
	})
	sess := handshake(t, c, fix)
	type result struct {
		stop acp.StopReason
		err  error
	}
	done := make(chan result, 1)
	go func() {
		stop, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, getTaskPrompt)
		done <- result{stop, err}
	}()
	<-asked
	if err := c.Cancel(ctxT(t, 5*time.Second), sess.ID); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.stop != acp.StopCancelled {
		t.Fatalf("Prompt = %q, %v; want cancelled", r.stop, r.err)
	}
	if d := dec.list(); len(d) != 1 || d[0].Outcome.Outcome != acp.OutcomeCancelled {
		t.Fatalf("decisions %+v", d)
	}
	if calls := fix.Calls(); len(calls) != 0 {
		t.Fatalf("the tool was called: %q", calls)
	}
	// On the wire: the cancel notification, then the cancelled answer.
	var order []string
	for _, m := range p.rec.messages(t) {
		switch {
		case string(m["method"]) == `"session/cancel"`:
			order = append(order, "cancel")
		case m["result"] != nil && strings.Contains(string(m["result"]), `"outcome"`):
			var r acp.RequestPermissionResponse
			if err := json.Unmarshal(m["result"], &r); err != nil {
				t.Fatal(err)
			}
			if string(m["id"])[0] != '"' {
				t.Fatalf("the agent's string id came back as %s", m["id"])
			}
			order = append(order, "permission:"+r.Outcome.Outcome)
		}
	}
	if !slices.Equal(order, []string{"cancel", "permission:cancelled"}) {
		t.Fatalf("wire order %q", order)
	}
}

// The agent sends an unknown notification (ignored) and an unknown request
// with a string id (answered -32601); the connection survives.
func TestFaultUnknownMessages(t *testing.T) {
	t.Parallel()
	p := startInProcess(t, refagent.Options{})
	col := &collector{}
	c := connect(t, p, &acp.ConnOptions{OnUpdate: col.OnUpdate})
	sess := handshake(t, c, nil)
	stop, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("fault:unknown")})
	if err != nil || stop != acp.StopEndTurn {
		t.Fatalf("Prompt = %q, %v", stop, err)
	}
	if got := col.text(acp.UpdateAgentMessageChunk); got != "unknown request answered -32601" {
		t.Fatalf("reply %q", got)
	}
	found := false
	for _, m := range p.rec.messages(t) {
		if m["error"] != nil && strings.HasPrefix(string(m["id"]), `"ref-req-`) {
			found = true
		}
	}
	if !found {
		t.Fatal("no error answer to the string-id request")
	}
}

// A prompt whose context ends: session/cancel is sent; an agent that never
// answers leaves Prompt with the context's error after CancelGrace.
func TestFaultStallTimeout(t *testing.T) {
	t.Parallel()
	p := startInProcess(t, refagent.Options{})
	c := connect(t, p, &acp.ConnOptions{CancelGrace: 200 * time.Millisecond})
	sess := handshake(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Prompt(ctx, sess.ID, []acp.ContentBlock{acp.TextBlock("fault:stall")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer to session/cancel") {
		t.Fatalf("Prompt = %v", err)
	}
	sent := false
	for _, m := range p.rec.messages(t) {
		sent = sent || string(m["method"]) == `"session/cancel"`
	}
	if !sent {
		t.Fatal("no session/cancel after the context ended")
	}
}

// A Prompt whose context ends while the agent works: cancel is sent and
// the agent's "cancelled" comes back with the context's error.
func TestPromptContextCancel(t *testing.T) {
	t.Parallel()
	fix := newMCPFixture(t, "tok-ctx")
	p := startInProcess(t, refagent.Options{})
	asked := make(chan struct{}, 1)
	c := connect(t, p, &acp.ConnOptions{MCPServerName: mcpName,
		Asker: acp.AskerFunc(func(ctx context.Context, req acp.PermissionRequest) (string, error) {
			asked <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		})})
	sess := handshake(t, c, fix)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { <-asked; cancel(errors.New("the person pressed stop")) }()
	stop, err := c.Prompt(ctx, sess.ID, getTaskPrompt)
	if stop != acp.StopCancelled || err == nil || !strings.Contains(err.Error(), "the person pressed stop") {
		t.Fatalf("Prompt = %q, %v", stop, err)
	}
}

// Back-pressure then failure: a subscriber that stops reading fails the
// connection with ErrSubscriberTooSlow after UpdateWait; the updates it
// received have no gap. A slow-but-alive subscriber loses nothing.
func TestFaultSlowSubscriber(t *testing.T) {
	t.Parallel()
	t.Run("stuck", func(t *testing.T) {
		t.Parallel()
		p := startInProcess(t, refagent.Options{})
		col := &collector{block: make(chan struct{})}
		c := connect(t, p, &acp.ConnOptions{OnUpdate: col.OnUpdate, UpdateQueue: 4, UpdateWait: 200 * time.Millisecond})
		sess := handshake(t, c, nil)
		_, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("fault:flood 50")})
		if !errors.Is(err, acp.ErrSubscriberTooSlow) {
			t.Fatalf("Prompt = %v, want ErrSubscriberTooSlow", err)
		}
		close(col.block)
		c.Close()
		ups := col.all()
		checkSeq(t, ups)
		if len(ups) < 4 {
			t.Fatalf("only %d updates delivered", len(ups))
		}
	})
	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		p := startInProcess(t, refagent.Options{})
		col := &collector{}
		slow := func(u acp.Update) { time.Sleep(200 * time.Microsecond); col.OnUpdate(u) }
		c := connect(t, p, &acp.ConnOptions{OnUpdate: slow, UpdateQueue: 2, UpdateWait: 5 * time.Second})
		sess := handshake(t, c, nil)
		if _, err := c.Prompt(ctxT(t, 20*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("fault:flood 300")}); err != nil {
			t.Fatal(err)
		}
		ups := col.all() // Prompt returned: the turn's updates were delivered
		checkSeq(t, ups)
		var n int
		for _, u := range ups {
			if u.Update.Kind == acp.UpdateAgentMessageChunk {
				n++
				if want := "chunk " + itoa(n); u.Update.Text() != want {
					t.Fatalf("update %d is %q, want %q", n, u.Update.Text(), want)
				}
			}
		}
		if n != 300 {
			t.Fatalf("%d chunks delivered, want 300", n)
		}
	})
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// The agent that ignores stdin EOF (as Zed's codex-acp does) keeps
// running after the client closes: the supervisor has to kill it.
func TestFaultIgnoreEOF(t *testing.T) {
	t.Parallel()
	p := startProcess(t)
	c := connect(t, p, &acp.ConnOptions{})
	sess := handshake(t, c, nil)
	if _, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("fault:ignore-eof")}); err != nil {
		t.Fatal(err)
	}
	c.Close() // closes the agent's stdin
	select {
	case err := <-p.done:
		t.Fatalf("the agent exited (%v) although it ignores EOF", err)
	case <-time.After(300 * time.Millisecond):
	}
	p.cmd.Process.Kill()
}

// Close while a prompt waits: Prompt returns ErrClosed.
func TestCloseDuringPrompt(t *testing.T) {
	t.Parallel()
	p := startInProcess(t, refagent.Options{})
	c := connect(t, p, &acp.ConnOptions{})
	sess := handshake(t, c, nil)
	go func() { time.Sleep(100 * time.Millisecond); c.Close() }()
	_, err := c.Prompt(ctxT(t, 10*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("fault:stall")})
	if !errors.Is(err, acp.ErrClosed) {
		t.Fatalf("Prompt = %v, want ErrClosed", err)
	}
	if _, err := c.Prompt(ctxT(t, time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("hi")}); !errors.Is(err, acp.ErrClosed) {
		t.Fatalf("Prompt after Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}
