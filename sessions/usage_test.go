package sessions

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/store"
)

// Every call of the fake model reports this usage. claude-opus-4-8 costs,
// per million tokens, $5 input, $25 output, $0.50 cache read and $6.25
// 5-minute cache write, so one call costs
// 1000×$5 + 500×$25 + 2000×$0.50 + 300×$6.25 per million
// = $0.005 + $0.0125 + $0.001 + $0.001875 = $0.020375.
var costUsage = fakemodel.Usage{Input: 1000, Output: 500, CacheRead: 2000, CacheWrite: 300}

const costModel = "claude-opus-4-8"

// newCostBroker is a broker whose claude-code profile runs the reference
// agent through the inference proxy (platform-proxy credential) to a fake
// Anthropic upstream.
func newCostBroker(t *testing.T) (*broker, *fakemodel.Server) {
	t.Helper()
	up := fakemodel.New(&fakemodel.Options{Usage: costUsage})
	if _, err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return newProxiedBroker(t, proxy.Upstream{BaseURL: up.URL(), APIKey: fakemodel.DefaultAPIKey}), up
}

// newProxiedBroker is newCostBroker's broker with the proxy's Anthropic
// upstream given.
func newProxiedBroker(t *testing.T, up proxy.Upstream) *broker {
	t.Helper()
	b := newBroker(t, brokerOpts{tweak: func(o *Options) {
		o.Agents[profile.ClaudeCode] = AgentConfig{Command: []string{refagentBin}, ExtraEnv: []string{"REFAGENT_STATE_DIR={session_dir}"}}
	}})
	px, err := proxy.New(&proxy.Options{Tokens: b.svc, Recorder: b.mgr, Budget: b.mgr,
		Upstreams: map[catalog.Provider]proxy.Upstream{catalog.ProviderAnthropic: up}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	px.Mount(b.mux)
	// The price the test's hand computation uses is the catalog's.
	m, err := catalog.Embedded().Resolve("claude-code", costModel)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := catalog.Cost(m.Model, catalog.Usage{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 2000, CacheWrite5mTokens: 300}); err != nil || c.USD() != "0.020375" {
		t.Fatalf("catalog price of one call = %s, %v; the hand computation says 0.020375", c.USD(), err)
	}
	return b
}

func (b *broker) createProxied(extra map[string]any) CreateResponse {
	b.t.Helper()
	body := map[string]any{"project": b.project.ID, "agent": "claude-code", "model": costModel,
		"credential": map[string]string{"kind": "platform-proxy"}, "permission_policy": "allow-all"}
	for k, v := range extra {
		body[k] = v
	}
	var cr CreateResponse
	if code := b.do("POST", "/v1/sessions", b.admin, body, &cr); code != http.StatusCreated {
		b.t.Fatalf("create: %d %+v", code, cr)
	}
	return cr
}

type usageAnswer struct {
	GroupBy string  `json:"group_by"`
	Total   *Usage  `json:"total"`
	Groups  []Usage `json:"groups"`
}

func (b *broker) usage(query string) usageAnswer {
	b.t.Helper()
	var u usageAnswer
	if code := b.do("GET", "/v1/usage?"+query, b.admin, nil, &u); code != http.StatusOK {
		b.t.Fatalf("GET /v1/usage?%s: %d", query, code)
	}
	return u
}

// waitUsage waits for n usage events of a session (each is stored after
// its usage record).
func (b *broker) waitUsage(id string, n int) {
	b.t.Helper()
	seen := 0
	after := int64(0)
	for seen < n {
		ev, _ := b.waitEvent(id, after, EventUsage, nil)
		after = ev.Seq
		seen++
	}
}

// TestCostRollup: a scripted turn's model calls cost what the catalog's
// prices say, per session, task and project, in the session API and in
// GET /v1/usage.
func TestCostRollup(t *testing.T) {
	t.Parallel()
	b, up := newCostBroker(t)
	withTask := b.createProxied(map[string]any{"task": b.task.ID})
	if withTask.Session.Task != b.task.ID {
		t.Fatalf("session task = %q", withTask.Session.Task)
	}
	if res := b.prompt(withTask.Session.ID, b.admin, "model:call 3"); res.StopReason != "end_turn" || res.Reply != "made 3 model calls" {
		t.Fatalf("turn = %+v", res)
	}
	other := b.createProxied(nil)
	if res := b.prompt(other.Session.ID, b.admin, "model:call 1"); res.Reply != "made 1 model calls" {
		t.Fatalf("turn = %+v", res)
	}
	b.waitUsage(withTask.Session.ID, 3)
	b.waitUsage(other.Session.ID, 1)
	if n := up.Count(); n != 4 {
		t.Fatalf("upstream calls = %d; want 4", n)
	}

	// Three calls of $0.020375, one more in the other session.
	one := Usage{Calls: 1, InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 2000, CacheWriteTokens: 300, CostUSD: "0.020375"}
	three := Usage{Calls: 3, InputTokens: 3000, OutputTokens: 1500, CacheReadTokens: 6000, CacheWriteTokens: 900, CostUSD: "0.061125"}
	four := Usage{Calls: 4, InputTokens: 4000, OutputTokens: 2000, CacheReadTokens: 8000, CacheWriteTokens: 1200, CostUSD: "0.0815"}

	var in Info
	if code := b.do("GET", "/v1/sessions/"+withTask.Session.ID, b.admin, nil, &in); code != 200 || in.Usage == nil || *in.Usage != three {
		t.Errorf("GET session usage = %+v (%d); want %+v", in.Usage, code, three)
	}
	var list struct{ Sessions []Info }
	b.do("GET", "/v1/sessions?project="+b.project.ID, b.admin, nil, &list)
	for _, s := range list.Sessions {
		want := map[string]Usage{withTask.Session.ID: three, other.Session.ID: one}[s.ID]
		if s.Usage == nil || *s.Usage != want {
			t.Errorf("listed session %s usage = %+v; want %+v", s.ID, s.Usage, want)
		}
	}
	for q, want := range map[string]Usage{
		"session=" + withTask.Session.ID: three,
		"task=" + b.task.ID:              three,
		"project=" + b.project.ID:        four,
	} {
		if got := b.usage(q); got.Total == nil || *got.Total != want {
			t.Errorf("usage %s = %+v; want %+v", q, got.Total, want)
		}
	}
	byDay := b.usage("project=" + b.project.ID + "&group_by=day")
	if len(byDay.Groups) != 1 || byDay.Groups[0].CostUSD != "0.0815" || len(byDay.Groups[0].Key) != len("2006-01-02") {
		t.Errorf("by day = %+v", byDay)
	}
	byTask := b.usage("project=" + b.project.ID + "&group_by=task")
	if len(byTask.Groups) != 2 || byTask.Groups[1].Key != b.task.ID || byTask.Groups[1].CostUSD != "0.061125" || byTask.Groups[0].CostUSD != "0.020375" {
		t.Errorf("by task = %+v", byTask)
	}
	if got := b.usage("project=" + b.project.ID + "&group_by=model"); len(got.Groups) != 1 || got.Groups[0].Key != costModel {
		t.Errorf("by model = %+v", got)
	}
	var e map[string]any
	if code := b.do("GET", "/v1/usage?group_by=week", b.admin, nil, &e); code != http.StatusBadRequest {
		t.Errorf("group_by=week: %d", code)
	}
	if code := b.do("GET", "/v1/usage", withTask.ViewerToken, nil, &e); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Errorf("a viewer token read GET /v1/usage: %d", code)
	}
	var bad map[string]any
	if code := b.do("POST", "/v1/sessions", b.admin, map[string]any{"project": b.project.ID, "agent": "claude-code",
		"credential": map[string]string{"kind": "platform-proxy"}, "task": "tsk_nope"}, &bad); code != http.StatusBadRequest {
		t.Errorf("create with an unknown task: %d %v", code, bad)
	}
}

// TestBudgetStopsAtProxy: a session that spends past its budget is stopped
// at the proxy: nothing more reaches the upstream, budget_exceeded is
// recorded and the turn ends with that reason.
func TestBudgetStopsAtProxy(t *testing.T) {
	t.Parallel()
	b, up := newCostBroker(t)
	// $0.05: two calls ($0.04075) leave it unspent, the third spends it
	// ($0.061125), the fourth is refused.
	cr := b.createProxied(map[string]any{"budget_usd": "0.05"})
	if cr.Session.BudgetUSD != "0.05" {
		t.Fatalf("session budget = %q", cr.Session.BudgetUSD)
	}
	id := cr.Session.ID
	res := b.prompt(id, b.admin, "model:call 10")
	if res.StopReason != StopBudgetExceeded || !strings.Contains(res.Error, "spent $0.061125 of its $0.05 budget") {
		t.Errorf("turn = %+v; want stop reason budget_exceeded", res)
	}
	if n := up.Count(); n != 3 {
		t.Errorf("upstream calls = %d; want 3, none after the budget was spent", n)
	}
	_, ev := b.waitEvent(id, 0, EventBudgetExceeded, nil)
	if msg, _ := ev["message"].(string); !strings.Contains(msg, "spent $0.061125 of its $0.05 budget") {
		t.Errorf("budget_exceeded event = %v", ev)
	}
	b.waitEvent(id, 0, EventTurnEnd, func(d map[string]any) bool { return d["stop_reason"] == string(StopBudgetExceeded) })
	_, refused := b.waitEvent(id, 0, EventUsage, func(d map[string]any) bool { return d["reason"] == string(proxy.ReasonBudgetExceeded) })
	if refused["status"] != 402.0 {
		t.Errorf("refused call = %v", refused)
	}
	// The next turn is refused at once, too (the agent sees the 402 or,
	// if the broker's cancel comes first, its own cancelled request).
	if res := b.prompt(id, b.admin, "model:call 1"); res.StopReason != StopBudgetExceeded || !strings.Contains(res.Reply, "model call 1 failed") {
		t.Errorf("next turn = %+v", res)
	}
	if n := up.Count(); n != 3 {
		t.Errorf("upstream calls = %d after the next turn; want 3", n)
	}
	if got := b.usage("session=" + id); got.Total.CostUSD != "0.061125" {
		t.Errorf("spent = %+v", got.Total)
	}
}

// TestTaskBudget: a task's budget counts every session linked to it.
func TestTaskBudget(t *testing.T) {
	t.Parallel()
	b, up := newCostBroker(t)
	budget := int64(30_000_000_000) // $0.03: one call leaves it unspent, two spend it
	if _, err := b.db.UpdateTask(context.Background(), b.project.ID, b.task.ID, store.TaskUpdate{BudgetPicoUSD: &budget}); err != nil {
		t.Fatal(err)
	}
	first := b.createProxied(map[string]any{"task": b.task.ID})
	if res := b.prompt(first.Session.ID, b.admin, "model:call 1"); res.Reply != "made 1 model calls" {
		t.Fatalf("turn = %+v", res)
	}
	b.waitUsage(first.Session.ID, 1)
	second := b.createProxied(map[string]any{"task": b.task.ID})
	res := b.prompt(second.Session.ID, b.admin, "model:call 5")
	if res.StopReason != StopBudgetExceeded || !strings.Contains(res.Error, "task "+b.task.ID+" has spent $0.04075 of its $0.03 budget") {
		t.Errorf("turn = %+v", res)
	}
	if n := up.Count(); n != 2 {
		t.Errorf("upstream calls = %d; want 2", n)
	}
}

// TestTurnFailsWhenEveryModelCallFails: a turn whose every model call
// failed ends failed with the reason, though the agent answered as if it
// had worked: calls the proxy refused (a spent budget), calls the upstream
// failed. The session stays usable.
func TestTurnFailsWhenEveryModelCallFails(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		b, up := newCostBroker(t)
		// $0.01: the first call ($0.020375) spends it.
		id := b.createProxied(map[string]any{"budget_usd": "0.01"}).Session.ID
		if res := b.prompt(id, b.admin, "model:call 1"); res.Failed || res.Error != "" || res.ModelCalls != 1 {
			t.Fatalf("first turn = %+v", res)
		}
		res := b.prompt(id, b.admin, "model:call 3")
		if !res.Failed || res.StopReason != StopBudgetExceeded || res.ModelCalls != 1 || res.FailedModelCalls != 1 ||
			!strings.Contains(res.Error, "spent $0.020375 of its $0.01 budget") {
			t.Errorf("turn = %+v; want failed with the refusal", res)
		}
		if n := up.Count(); n != 1 {
			t.Errorf("upstream calls = %d", n)
		}
		_, ev := b.waitEvent(id, 0, EventTurnFailed, nil)
		if ev["reason"] != FailModelCalls || ev["error"] != res.Error || ev["turn"] != 2.0 ||
			ev["model_calls"] != 1.0 || ev["failed_model_calls"] != 1.0 {
			t.Errorf("turn_failed = %v", ev)
		}
	})
	t.Run("upstream error", func(t *testing.T) {
		t.Parallel()
		up := fakemodel.New(&fakemodel.Options{Usage: costUsage, Fault: "status=529"})
		if _, err := up.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { up.Close() })
		b := newProxiedBroker(t, proxy.Upstream{BaseURL: up.URL(), APIKey: fakemodel.DefaultAPIKey})
		id := b.createProxied(nil).Session.ID
		res := b.prompt(id, b.admin, "model:call 3")
		if !res.Failed || res.StopReason != "end_turn" || res.ModelCalls != 1 || res.FailedModelCalls != 1 ||
			!strings.Contains(res.Error, "the turn's only model call failed: upstream_error 529") {
			t.Errorf("turn = %+v; want failed with the upstream's error", res)
		}
		_, ev := b.waitEvent(id, 0, EventTurnFailed, nil)
		if ev["reason"] != FailModelCalls || ev["error"] != res.Error || ev["stop_reason"] != "end_turn" {
			t.Errorf("turn_failed = %v", ev)
		}
		for _, e := range b.events(id) {
			if e.Type == EventTurnEnd {
				t.Errorf("a failed turn also has a turn_end event: %s", e.Data)
			}
		}
		var in Info
		if b.do("GET", "/v1/sessions/"+id, b.admin, nil, &in); in.State != StateIdle || in.LastError != res.Error {
			t.Errorf("session after the failed turn: state %s, last_error %q", in.State, in.LastError)
		}
		// The same session's next turn without model calls is not failed.
		if res := b.prompt(id, b.admin, "hello"); res.Failed || res.Error != "" || res.ModelCalls != 0 {
			t.Errorf("next turn = %+v", res)
		}
	})
}

