package postgres

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentbroker/agentbroker/internal/pgtest"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{URL: pgtest.NewDatabase(t), MaxConns: 8})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// TestChangesAcrossBrokers: two stores on one database, as two brokers of
// a fleet. A task read and a revocation check cached on B are dropped by
// A's writes (NOTIFY), and only by them: a change made behind the store's
// back (no notice) is not seen while the answer is cached, which shows the
// cache is there and that the notices, not its expiry, refreshed it.
func TestChangesAcrossBrokers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	a, err := Open(ctx, Options{URL: url, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, Options{URL: url, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.ttl = time.Hour // only notices invalidate
	waitListening(t, b)

	p, err := a.CreateProject(ctx, store.Project{Name: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	seen := b.changes.notices.Load()
	task, err := a.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "one"})
	if err != nil {
		t.Fatal(err)
	}
	waitNotices(t, b, seen) // the creation's own notice, not to be taken for a later one
	title := func() string {
		t.Helper()
		got, err := b.GetTask(ctx, p.ID, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Title
	}
	if got := title(); got != "one" {
		t.Fatalf("B reads %q", got)
	}
	// Behind the store's back: no notice, B keeps its answer.
	raw, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(ctx)
	if _, err := raw.Exec(ctx, `UPDATE tasks SET title = 'sneaked' WHERE id = $1`, task.ID); err != nil {
		t.Fatal(err)
	}
	if got := title(); got != "one" {
		t.Fatalf("B reads %q after an unannounced change; want its cached %q (is the cache on?)", got, "one")
	}
	// Through A: B is told, and reads afresh.
	seen = b.changes.notices.Load()
	if _, err := a.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{Title: ptr("two")}); err != nil {
		t.Fatal(err)
	}
	waitNotices(t, b, seen)
	if got := title(); got != "two" {
		t.Fatalf("B reads %q after A's update and its notice; want two", got)
	}

	revoked := func(jti, session string) bool {
		t.Helper()
		ok, err := b.IsRevoked(ctx, jti, session)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if revoked("j1", "s1") {
		t.Fatal("j1 revoked before anything")
	}
	seen = b.changes.notices.Load()
	if err := a.RevokeToken(ctx, "j1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitNotices(t, b, seen)
	if !revoked("j1", "s1") {
		t.Fatal("B does not see the token A revoked, after its notice")
	}
	if revoked("j2", "s2") {
		t.Fatal("j2 revoked before anything")
	}
	seen = b.changes.notices.Load()
	if err := a.RevokeSession(ctx, "s2", time.Now()); err != nil {
		t.Fatal(err)
	}
	waitNotices(t, b, seen)
	if !revoked("j2", "s2") {
		t.Fatal("B does not see the session A revoked, after its notice")
	}

	// Events committed by A wake B's watcher, once per session and batch.
	woken := make(chan string, 16)
	b.WatchEvents(func(id string) { woken <- id })
	if err := a.PutSession(ctx, store.SessionRecord{ID: "ses_w", ProjectID: p.ID, State: "idle"}); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendEvents(ctx, []store.Event{
		{SessionID: "ses_w", Seq: 1, Type: "state", Data: []byte(`{}`)},
		{SessionID: "ses_w", Seq: 2, Type: "state", Data: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-woken:
		if id != "ses_w" {
			t.Fatalf("B woken for %q; want ses_w", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("B's event watcher was not woken by A's events")
	}
	select {
	case id := <-woken:
		t.Fatalf("B woken twice for one batch (%q)", id)
	case <-time.After(100 * time.Millisecond):
	}

	// A lost listener: B stops caching (every read goes to the database)
	// until it listens again.
	if _, err := raw.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for b.changes.listening.Load() && b.changes.epoch.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("B did not notice its listener was gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitListening(t, b)
	if _, err := raw.Exec(ctx, `UPDATE tasks SET title = 'three' WHERE id = $1`, task.ID); err != nil {
		t.Fatal(err)
	}
	// The answers cached before the listener was lost are not used.
	if got := title(); got != "three" {
		t.Fatalf("B reads %q after its listener came back; want the database's three", got)
	}
}

func ptr[T any](v T) *T { return &v }

func waitListening(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !db.changes.listening.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the store is not listening for changes")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitNotices(t *testing.T, db *DB, seen int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for db.changes.notices.Load() <= seen {
		if time.Now().After(deadline) {
			t.Fatal("no change notice arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLeases(t *testing.T) {
	t.Parallel()
	storetest.RunLeases(t, func(t *testing.T) storetest.LeaseStore { return openTemp(t) })
}
