package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// LeaseStore is a store brokers of a fleet share.
type LeaseStore interface {
	store.Store
	store.Leases
	store.Nodes
}

// RunLeases runs the part of the suite about session leases, for stores
// that implement store.Leases.
func RunLeases(t *testing.T, open func(t *testing.T) LeaseStore) {
	t.Run("Leases", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		closeAfter(t, s)
		testLeases(t, s)
	})
}

func testLeases(t *testing.T, s LeaseStore) {
	ctx := context.Background()
	p := newProject(t, s, "fleet")
	for _, id := range []string{"s1", "s2", "s3"} {
		if err := s.PutSession(ctx, store.SessionRecord{ID: id, ProjectID: p.ID, State: "idle"}); err != nil {
			t.Fatal(err)
		}
	}
	acquire := func(session, node string, ttl time.Duration) string {
		t.Helper()
		owner, err := s.AcquireLease(ctx, session, node, ttl)
		if err != nil {
			t.Fatalf("AcquireLease(%s, %s): %v", session, node, err)
		}
		return owner
	}
	owner := func(session string) string {
		t.Helper()
		o, err := s.LeaseOwner(ctx, session)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if got := owner("s1"); got != "" {
		t.Fatalf("LeaseOwner(s1) before any lease = %q", got)
	}
	if got := acquire("s1", "node-a", time.Hour); got != "node-a" {
		t.Fatalf("A acquires a free lease: owner %q", got)
	}
	if got := acquire("s1", "node-b", time.Hour); got != "node-a" {
		t.Fatalf("B acquires A's live lease: owner %q; want node-a", got)
	}
	if got := acquire("s1", "node-a", time.Hour); got != "node-a" {
		t.Fatalf("A acquires its own lease again: owner %q", got)
	}
	if got := owner("s1"); got != "node-a" {
		t.Fatalf("LeaseOwner(s1) = %q; want node-a", got)
	}
	acquire("s2", "node-a", time.Microsecond) // expires at once
	acquire("s3", "node-a", time.Hour)
	time.Sleep(5 * time.Millisecond)
	if got := owner("s2"); got != "" {
		t.Fatalf("LeaseOwner of an expired lease = %q; want none", got)
	}
	if got := acquire("s2", "node-b", time.Hour); got != "node-b" {
		t.Fatalf("B acquires A's expired lease: owner %q; want node-b", got)
	}
	held, err := s.RenewLeases(ctx, "node-a", time.Hour)
	if slices.Sort(held); err != nil || !slices.Equal(held, []string{"s1", "s3"}) {
		t.Fatalf("RenewLeases(A) = %v, %v; want s1 s3 (s2 was taken over)", held, err)
	}
	if held, err := s.RenewLeases(ctx, "node-c", time.Hour); err != nil || len(held) != 0 {
		t.Fatalf("RenewLeases(C) = %v, %v; want none", held, err)
	}
	// Only the holder releases.
	if err := s.ReleaseLease(ctx, "s1", "node-b"); err != nil {
		t.Fatal(err)
	}
	if got := owner("s1"); got != "node-a" {
		t.Fatalf("after B's release of A's lease: owner %q; want node-a", got)
	}
	if err := s.ReleaseLease(ctx, "s1", "node-a"); err != nil {
		t.Fatal(err)
	}
	if got := owner("s1"); got != "" {
		t.Fatalf("after A's release: owner %q; want none", got)
	}

	_, err = s.AcquireLease(ctx, "nope", "node-a", time.Hour)
	wantErr(t, "AcquireLease(unknown session)", err, store.ErrNotFound)
	for name, c := range map[string]struct {
		session, node string
		ttl           time.Duration
	}{
		"no node":  {"s1", "", time.Hour},
		"no ttl":   {"s1", "node-a", 0},
		"long ID":  {long(store.MaxIDLen + 1), "node-a", time.Hour},
		"NUL node": {"s1", "a\x00", time.Hour},
	} {
		_, err := s.AcquireLease(ctx, c.session, c.node, c.ttl)
		wantErr(t, "AcquireLease("+name+")", err, store.ErrInvalid)
	}

	// Nodes and their URLs.
	_, err = s.NodeURL(ctx, "node-a")
	wantErr(t, "NodeURL(unrecorded)", err, store.ErrNotFound)
	for _, url := range []string{"http://127.0.0.1:1", "http://127.0.0.1:2"} {
		if err := s.PutNode(ctx, "node-a", url); err != nil {
			t.Fatal(err)
		}
		if got, err := s.NodeURL(ctx, "node-a"); err != nil || got != url {
			t.Fatalf("NodeURL = %q, %v; want %q", got, err, url)
		}
	}
	wantErr(t, "PutNode(no URL)", s.PutNode(ctx, "node-a", ""), store.ErrInvalid)

	// Many nodes race for one free lease: exactly one wins, and all agree.
	const n = 8
	var wg sync.WaitGroup
	owners := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { owners[i], errs[i] = s.AcquireLease(ctx, "s1", fmt.Sprintf("racer-%d", i), time.Hour) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, o := range owners {
		if o != owners[0] {
			t.Fatalf("racing nodes disagree on the owner: %v", owners)
		}
	}
}
