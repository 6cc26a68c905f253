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
