package proxy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
)

// Recorder receives one record per authenticated request: forwarded ones
// with their usage and cost, refused ones with the reason. The session
// broker stores them and emits them as session events.
//
// RecordUsage is called on the request's goroutine once the response is
// complete, before the handler returns (for a chunked stream, before the
// client sees the final chunk): it must not block. ctx carries the
// request's values but is never cancelled.
type Recorder interface {
	RecordUsage(ctx context.Context, r UsageRecord)
}

// Outcome is how a request ended; the values are the
// agentbroker_proxy_requests_total outcome label.
type Outcome string

// The outcomes.
const (
	// OutcomeOK: the upstream answered 2xx and the whole body reached the client.
	OutcomeOK Outcome = "ok"
	// OutcomeUpstreamError: the upstream answered an error status, passed on.
	OutcomeUpstreamError Outcome = "upstream_error"
	// OutcomeUnreachable: no response from the upstream (connection
	// refused, no headers in time); the client got 502 or 504.
	OutcomeUnreachable Outcome = "unreachable"
	// OutcomeTruncated: the upstream broke off mid-body; a stream got an
	// error event, a JSON body an aborted connection.
	OutcomeTruncated Outcome = "truncated"
	// OutcomeClientGone: the client went away before the answer's last
	// event (or the end of a JSON body); the upstream request was
	// cancelled. A client that hangs up after the last event (Codex does,
	// on response.completed) got the whole answer: OutcomeOK.
	OutcomeClientGone Outcome = "client_gone"
	// OutcomeRefused: the proxy refused the request before any upstream call.
	OutcomeRefused Outcome = "refused"
)

// UsageRecord is one request through the proxy.
type UsageRecord struct {
	// Session, Project and Agent come from the inference token; TokenID is
	// its jti.
	Session string
	Project string
	Agent   string
	TokenID string
	// Route is the API route asked.
	Route Route
	// Endpoint is the route's API style.
	Endpoint catalog.Endpoint
	// WireModel is the model as the client sent it (cut to 256 bytes);
	// Model is its canonical ID once resolved ("" when refused before).
	WireModel string
	Model     string
	// Provider is the model's provider, the upstream asked.
	Provider catalog.Provider
	// UserKey reports that the session's own key was used (passthrough),
	// not the platform's.
	UserKey bool
	// Usage is what the upstream reported; UsageReported is false when it
	// reported nothing (refusals, errors, count_tokens, truncated streams
	// before the usage event).
	Usage         catalog.Usage
	UsageReported bool
	// Cost prices Usage on Model with catalog.Cost.
	Cost catalog.Amount
	// Admitted reports that the Budget was asked about the request (it
	// passed every other check): a Budget that counts the calls it was
	// asked about knows by it which records close them.
	Admitted bool
	// Status is the HTTP status the client got (0 if it went away first).
	Status  int
	Outcome Outcome
	// Reason and Message say why, for refusals and failures.
	Reason  Reason
	Message string
	// Start is when the request reached the proxy; TTFB is the time to
	// the first body byte sent to the client (0 if none); Duration the
	// time to the end.
	Start    time.Time
	TTFB     time.Duration
	Duration time.Duration
}

// MemoryRecorder keeps records in memory, for tests and for a broker that
// drains them. It is safe for concurrent use.
type MemoryRecorder struct {
	mu      sync.Mutex
	records []UsageRecord
	changed chan struct{}
}

var _ Recorder = (*MemoryRecorder)(nil)

// RecordUsage appends r.
func (m *MemoryRecorder) RecordUsage(_ context.Context, r UsageRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = append(m.records, r)
	if m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
}

// Records returns a copy of the records so far, in order.
func (m *MemoryRecorder) Records() []UsageRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.records)
}

// Wait returns the records once there are at least n, or ctx's error.
func (m *MemoryRecorder) Wait(ctx context.Context, n int) ([]UsageRecord, error) {
	for {
		m.mu.Lock()
		if len(m.records) >= n {
			out := slices.Clone(m.records)
			m.mu.Unlock()
			return out, nil
		}
		if m.changed == nil {
			m.changed = make(chan struct{})
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("proxy: wait for %d records: %w", n, ctx.Err())
		}
	}
}
