package store

import (
	"context"
	"time"
)

// UsageRecord is one model call through the inference proxy, with what it
// cost. The session broker writes one per call next to the session's
// "usage" event, so that totals are a query over these rows rather than a
// scan of every event log.
type UsageRecord struct {
	// SessionID is the session the call was made for; it must be
	// recorded (PutSession) first, in ProjectID. Required.
	SessionID string
	// ProjectID is the session's project. Required.
	ProjectID string
	// TaskID is the task the session works on; empty when none.
	TaskID string
	// Model is the canonical catalog ID ("" when the call was refused
	// before the model resolved); Provider its provider.
	Model    string
	Provider string
	// Token counts, disjoint (input excludes cache reads and writes);
	// CacheWriteTokens counts both cache lifetimes.
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	// CostPicoUSD is the call's cost at catalog prices in pico-USD
	// (1e-12 USD, catalog.Amount): exact, summed without rounding.
	CostPicoUSD int64
	// Outcome is how the call ended (the proxy's outcome: ok, refused, …).
	Outcome string
	// At is when the call reached the proxy; zero means now. It is kept
	// at microsecond precision, in UTC.
	At time.Time
}

// UsageGroup is how UsageTotals groups records.
type UsageGroup string

// The groupings. Keys are a UTC date (2006-01-02) for UsageByDay, the
// session, task (empty for calls of sessions without one) or model ID.
const (
	UsageTotal     UsageGroup = ""
	UsageByDay     UsageGroup = "day"
	UsageBySession UsageGroup = "session"
	UsageByTask    UsageGroup = "task"
	UsageByModel   UsageGroup = "model"
)

// Valid reports whether g is one of the groupings.
func (g UsageGroup) Valid() bool {
	switch g {
	case UsageTotal, UsageByDay, UsageBySession, UsageByTask, UsageByModel:
		return true
	}
	return false
}

// UsageFilter selects the records UsageTotals adds up. Zero fields match
// everything.
type UsageFilter struct {
	ProjectID string
	TaskID    string
	SessionID string
	// Since and Until bound UsageRecord.At: Since <= At < Until.
	Since time.Time
	Until time.Time
	// GroupBy: one total (UsageTotal), or one per key.
	GroupBy UsageGroup
}

// UsageSum is the total of a group of usage records.
type UsageSum struct {
	// Key is the group's key ("" for UsageTotal).
	Key              string
	Calls            int64
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	CostPicoUSD      int64
}

// Usage persists the proxy's per-call usage records.
type Usage interface {
	// AddUsage stores one record. Its session must be recorded in its
	// project (ErrNotFound otherwise); negative counts or cost are
	// ErrInvalid.
	AddUsage(ctx context.Context, r UsageRecord) error
	// UsageTotals adds up the records f selects. With UsageTotal it
	// returns exactly one sum (zero when nothing matches); otherwise one
	// per key, in key order, none when nothing matches. An unknown
	// grouping is ErrInvalid.
	UsageTotals(ctx context.Context, f UsageFilter) ([]UsageSum, error)
}
