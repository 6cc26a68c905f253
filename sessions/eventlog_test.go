package sessions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/sqlite"
)

func openDB(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newSession records a session so its events can be stored.
func newSession(t testing.TB, db *sqlite.DB, id string) {
	t.Helper()
	ctx := context.Background()
	p, err := db.CreateProject(ctx, store.Project{Name: "p-" + id})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutSession(ctx, store.SessionRecord{ID: id, ProjectID: p.ID}); err != nil {
		t.Fatal(err)
	}
}

func TestLogAppendReadWait(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	newSession(t, db, "s1")
	j := NewJournal(db, nil)
	defer j.Close()
	ctx := context.Background()
	l, err := j.OpenLog(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- l.Wait(ctx, 0) }()
	for i := range 3 {
		e, err := l.Append(ctx, "update", map[string]int{"n": i})
		if err != nil || e.Seq != int64(i+1) {
			t.Fatalf("Append = %+v, %v", e, err)
		}
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait = %v", err)
	}
	// Durable before Append returned: the store has all three.
	if last, _ := db.LastEventSeq(ctx, "s1"); last != 3 {
		t.Fatalf("store has %d events", last)
	}
	evs, err := l.Read(ctx, 1, 0)
	if err != nil || len(evs) != 2 || evs[0].Seq != 2 || string(evs[1].Data) != `{"n":2}` {
		t.Fatalf("Read after 1 = %+v, %v", evs, err)
	}
	if evs, _ := l.Read(ctx, 3, 0); len(evs) != 0 {
		t.Fatalf("Read at the end = %+v", evs)
	}

	// A reopened log (a broker restart) continues the numbering.
	l.Close()
	if _, err := l.Append(ctx, "x", nil); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if err := l.Wait(ctx, 3); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("Wait at the end of a closed log = %v", err)
	}
	l2, _ := j.OpenLog(ctx, "s1")
	if e, err := l2.Append(ctx, "update", "again"); err != nil || e.Seq != 4 {
		t.Fatalf("Append after reopen = %+v, %v", e, err)
	}
	// Old events come from the store: the new log has none in memory.
	if evs, err := l2.Read(ctx, 0, 0); err != nil || len(evs) != 4 {
		t.Fatalf("Read from the store = %d events, %v", len(evs), err)
	}
}

