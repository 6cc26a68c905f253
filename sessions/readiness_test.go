package sessions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/acp/profile"
)

// An agent that opens its MCP connection only after session/new has
// returned (Copilot CLI, Qwen Code): the session becomes ready, and its
// first prompt is sent, only once our MCP server has seen the session's
// token at tools/list. The reference agent here connects 1.5 s after
// session/new; a prompt sent before would find no MCP tool, so the first
// turn's reply carrying the task proves the order, and the events say it.
func TestReadyWaitsForMCPAfterSessionNew(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{tweak: func(o *Options) {
		ac := o.Agents[profile.Custom]
		ac.ExtraEnv = append(ac.ExtraEnv, "REFAGENT_MCP_DELAY=1500ms")
		o.Agents[profile.Custom] = ac
	}})
	cr := b.create("allow-all", b.getTaskPrompt())
	id := cr.Session.ID
	if cr.Session.MCP.Status != MCPConnected {
		t.Fatalf("created with MCP %+v, want connected", cr.Session.MCP)
	}
	b.waitEvent(id, 0, EventTurnEnd, nil)
	// The first turn called get_task through MCP: its prompt did not reach
	// the agent before its MCP connection.
	var called bool
	for _, e := range b.events(id) {
		called = called || (e.Type == EventToolCallMCP && strings.Contains(string(e.Data), `"tool":"get_task"`) &&
			strings.Contains(string(e.Data), `"outcome":"ok"`))
	}
	if !called {
		t.Error("the first turn made no successful get_task call (the prompt reached the agent before its MCP connection?)")
	}
	var acpSeq, connSeq, readySeq, promptSeq int64
	for _, e := range b.events(id) {
		switch {
		case e.Type == EventACPSession && acpSeq == 0:
			acpSeq = e.Seq
		case e.Type == EventMCPConnected && connSeq == 0:
			connSeq = e.Seq
		case e.Type == EventState && readySeq == 0 && strings.Contains(string(e.Data), `"state":"ready"`):
			readySeq = e.Seq
		case e.Type == EventPrompt && promptSeq == 0:
			promptSeq = e.Seq
		}
	}
	if acpSeq == 0 || connSeq == 0 || readySeq == 0 || promptSeq == 0 ||
		acpSeq >= connSeq || connSeq >= readySeq || readySeq >= promptSeq {
		t.Errorf("events out of order: acp_session %d, mcp_connected %d, ready %d, prompt %d", acpSeq, connSeq, readySeq, promptSeq)
	}
	if _, err := b.mgr.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// The wait is bounded: an agent that connects later than ReadyTimeout
// leaves the session ready with a clear "not connected" state and event,
// and its late tools/list then marks it connected.
func TestReadyTimeoutThenLateMCP(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{tweak: func(o *Options) {
		o.ReadyTimeout = 300 * time.Millisecond
		ac := o.Agents[profile.Custom]
		ac.ExtraEnv = append(ac.ExtraEnv, "REFAGENT_MCP_DELAY=2s")
		o.Agents[profile.Custom] = ac
	}})
	cr := b.create("allow-all", "")
	id := cr.Session.ID
	if cr.Session.MCP.Status != MCPNotConnected {
		t.Fatalf("created with MCP %+v, want not_connected", cr.Session.MCP)
	}
	b.waitEvent(id, 0, EventMCPNotConnected, nil)
	_, d := b.waitEvent(id, 0, EventMCPConnected, nil)
	if d["late"] != true {
		t.Errorf("late connection event = %v", d)
	}
	if _, err := b.mgr.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}
