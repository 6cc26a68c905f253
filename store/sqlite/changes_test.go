package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// The reads answered from memory (IsRevoked, GetTask) must see a write made
// through another handle on the same directory at once: another process in
// production (the CLI while serve runs), simulated here by a second Open
// with its own mapping, and by a real child process below.
func TestCachedReadsSeeWritesOfAnotherHandle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	reader, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	writer, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if reader.changes == nil {
		t.Fatal("no change counters: reads are not cached on this platform, so this test proves nothing")
	}

	mustNotRevoked := func(jti, sess string) {
		t.Helper()
		for range 2 { // the second answer comes from the cache
			if r, err := reader.IsRevoked(ctx, jti, sess); err != nil || r {
				t.Fatalf("IsRevoked(%s, %s) = %v, %v; want false", jti, sess, r, err)
			}
		}
	}
	mustNotRevoked("j1", "s1")
	if err := writer.RevokeToken(ctx, "j1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, err := reader.IsRevoked(ctx, "j1", "s1"); err != nil || !r {
		t.Fatalf("after another handle revoked the token: IsRevoked = %v, %v; want true", r, err)
	}
	mustNotRevoked("j2", "s2")
	if err := writer.RevokeSession(ctx, "s2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if r, err := reader.IsRevoked(ctx, "j2", "s2"); err != nil || !r {
		t.Fatalf("after another handle revoked the session: IsRevoked = %v, %v; want true", r, err)
	}

	p, err := writer.CreateProject(ctx, store.Project{Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	// A task created after a miss is seen.
	if _, err := reader.GetTask(ctx, p.ID, "tsk_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTask of a missing task = %v", err)
	}
	task, err := writer.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "first"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := reader.GetTask(ctx, p.ID, task.ID); err != nil || got.Title != "first" {
			t.Fatalf("GetTask = %+v, %v", got, err)
		}
	}
	title := "second"
	if _, err := writer.UpdateTask(ctx, p.ID, task.ID, store.TaskUpdate{Title: &title}); err != nil {
		t.Fatal(err)
	}
	if got, err := reader.GetTask(ctx, p.ID, task.ID); err != nil || got.Title != "second" {
		t.Fatalf("after another handle updated the task: GetTask = %+v, %v; want title second", got, err)
	}
}

// TestCachedReadsSeeAnotherProcess revokes from a child process (this test
// binary, re-run as the helper below) between two reads of this one.
func TestCachedReadsSeeAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 2 {
		if r, err := db.IsRevoked(ctx, "jx", ""); err != nil || r {
			t.Fatalf("IsRevoked = %v, %v; want false", r, err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRevoke$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SQLITE_HELPER_DIR="+dir, "SQLITE_HELPER_JTI=jx")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if r, err := db.IsRevoked(ctx, "jx", ""); err != nil || !r {
		t.Fatalf("after a child process revoked the token: IsRevoked = %v, %v; want true", r, err)
	}
}

// TestHelperRevoke is the child of TestCachedReadsSeeAnotherProcess.
func TestHelperRevoke(t *testing.T) {
	dir := os.Getenv("SQLITE_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	db, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.RevokeToken(context.Background(), os.Getenv("SQLITE_HELPER_JTI"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestChangesFileMode(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	defer db.Close()
	fi, err := os.Stat(filepath.Join(filepath.Dir(db.Path()), FileName+ChangesSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != changesFileSize {
		t.Fatalf("changes file: mode %v size %d; want 0600, %d", fi.Mode().Perm(), fi.Size(), changesFileSize)
	}
}

// The read pool prepares each query text once, and past maxPrepared texts
// runs queries unprepared rather than growing.
func TestReadPoolPreparesOnceAndStaysBounded(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	defer db.Close()
	r, err := db.reader()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range maxPrepared + 10 {
		for range 2 {
			var got int
			if err := r.QueryRowContext(ctx, fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&got); err != nil || got != i+1 {
				t.Fatalf("query %d = %d, %v", i, got, err)
			}
		}
	}
	r.mu.Lock()
	n := len(r.stmts)
	r.mu.Unlock()
	if n != maxPrepared {
		t.Fatalf("%d statements prepared; want the bound, %d", n, maxPrepared)
	}
	// A bad query fails the same way, prepared or not.
	if err := r.QueryRowContext(ctx, "SELECT nope FROM nowhere").Scan(new(int)); err == nil {
		t.Fatal("a bad query succeeded")
	}
	if _, err := r.QueryContext(ctx, "SELECT nope FROM nowhere"); err == nil {
		t.Fatal("a bad query succeeded")
	}
}