// TestLogConcurrentAppends: many goroutines appending to several sessions
// get gapless, unique numbers, all durable, and readers see each log in
// order with nothing missing.
func TestLogConcurrentAppends(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	j := NewJournal(db, &JournalOptions{MaxBatch: 64})
	defer j.Close()
	ctx := context.Background()
	const sessions, writers, each = 3, 4, 100
	logs := make([]*Log, sessions)
	for i := range logs {
		id := fmt.Sprintf("s%d", i)
		newSession(t, db, id)
		logs[i], _ = j.OpenLog(ctx, id)
	}
	var wg sync.WaitGroup
	// A reader per log follows it live from the start.
	got := make([][]int64, sessions)
	for i, l := range logs {
		wg.Go(func() {
			var cursor int64
			for cursor < writers*each {
				evs, err := l.Read(ctx, cursor, 50)
				if err != nil {
					t.Error(err)
					return
				}
				for _, e := range evs {
					got[i] = append(got[i], e.Seq)
					cursor = e.Seq
				}
				if len(evs) == 0 {
					l.Wait(ctx, cursor)
				}
			}
		})
	}
	for _, l := range logs {
		for range writers {
			wg.Go(func() {
				for k := range each {
					if _, err := l.Append(ctx, "update", k); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for i := range logs {
		if len(got[i]) != writers*each {
			t.Fatalf("reader of s%d saw %d events", i, len(got[i]))
		}
		for k, seq := range got[i] {
			if seq != int64(k+1) {
				t.Fatalf("reader of s%d: event %d has seq %d", i, k, seq)
			}
		}
		if last, _ := db.LastEventSeq(ctx, fmt.Sprintf("s%d", i)); last != writers*each {
			t.Fatalf("store has %d events of s%d", last, i)
		}
	}
}

// flakyStore refuses appends while failing is set, as a full disk would.
type flakyStore struct {
	EventStore
	failing atomic.Bool
	gate    chan struct{} // when set, appends wait for it to close
}

func (f *flakyStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	if f.gate != nil {
		<-f.gate
	}
	if f.failing.Load() {
		return errors.New("disk full")
	}
	return f.EventStore.AppendEvents(ctx, evs)
}

// TestLogStoreFailure: an append the store refuses is reported to its
// caller and leaves no gap: numbering resumes after the last durable event
// once the store works again.
func TestLogStoreFailure(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	newSession(t, db, "s1")
	fs := &flakyStore{EventStore: db}
	j := NewJournal(fs, nil)
	defer j.Close()
	ctx := context.Background()
	l, _ := j.OpenLog(ctx, "s1")
	if _, err := l.Append(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	fs.failing.Store(true)
	if _, err := l.Append(ctx, "b", 2); err == nil {
		t.Fatal("append to a failing store succeeded")
	}
	fs.failing.Store(false)
	e, err := l.Append(ctx, "c", 3)
	if err != nil || e.Seq != 2 {
		t.Fatalf("append after recovery = %+v, %v; want seq 2", e, err)
	}
	evs, _ := db.Events(ctx, "s1", 0, 0)
	if len(evs) != 2 || evs[1].Type != "c" {
		t.Fatalf("store holds %+v", evs)
	}
	if l.Committed() != 2 {
		t.Fatalf("Committed = %d", l.Committed())
	}
}

func TestLogWaitCancel(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	newSession(t, db, "s1")
	j := NewJournal(db, nil)
	defer j.Close()
	l, _ := j.OpenLog(context.Background(), "s1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v", err)
	}
}

// Sync waits for the events queued before it: after it, all of them are
// in the store; after a store failure it says they are lost.
func TestLogSync(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	newSession(t, db, "s1")
	fs := &flakyStore{EventStore: db}
	j := NewJournal(fs, nil)
	defer j.Close()
	ctx := context.Background()
	l, _ := j.OpenLog(ctx, "s1")
	for i := range 50 {
		if err := l.AppendAsync(ctx, "queued", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync = %v", err)
	}
	if evs, _ := db.Events(ctx, "s1", 0, 0); len(evs) != 50 || l.Committed() != 50 {
		t.Fatalf("after Sync: %d events in the store, committed %d; want 50", len(evs), l.Committed())
	}

	// A failure while Sync waits: the store holds the journal until Sync
	// has taken its target, then refuses the event.
	fs.failing.Store(true)
	fs.gate = make(chan struct{})
	l.syncWaiting = func() { close(fs.gate) }
	if err := l.AppendAsync(ctx, "lost", 0, nil); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Sync(sctx); !errors.Is(err, ErrEventsLost) {
		t.Fatalf("Sync across a store failure = %v; want ErrEventsLost", err)
	}
	l.syncWaiting = nil
	fs.failing.Store(false)
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync with nothing pending = %v", err)
	}
	l.Close()
	if err := l.AppendAsync(ctx, "late", 0, nil); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("append after Close = %v", err)
	}
}

// TestLogTimeLiveEqualsStored: an event's time is the same whether a
// viewer got it live or read it back from the store after a restart.
func TestLogTimeLiveEqualsStored(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	newSession(t, db, "s1")
	j := NewJournal(db, nil)
	defer j.Close()
	ctx := context.Background()
	l, err := j.OpenLog(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var live []store.Event
	for i := range 5 {
		e, err := l.Append(ctx, "update", i)
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, e)
	}
	l.Close()
	l2, _ := j.OpenLog(ctx, "s1")
	stored, err := l2.Read(ctx, 0, 0)
	if err != nil || len(stored) != len(live) {
		t.Fatalf("read back %d events, %v", len(stored), err)
	}
	for i := range live {
		if !live[i].CreatedAt.Equal(stored[i].CreatedAt) {
			t.Errorf("seq %d: live time %s, stored %s", live[i].Seq, live[i].CreatedAt.Format(time.RFC3339Nano), stored[i].CreatedAt.Format(time.RFC3339Nano))
		}
	}
}
