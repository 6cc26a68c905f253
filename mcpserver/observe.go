package mcpserver

import (
	"context"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/tokens"
)

// Observer is told what agents do with their MCP tokens. The session broker
// implements it: ToolsListed is its readiness signal (this session's MCP
// token reached tools/list, so the agent sees our tools), ToolCalled feeds
// the session's activity view.
//
// Both methods are called synchronously on the request's goroutine, after
// the answer is decided and before it is written: they must return quickly
// and never block (hand the event to a bounded queue if there is work to
// do). They may be called concurrently.
type Observer interface {
	// ToolsListed reports a successful tools/list by the token c.
	ToolsListed(ctx context.Context, c tokens.Claims)
	// ToolCalled reports one finished tools/call of a known tool, whatever
	// its outcome.
	ToolCalled(ctx context.Context, call ToolCall)
}

// RevocationObserver is what an Observer may add to hear of requests
// refused because their token was revoked. Only revocations are reported:
// their claims are authentic (the signature is checked first), so the
// refusal can be laid at the right session's door; a forged or garbled
// token names no one.
type RevocationObserver interface {
	RevokedTokenUsed(ctx context.Context, c tokens.Claims)
}

// ToolCall is one tools/call, as the observer sees it.
type ToolCall struct {
	// Project, Session, Agent and TokenID (the jti) come from the token.
	Project string
	Session string
	Agent   string
	TokenID string
	// Tool is the tool's name.
	Tool string
	// Start is when the call began (Options.Now) and Duration how long it
	// took.
	Start    time.Time
	Duration time.Duration
	// Outcome is how it ended.
	Outcome Outcome
	// Error is the message the model was shown when Outcome is not
	// OutcomeOK (never an internal error's details).
	Error string
}

// Outcome is how a tool call ended; the values are metric labels.
type Outcome string

// The outcomes.
const (
	// OutcomeOK: the tool answered.
	OutcomeOK Outcome = "ok"
	// OutcomeInvalidArguments: the arguments broke the input schema, or
	// the store refused a value.
	OutcomeInvalidArguments Outcome = "invalid_arguments"
	// OutcomeNotFound: the ID names nothing in the token's project.
	OutcomeNotFound Outcome = "not_found"
	// OutcomeForbidden: the token may not do this (a task not bound to its
	// session, a scope it lacks).
	OutcomeForbidden Outcome = "forbidden"
	// OutcomeCancelled: the request's context ended first.
	OutcomeCancelled Outcome = "cancelled"
	// OutcomeInternal: the store failed, or the handler panicked.
	OutcomeInternal Outcome = "internal"
)

// nopObserver is the default Observer.
type nopObserver struct{}

func (nopObserver) ToolsListed(context.Context, tokens.Claims) {}
func (nopObserver) ToolCalled(context.Context, ToolCall)       {}

// MemoryObserver records what it is told, for tests (and for a broker
// without a session manager). It keeps the most recent Limit events of each
// kind (zero: 10000), dropping the oldest. The zero value is ready to use
// and it is safe for concurrent use.
type MemoryObserver struct {
	Limit int

	mu     sync.Mutex
	listed []tokens.Claims
	calls  []ToolCall
	wake   chan struct{} // closed and replaced on every event
}

var (
	_ Observer = (*MemoryObserver)(nil)
	_ Observer = nopObserver{}
)

func (m *MemoryObserver) limit() int {
	if m.Limit <= 0 {
		return 10000
	}
	return m.Limit
}

// ToolsListed records c.
func (m *MemoryObserver) ToolsListed(_ context.Context, c tokens.Claims) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listed = appendBounded(m.listed, c, m.limit())
	m.notifyLocked()
}

// ToolCalled records call.
func (m *MemoryObserver) ToolCalled(_ context.Context, call ToolCall) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = appendBounded(m.calls, call, m.limit())
	m.notifyLocked()
}

func (m *MemoryObserver) notifyLocked() {
	if m.wake != nil {
		close(m.wake)
		m.wake = nil
	}
}

// appendBounded appends v, keeping at most 2×limit entries: the oldest
// half is dropped in one copy when that is reached (amortised O(1)).
// Readers see the last limit (newest).
func appendBounded[T any](s []T, v T, limit int) []T {
	if len(s) >= 2*limit {
		s = append(s[:0], s[len(s)-limit+1:]...)
	}
	return append(s, v)
}

func newest[T any](s []T, limit int) []T {
	if len(s) > limit {
		s = s[len(s)-limit:]
	}
	return append([]T(nil), s...)
}

// Listed returns the claims of the recorded tools/list calls, oldest first.
func (m *MemoryObserver) Listed() []tokens.Claims {
	m.mu.Lock()
	defer m.mu.Unlock()
	return newest(m.listed, m.limit())
}

// Calls returns the recorded tool calls, oldest first.
func (m *MemoryObserver) Calls() []ToolCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return newest(m.calls, m.limit())
}

// SessionListed reports whether a token of session reached tools/list.
func (m *MemoryObserver) SessionListed(session string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range newest(m.listed, m.limit()) {
		if c.Session == session {
			return true
		}
	}
	return false
}

// Wait blocks until cond (called with the observer's lock not held, on
// fresh copies) holds or ctx ends; it reports whether cond held.
func (m *MemoryObserver) Wait(ctx context.Context, cond func(listed []tokens.Claims, calls []ToolCall) bool) bool {
	for {
		m.mu.Lock()
		listed, calls := newest(m.listed, m.limit()), newest(m.calls, m.limit())
		if m.wake == nil {
			m.wake = make(chan struct{})
		}
		wake := m.wake
		m.mu.Unlock()
		if cond(listed, calls) {
			return true
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return false
		}
	}
}

// serverMetrics are the server's series.
type serverMetrics struct {
	calls        *metrics.CounterVec   // tool, outcome
	duration     *metrics.HistogramVec // tool
	authFailures *metrics.CounterVec   // reason
	refused      *metrics.CounterVec   // reason
	streams      *metrics.Gauge
}

func newServerMetrics(r *metrics.Registry) *serverMetrics {
	return &serverMetrics{
		calls: r.NewCounterVec("agentbroker_mcp_tool_calls_total",
			"MCP tool calls answered, by tool and outcome.", "tool", "outcome"),
		duration: r.NewHistogramVec("agentbroker_mcp_tool_call_duration_seconds",
			"Time to answer MCP tool calls, by tool.", nil, "tool"),
		authFailures: r.NewCounterVec("agentbroker_mcp_auth_failures_total",
			"MCP requests refused by authentication or authorization, by reason.", "reason"),
		refused: r.NewCounterVec("agentbroker_mcp_requests_refused_total",
			"MCP requests refused before authentication or after it for limits, by reason (origin, method, body_too_large, rate_limited, too_many_streams).", "reason"),
		streams: r.NewGaugeVec("agentbroker_mcp_get_streams",
			"GET streams open on the MCP endpoint.").With(),
	}
}
