// Package store is agentbroker's persistence layer.
//
// The package declares what the rest of the broker may ask of storage, as
// small interfaces and plain types; implementations live in sub-packages
// (store/sqlite, the embedded default; PostgreSQL later). No SQL dialect
// leaks out of an implementation: callers see only these types and errors.
// store/storetest is a conformance suite every implementation must pass.
//
// # Projects, tasks, knowledge and transcripts
//
// The rules every implementation of Projects, Tasks, KnowledgeBase and
// Transcripts follows:
//
//   - Create and Add set the ID (a random, URL-safe string with a type
//     prefix: "prj_", "tsk_", "kn_") and CreatedAt = UpdatedAt = now, at
//     microsecond precision; what they return is what a Get returns.
//   - Every call that names a project and an item finds the item only in
//     that project: an item of another project is ErrNotFound, never data.
//     A project that does not exist is ErrNotFound too, for creating,
//     listing and searching alike.
//   - Validation failures (see the Max constants) wrap ErrInvalid.
//   - Lists are newest first (by CreatedAt, then by insertion), except
//     ListProjects (by name) and SessionMessages (by Seq).
//   - Search takes plain text from a person or a model, not a query
//     language: every word must match (in any order, in any searched field,
//     with English stemming: "migrations" finds "migration"); a word is
//     matched as a phrase of its parts ("foo-bar" finds "foo bar");
//     punctuation and operators mean nothing. A query without a single
//     word (empty, or only punctuation) is ErrInvalid. Hits come best
//     first.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on.
var (
	// ErrNotFound reports that a row asked for by its key does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports a write that collides with an existing row (a duplicate key).
	ErrConflict = errors.New("store: conflict")
	// ErrSchemaTooNew reports a database written by a newer agentbroker than this one.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary knows")
	// ErrClosed reports use of a store after Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid reports a value the store refuses (an empty required
	// field, an unknown status, a field over its size limit).
	ErrInvalid = errors.New("store: invalid value")
	// ErrNoSpace reports a write refused because the store's disk is
	// full. Nothing of the write was kept; writes work again once space
	// is freed.
	ErrNoSpace = errors.New("store: the disk is full")
	// ErrReadOnly reports a write refused because the database or its
	// filesystem is read-only (reads still work).
	ErrReadOnly = errors.New("store: the database is read-only")
)

// Store is everything the broker keeps. An implementation must be safe for
// concurrent use by many goroutines.
type Store interface {
	Health
	Keys
	Revocations
	Projects
	Tasks
	KnowledgeBase
	Transcripts
	Events
	Usage
	TaskRuns
	Close() error
}

// Health reports whether the store can serve.
type Health interface {
	// Ping checks the store is reachable (a round trip, not a cached answer).
	Ping(ctx context.Context) error
	// SchemaVersion returns the applied schema version and the newest one
	// this binary knows; they are equal once migrations have run.
	SchemaVersion(ctx context.Context) (applied, known int, err error)
}

// SigningKey is one Ed25519 key of the token key ring.
type SigningKey struct {
	// ID is the key's kid, unique and never reused.
	ID string
	// Seed is the 32-byte Ed25519 private seed. It is secret: never log it.
	Seed []byte
	// CreatedAt orders keys: the newest unretired key signs.
	CreatedAt time.Time
	// RetiredAt is zero while the key still verifies.
	RetiredAt time.Time
}

// Keys persists the token key ring.
type Keys interface {
	// SigningKeys returns every key, retired ones included, oldest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey stores a new key; ErrConflict if its ID exists.
	AddSigningKey(ctx context.Context, k SigningKey) error
	// RetireSigningKey marks a key retired; ErrNotFound if there is none.
	RetireSigningKey(ctx context.Context, id string, at time.Time) error
}

// Revocations persists revoked tokens and sessions. A revocation is visible
// to every reader (in this process or another sharing the store) as soon as
// the call returns.
type Revocations interface {
	// RevokeToken revokes one token by its jti. expiresAt is the token's own
	// expiry, after which the row may be pruned. Revoking twice is not an error.
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// RevokeSession revokes every token carrying this session ID, past and future.
	RevokeSession(ctx context.Context, sessionID string, at time.Time) error
	// IsRevoked reports whether the token jti, or its session, is revoked.
	// An empty sessionID checks only the jti.
	IsRevoked(ctx context.Context, jti, sessionID string) (bool, error)
}
