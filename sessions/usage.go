package sessions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// EventBudgetExceeded is recorded when the proxy refuses a session's model
// call because its budget, or its task's, is spent.
const EventBudgetExceeded = "budget_exceeded"

// StopBudgetExceeded is the stop reason of a turn during which the proxy
// refused a model call for a spent budget: the broker cancels the turn
// (the agent can do nothing more) and reports this reason instead of the
// agent's "cancelled".
const StopBudgetExceeded acp.StopReason = "budget_exceeded"

// UsageStore is what the Manager needs of the store for usage and budgets.
type UsageStore interface {
	store.Usage
	GetTask(ctx context.Context, projectID, id string) (store.Task, error)
}

// Usage is the usage and cost of a set of model calls, in the API.
type Usage struct {
	// Key is the group's key (a day, session, task or model), absent for
	// a total.
	Key              string `json:"key,omitempty"`
	Calls            int64  `json:"calls"`
	InputTokens      int64  `json:"input_tokens"`
	OutputTokens     int64  `json:"output_tokens"`
	CacheReadTokens  int64  `json:"cache_read_tokens"`
	CacheWriteTokens int64  `json:"cache_write_tokens"`
	// CostUSD is exact decimal dollars at catalog prices (catalog.Amount.USD).
	CostUSD string `json:"cost_usd"`
}

func usageOf(s store.UsageSum) Usage {
	return Usage{Key: s.Key, Calls: s.Calls, InputTokens: s.InputTokens, OutputTokens: s.OutputTokens,
		CacheReadTokens: s.CacheReadTokens, CacheWriteTokens: s.CacheWriteTokens, CostUSD: catalog.Amount(s.CostPicoUSD).USD()}
}

// spend is what a session or a task has spent, in pico-USD: loaded from
// the store once, then kept up to date in memory as calls are recorded, so
// that the proxy's budget check reads no store.
type spend struct {
	once sync.Once
	err  error
	n    atomic.Int64
}

// load reads the spent total from the store on first use.
func (sp *spend) load(m *Manager, f store.UsageFilter) error {
	sp.once.Do(func() {
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		defer cancel()
		sums, err := m.st.UsageTotals(ctx, f)
		if err != nil {
			sp.err = fmt.Errorf("read the spent total: %w", err)
			return
		}
		if len(sums) == 1 {
			sp.n.Add(sums[0].CostPicoUSD)
		}
	})
	return sp.err
}

// taskSpend returns the spend of a task (one per task, for every session
// linked to it).
func (m *Manager) taskSpend(project, task string) *spend {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tasks == nil {
		m.tasks = map[string]*spend{}
	}
	sp, ok := m.tasks[project+"\x00"+task]
	if !ok {
		sp = &spend{}
		m.tasks[project+"\x00"+task] = sp
	}
	return sp
}

// Allow implements proxy.Budget: a session whose budget, or whose task's,
// is spent may make no more model calls.
func (m *Manager) Allow(ctx context.Context, c tokens.Claims) error {
	s := m.liveSession(c.Session)
	if s == nil || s.project != c.Project {
		return nil // the token check decides about sessions that are gone
	}
	s.inflight.Add(1) // until RecordUsage has the call (Admitted)
	s.mu.Lock()
	task, budget := s.cfg.Task, s.budget
	s.mu.Unlock()
	if budget > 0 {
		if err := s.spent.load(m, store.UsageFilter{SessionID: s.id}); err != nil {
			return err
		}
		if n := catalog.Amount(s.spent.n.Load()); n >= budget {
			return s.overBudget(fmt.Errorf("%w: this session has spent $%s of its $%s budget; no more model calls are allowed (ask for a larger budget or a new session)",
				proxy.ErrBudgetExceeded, n.USD(), budget.USD()))
		}
	}
	if task == "" {
		return nil
	}
	t, err := m.st.GetTask(ctx, s.project, task)
	if err != nil {
		return fmt.Errorf("read the session's task: %w", err)
	}
	if t.BudgetPicoUSD <= 0 {
		return nil
	}
	sp := m.taskSpend(s.project, task)
	if err := sp.load(m, store.UsageFilter{ProjectID: s.project, TaskID: task}); err != nil {
		return err
	}
	if n, b := catalog.Amount(sp.n.Load()), catalog.Amount(t.BudgetPicoUSD); n >= b {
		return s.overBudget(fmt.Errorf("%w: task %s has spent $%s of its $%s budget; no more model calls are allowed",
			proxy.ErrBudgetExceeded, task, n.USD(), b.USD()))
	}
	return nil
}

// spent counts a recorded call's cost against its session and task.
func (s *session) addSpent(cost catalog.Amount) {
	if cost <= 0 {
		return
	}
	s.mu.Lock()
	task := s.cfg.Task
	s.mu.Unlock()
	if s.spent.load(s.m, store.UsageFilter{SessionID: s.id}) == nil {
		s.spent.n.Add(int64(cost))
	}
	if task != "" {
		sp := s.m.taskSpend(s.project, task)
		if sp.load(s.m, store.UsageFilter{ProjectID: s.project, TaskID: task}) == nil {
			sp.n.Add(int64(cost))
		}
	}
}

