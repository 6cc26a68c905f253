// Package memstore is an in-memory implementation of the store contract the
// tokens package uses (store.Keys and store.Revocations), for its tests and
// examples. It follows the store/storetest semantics: keys oldest first (by
// CreatedAt, then ID), duplicate IDs are store.ErrConflict, retiring keeps
// the first retirement time, empty IDs are refused.
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// Store is safe for concurrent use; several tokens.KeyRing or Service
// values sharing one Store behave like processes sharing a database.
type Store struct {
	mu       sync.Mutex
	keys     []store.SigningKey
	tokens   map[string]time.Time
	sessions map[string]time.Time
}

// New returns an empty store.
func New() *Store {
	return &Store{tokens: make(map[string]time.Time), sessions: make(map[string]time.Time)}
}

var (
	_ store.Keys        = (*Store)(nil)
	_ store.Revocations = (*Store)(nil)
)

// SigningKeys returns copies of every key, oldest first.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.SigningKey, len(s.keys))
	for i, k := range s.keys {
		k.Seed = bytes.Clone(k.Seed)
		out[i] = k
	}
	return out, nil
}

// AddSigningKey stores a copy of k.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(k.Seed) != 32 {
		return fmt.Errorf("add signing key: seed must be 32 bytes, got %d", len(k.Seed))
	}
	if k.ID == "" {
		return errors.New("add signing key: empty id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.keys {
		if have.ID == k.ID {
			return fmt.Errorf("add signing key %q: %w", k.ID, store.ErrConflict)
		}
	}
	k.Seed = bytes.Clone(k.Seed)
	s.keys = append(s.keys, k)
	sort.SliceStable(s.keys, func(i, j int) bool {
		a, b := s.keys[i], s.keys[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return nil
}

// RetireSigningKey marks a key retired, keeping the first retirement time.
func (s *Store) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.keys {
		if s.keys[i].ID == id {
			if s.keys[i].RetiredAt.IsZero() {
				s.keys[i].RetiredAt = at
			}
			return nil
		}
	}
	return fmt.Errorf("retire signing key %q: %w", id, store.ErrNotFound)
}

// RevokeToken records jti as revoked.
func (s *Store) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if jti == "" {
		return errors.New("revoke token: empty jti")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[jti]; !ok {
		s.tokens[jti] = expiresAt
	}
	return nil
}

// RevokeSession records the session as revoked.
func (s *Store) RevokeSession(ctx context.Context, sessionID string, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if sessionID == "" {
		return errors.New("revoke session: empty session id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sessionID]; !ok {
		s.sessions[sessionID] = at
	}
	return nil
}

// IsRevoked reports whether jti or (a non-empty) sessionID is revoked.
func (s *Store) IsRevoked(ctx context.Context, jti, sessionID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[jti]; ok {
		return true, nil
	}
	if sessionID != "" {
		if _, ok := s.sessions[sessionID]; ok {
			return true, nil
		}
	}
	return false, nil
}
