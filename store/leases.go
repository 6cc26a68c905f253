package store

import (
	"context"
	"time"
)

// Leases is how the brokers of a fleet share the live sessions: each is
// owned by one node (broker process), through a lease with an expiry that
// its owner keeps renewing. A node that dies stops renewing; once its
// leases expire, another node may acquire them and take the sessions over.
// Expiry is measured on the database's clock, not the nodes'.
//
// Only a store several brokers share implements it (store/postgres); with
// the embedded SQLite store one broker owns every session of its data
// directory (an exclusive lock on the directory).
type Leases interface {
	// AcquireLease makes node the owner of session until ttl from now,
	// when no node holds it, its lease has expired, or node holds it
	// already (then it is renewed). It returns the owner after the call:
	// node when acquired, the holder otherwise. The session must be
	// recorded (ErrNotFound).
	AcquireLease(ctx context.Context, sessionID, node string, ttl time.Duration) (owner string, err error)
	// RenewLeases extends every lease node holds to ttl from now and
	// returns the sessions it holds (those another node took after they
	// expired are no longer among them).
	RenewLeases(ctx context.Context, node string, ttl time.Duration) ([]string, error)
	// ReleaseLease ends node's lease of session; a lease node does not hold
	// is left alone (not an error).
	ReleaseLease(ctx context.Context, sessionID, node string) error
	// LeaseOwner returns the node holding a live lease of session, "" when
	// none does.
	LeaseOwner(ctx context.Context, sessionID string) (string, error)
}

// Nodes records the brokers of a fleet and where the others reach each
// one (commands for a session go to its owner).
type Nodes interface {
	// PutNode records (or updates) node's base URL.
	PutNode(ctx context.Context, node, url string) error
	// NodeURL returns a node's base URL; ErrNotFound when not recorded.
	NodeURL(ctx context.Context, node string) (string, error)
}

// EventWatcher is a store shared by several brokers that tells of events
// committed by any of them: f is called with the session's ID (from one
// goroutine; it must not block). Notices may be lost (a reconnection):
// readers also poll.
type EventWatcher interface {
	WatchEvents(f func(sessionID string))
}