// overBudget marks the running turn as ended by a spent budget, before
// the proxy answers the refusal (so that however fast the agent gives up,
// the turn's end says why), and cancels it: the agent can only fail on or
// retry. It returns err.
func (s *session) overBudget(err error) error {
	msg := err.Error()
	s.mu.Lock()
	t := s.turn
	s.mu.Unlock()
	if t != nil {
		t.budget.CompareAndSwap(nil, &msg)
	}
	return err
}

// budgetCancelGrace is how long a turn refused for its budget may take to
// end by itself before the broker cancels it: the agent first gets the
// 402 and its message, which it shows, and ends its turn on it (Claude
// Code and Codex do not retry a 402); the cancel is the backstop for one
// that keeps asking.
const budgetCancelGrace = 2 * time.Second

// cancelOverBudget cancels turn t if it has not ended budgetCancelGrace
// after its first refusal. Off the proxy's request goroutine.
func (s *session) cancelOverBudget(t *turn) {
	s.mu.Lock()
	p, acpID := s.cur, s.acpID
	s.mu.Unlock()
	if p == nil {
		return
	}
	s.wg.Go(func() {
		timer := time.NewTimer(budgetCancelGrace)
		defer timer.Stop()
		select {
		case <-t.done:
			return
		case <-s.quitCtx.Done():
			return
		case <-timer.C:
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.quitCtx), s.m.opts.CancelGrace)
		defer cancel()
		if err := p.conn.Cancel(ctx, acpID); err != nil {
			s.m.log.Warn("sessions: cancel a turn over budget", "session", s.id, "err", err)
		}
	})
}

// budgetRefused records a budget refusal as a budget_exceeded event, once
// per turn (the agent may retry).
func (s *session) budgetRefused(r proxy.UsageRecord) {
	s.mu.Lock()
	t := s.turn
	s.mu.Unlock()
	ev := map[string]any{"message": r.Message, "model": r.Model, "route": r.Route}
	if t != nil {
		ev["turn"] = t.n
		if !t.budgetEvent.CompareAndSwap(false, true) {
			return
		}
		s.cancelOverBudget(t)
	}
	s.enqueue(EventBudgetExceeded, ev)
}

// UsageQuery selects calls for Manager.Usage.
type UsageQuery = store.UsageFilter

// Usage adds up recorded model calls: one total, or one per group.
func (m *Manager) Usage(ctx context.Context, q UsageQuery) ([]Usage, error) {
	if !q.GroupBy.Valid() {
		return nil, fmt.Errorf("%w: group_by must be day, session, task or model", ErrInvalidRequest)
	}
	sums, err := m.st.UsageTotals(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]Usage, len(sums))
	for i, s := range sums {
		out[i] = usageOf(s)
	}
	return out, nil
}

// withUsage fills the sessions' usage, by one grouped query.
func (m *Manager) withUsage(ctx context.Context, project string, list []Info) {
	if len(list) == 0 {
		return
	}
	f := store.UsageFilter{ProjectID: project, GroupBy: store.UsageBySession}
	if len(list) == 1 {
		f = store.UsageFilter{SessionID: list[0].ID, GroupBy: store.UsageBySession}
	}
	sums, err := m.st.UsageTotals(ctx, f)
	if err != nil {
		m.log.Warn("sessions: read usage totals", "err", err)
		return
	}
	by := make(map[string]store.UsageSum, len(sums))
	for _, s := range sums {
		by[s.Key] = s
	}
	for i := range list {
		u := usageOf(by[list[i].ID])
		u.Key = ""
		list[i].Usage = &u
	}
}

// handleUsage answers GET /v1/usage?project=&task=&session=&since=&until=&group_by=.
func (m *Manager) handleUsage(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := UsageQuery{ProjectID: v.Get("project"), TaskID: v.Get("task"), SessionID: v.Get("session"),
		GroupBy: store.UsageGroup(v.Get("group_by"))}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		s := v.Get(f.name)
		if s == "" {
			continue
		}
		t, err := parseWhen(s)
		if err != nil {
			server.WriteError(w, http.StatusBadRequest, "invalid_request", f.name+": "+err.Error())
			return
		}
		*f.dst = t
	}
	if q.GroupBy == "none" || q.GroupBy == "total" {
		q.GroupBy = store.UsageTotal
	}
	list, err := m.Usage(r.Context(), q)
	if err != nil {
		m.writeErr(w, err)
		return
	}
	out := map[string]any{"group_by": string(q.GroupBy)}
	if q.GroupBy == store.UsageTotal {
		out["total"] = list[0]
	} else {
		out["groups"] = list
	}
	server.WriteJSON(w, http.StatusOK, out)
}

// parseWhen reads an RFC 3339 time or a UTC date (2006-01-02).
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want an RFC 3339 time or a date (2006-01-02)")
}
