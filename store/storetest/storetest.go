// Package storetest is the conformance suite for store implementations:
// every implementation (SQLite now, PostgreSQL later) runs Run against a
// fresh, empty store and must pass it unchanged. A store that keeps only
// what the tokens package needs (an in-memory one, in tests) runs
// RunTokens.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// Open returns a fresh, empty store for one test. The suite closes it.
type Open func(t *testing.T) store.Store

// TokenStore is the part of a store the tokens package uses.
type TokenStore interface {
	store.Keys
	store.Revocations
	Close() error
}

// OpenTokens returns a fresh, empty TokenStore for one test. The suite
// closes it.
type OpenTokens func(t *testing.T) TokenStore

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	t.Run("Health", func(t *testing.T) { t.Parallel(); testHealth(t, open(t)) })
	RunTokens(t, func(t *testing.T) TokenStore { return open(t) })
	for _, tt := range []struct {
		name string
		test func(*testing.T, store.Store)
	}{
		{"Projects", testProjects},
		{"Tasks", testTasks},
		{"TaskUpdates", testTaskUpdates},
		{"ListTasks", testListTasks},
		{"Knowledge", testKnowledge},
		{"Sessions", testSessions},
		{"SessionLookup", testSessionLookup},
		{"Messages", testMessages},
		{"ConcurrentAppend", testConcurrentAppend},
		{"ListLimits", testListLimits},
		{"Isolation", testIsolation},
		{"Search", testSearch},
		{"SearchAfterUpdate", testSearchAfterUpdate},
		{"HostileSearch", testHostileSearch},
		{"Events", testEvents},
		{"Usage", testUsage},
		{"TaskBudget", testTaskBudget},
		{"TaskRuns", testTaskRuns},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			closeAfter(t, s)
			tt.test(t, s)
		})
	}
}

// RunTokens runs the part of the suite about keys and revocations.
func RunTokens(t *testing.T, open OpenTokens) {
	t.Run("Keys", func(t *testing.T) { t.Parallel(); testKeys(t, open(t)) })
	t.Run("Revocations", func(t *testing.T) { t.Parallel(); testRevocations(t, open(t)) })
	t.Run("ConcurrentWrites", func(t *testing.T) { t.Parallel(); testConcurrentWrites(t, open(t)) })
}

func closeAfter(t *testing.T, s interface{ Close() error }) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

func testHealth(t *testing.T, s store.Store) {
	closeAfter(t, s)
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	applied, known, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatalf("SchemaVersion: %v", err)
	}
	if applied != known || known < 1 {
		t.Fatalf("SchemaVersion = %d applied, %d known; want equal and ≥ 1", applied, known)
	}
}

func seed(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func testKeys(t *testing.T, s TokenStore) {
	closeAfter(t, s)
	ctx := context.Background()
	keys, err := s.SigningKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("SigningKeys on empty store = %v, %v; want none", keys, err)
	}
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 123456000, time.UTC)
	a := store.SigningKey{ID: "kid-a", Seed: seed(1), CreatedAt: t0}
	b := store.SigningKey{ID: "kid-b", Seed: seed(2), CreatedAt: t0.Add(time.Hour)}
	for _, k := range []store.SigningKey{b, a} { // inserted out of order
		if err := s.AddSigningKey(ctx, k); err != nil {
			t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
		}
	}
	if err := s.AddSigningKey(ctx, store.SigningKey{ID: "kid-a", Seed: seed(3), CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AddSigningKey(duplicate) = %v; want ErrConflict", err)
	}
	if err := s.AddSigningKey(ctx, store.SigningKey{ID: "short", Seed: []byte{1}, CreatedAt: t0}); err == nil {
		t.Fatalf("AddSigningKey(short seed) succeeded")
	}
	keys, err = s.SigningKeys(ctx)
	if err != nil {
		t.Fatalf("SigningKeys: %v", err)
	}
	if len(keys) != 2 || keys[0].ID != "kid-a" || keys[1].ID != "kid-b" {
		t.Fatalf("SigningKeys = %v; want kid-a then kid-b", ids(keys))
	}
	if !bytes.Equal(keys[0].Seed, seed(1)) || !keys[0].CreatedAt.Equal(t0) || !keys[0].RetiredAt.IsZero() {
		t.Fatalf("kid-a came back as %+v", keys[0])
	}

	retired := t0.Add(2 * time.Hour)
	if err := s.RetireSigningKey(ctx, "kid-a", retired); err != nil {
		t.Fatalf("RetireSigningKey: %v", err)
	}
	if err := s.RetireSigningKey(ctx, "kid-a", retired.Add(time.Hour)); err != nil {
		t.Fatalf("RetireSigningKey again: %v", err)
	}
	if err := s.RetireSigningKey(ctx, "nope", retired); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RetireSigningKey(unknown) = %v; want ErrNotFound", err)
	}
	keys, _ = s.SigningKeys(ctx)
	if !keys[0].RetiredAt.Equal(retired) {
		t.Fatalf("kid-a RetiredAt = %v; want the first retirement %v", keys[0].RetiredAt, retired)
	}
	if !keys[1].RetiredAt.IsZero() {
		t.Fatalf("kid-b retired too: %v", keys[1].RetiredAt)
	}
}

func ids(keys []store.SigningKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

func testRevocations(t *testing.T, s TokenStore) {
	closeAfter(t, s)
	ctx := context.Background()
	check := func(jti, session string, want bool) {
		t.Helper()
		got, err := s.IsRevoked(ctx, jti, session)
		if err != nil {
			t.Fatalf("IsRevoked(%q, %q): %v", jti, session, err)
		}
		if got != want {
			t.Fatalf("IsRevoked(%q, %q) = %v; want %v", jti, session, got, want)
		}
	}
	check("j1", "s1", false)
	check("j1", "", false)
	if err := s.RevokeToken(ctx, "j1", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if err := s.RevokeToken(ctx, "j1", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken twice: %v", err)
	}
	check("j1", "s1", true)
	check("j1", "", true)
	check("j2", "s1", false)
	if err := s.RevokeSession(ctx, "s1", time.Now()); err != nil {
		t.Fatalf("RevokeSession: %v", err)
	}
	if err := s.RevokeSession(ctx, "s1", time.Now()); err != nil {
		t.Fatalf("RevokeSession twice: %v", err)
	}
	check("j2", "s1", true)
	check("j3", "s2", false)
	check("j3", "", false)
	if err := s.RevokeToken(ctx, "", time.Now()); err == nil {
		t.Fatalf("RevokeToken(empty) succeeded")
	}
	if err := s.RevokeSession(ctx, "", time.Now()); err == nil {
		t.Fatalf("RevokeSession(empty) succeeded")
	}
	// An empty session must not match a revoked empty-named session.
	check("j4", "", false)
}

// testConcurrentWrites checks that writers from many goroutines are
// serialised without "database is locked" failures, and reads see them.
func testConcurrentWrites(t *testing.T, s TokenStore) {
	closeAfter(t, s)
	ctx := context.Background()
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			jti := fmt.Sprintf("c-%d", i)
			if err := s.RevokeToken(ctx, jti, time.Now().Add(time.Hour)); err != nil {
				errs <- err
				return
			}
			ok, err := s.IsRevoked(ctx, jti, "")
			if err != nil {
				errs <- err
			} else if !ok {
				errs <- fmt.Errorf("%s not revoked right after RevokeToken returned", jti)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