// TestTurnWithOneOKCallSucceeds: one model call that went through is
// enough: a turn whose later call failed upstream ends as the agent says.
func TestTurnWithOneOKCallSucceeds(t *testing.T) {
	t.Parallel()
	up := fakemodel.New(&fakemodel.Options{Usage: costUsage})
	if _, err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	// The first call reaches the fake model; every later one is 529.
	target, err := url.Parse(up.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var calls atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			rp.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	}))
	t.Cleanup(front.Close)
	b := newProxiedBroker(t, proxy.Upstream{BaseURL: front.URL, APIKey: fakemodel.DefaultAPIKey})
	id := b.createProxied(nil).Session.ID
	res := b.prompt(id, b.admin, "model:call 2")
	if res.Failed || res.Error != "" || res.StopReason != "end_turn" || res.ModelCalls != 2 || res.FailedModelCalls != 1 ||
		!strings.Contains(res.Reply, "model call 2 failed: 529") {
		t.Errorf("turn = %+v; want end_turn, not failed", res)
	}
	_, end := b.waitEvent(id, 0, EventTurnEnd, nil)
	if end["model_calls"] != 2.0 || end["failed_model_calls"] != 1.0 {
		t.Errorf("turn_end = %v", end)
	}
	for _, e := range b.events(id) {
		if e.Type == EventTurnFailed {
			t.Errorf("turn_failed: %s", e.Data)
		}
	}
}

// TestTurnFailsOnAgentError: an agent that answers the prompt with an
// error fails the turn with its message.
func TestTurnFailsOnAgentError(t *testing.T) {
	t.Parallel()
	b, _ := newCostBroker(t)
	id := b.createProxied(nil).Session.ID
	res := b.prompt(id, b.admin, "fault:error the vendor is unreachable")
	if !res.Failed || !strings.Contains(res.Error, "the vendor is unreachable") {
		t.Errorf("turn = %+v", res)
	}
	_, ev := b.waitEvent(id, 0, EventTurnFailed, nil)
	if ev["reason"] != FailAgentError {
		t.Errorf("turn_failed = %v", ev)
	}
}
