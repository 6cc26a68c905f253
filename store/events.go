package store

import (
	"context"
	"time"
)

// Event is one entry of a session's event log: a state change, an ACP
// session/update, a permission request or answer, an MCP tool call, usage.
// The session broker numbers a session's events 1, 2, 3 … and appends them
// before anyone sees them, so a viewer that reconnects with the last number
// it saw gets exactly what it missed.
type Event struct {
	SessionID string
	Seq       int64
	Type      string
	Data      []byte // JSON
	CreatedAt time.Time
}

// Limits on events.
const (
	// MaxEventData bounds one event's JSON.
	MaxEventData = 1 << 20
	// MaxEventType bounds an event's type name.
	MaxEventType = 64
	// MaxEventBatch bounds one AppendEvents call.
	MaxEventBatch = 10000
	// DefaultEventLimit and MaxEventLimit bound one Events read.
	DefaultEventLimit = 500
	MaxEventLimit     = 5000
)

// Events persists session event logs.
type Events interface {
	// AppendEvents stores a batch in one transaction, all or nothing. Seqs
	// are the caller's: each session's events must continue its log with no
	// gap and no repeat (ErrConflict otherwise), and the session must be
	// recorded (PutSession) first (ErrNotFound otherwise).
	AppendEvents(ctx context.Context, evs []Event) error
	// Events returns a session's events with Seq > afterSeq, in order.
	Events(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]Event, error)
	// LastEventSeq is the highest Seq stored for the session (0 if none).
	LastEventSeq(ctx context.Context, sessionID string) (int64, error)
}
