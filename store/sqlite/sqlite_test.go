package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/storetest"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestWALAndPermissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	var mode string
	if err := db.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var busy int
	if err := db.r.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != 5000 {
		t.Fatalf("reader busy_timeout = %d, %v; want 5000", busy, err)
	}
	if _, err := db.r.Exec(`INSERT INTO broker_meta (key, value) VALUES ('x', 'y')`); err == nil {
		t.Fatalf("a write through the reader pool succeeded")
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, db.Path(): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v; want %v", path, got, want)
		}
	}
}

func TestLooseFileModeTightened(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.Chmod(db.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	fi, _ := os.Stat(db.Path())
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after reopen = %v; want 0600", fi.Mode().Perm())
	}
}

func TestFTS5Available(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	defer db.Close()
	ctx := context.Background()
	if _, err := db.w.ExecContext(ctx, `CREATE VIRTUAL TABLE temp.notes USING fts5(title, body, tokenize = 'porter unicode61')`); err != nil {
		t.Fatalf("create fts5 table: %v", err)
	}
	for _, row := range [][2]string{
		{"Deploy", "The staging deploy needs a migration first"},
		{"Tokens", "Signing keys rotate every ninety days"},
	} {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO temp.notes (title, body) VALUES (?, ?)`, row[0], row[1]); err != nil {
			t.Fatal(err)
		}
	}
	var title string
	// "migrations" matches "migration" only through the porter stemmer.
	if err := db.w.QueryRowContext(ctx, `SELECT title FROM temp.notes WHERE notes MATCH ? ORDER BY rank`, "migrations").Scan(&title); err != nil {
		t.Fatalf("fts5 match: %v", err)
	}
	if title != "Deploy" {
		t.Fatalf("match = %q; want Deploy", title)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for range 3 {
		db, err := Open(context.Background(), Options{Dir: dir})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		applied, known, err := db.SchemaVersion(context.Background())
		db.Close()
		if err != nil || applied != known {
			t.Fatalf("SchemaVersion = %d/%d, %v", applied, known, err)
		}
	}
}

func TestConcurrentOpenSameDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := Open(context.Background(), Options{Dir: dir})
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := func() *DB {
		db, err := Open(context.Background(), Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}()
	if _, err := db.w.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)`, db.known+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(context.Background(), Options{Dir: dir})
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open = %v; want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "upgrade agentbroker") {
		t.Fatalf("error does not say what to do: %v", err)
	}
}

func TestBadDataDirectories(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	aFile := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(tmp, "corrupt")
	if err := os.Mkdir(corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	garbage := strings.Repeat("this is not a sqlite database, just text. ", 200)
	if err := os.WriteFile(filepath.Join(corrupt, FileName), []byte(garbage), 0o600); err != nil {
		t.Fatal(err)
	}
	dbIsDir := filepath.Join(tmp, "db-is-dir")
	if err := os.MkdirAll(filepath.Join(dbIsDir, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	// Root ignores permission bits, so "unwritable" is a directory whose
	// parent is a regular file: nothing can be created under it, as root too.
	underFile := filepath.Join(aFile, "data")

	tests := []struct {
		name, dir, want string
	}{
		{"empty", "", "no data directory"},
		{"dir is a file", aFile, "is not a directory"},
		{"under a file", underFile, "data directory"},
		{"corrupt database", corrupt, "not a SQLite database or is corrupt"},
		{"database is a directory", dbIsDir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := Open(context.Background(), Options{Dir: tt.dir})
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tt.dir)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v; want it to say %q", tt.dir, err, tt.want)
			}
		})
	}
	// The corrupt file is left as it was: nothing lost.
	got, _ := os.ReadFile(filepath.Join(corrupt, FileName))
	if string(got) != garbage {
		t.Fatalf("Open changed the corrupt file")
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.Ping(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Ping after Close = %v; want ErrClosed", err)
	}
	if _, err := db.CreateProject(context.Background(), store.Project{Name: "p"}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("CreateProject after Close = %v; want ErrClosed", err)
	}
	if _, err := db.SearchTasks(context.Background(), "prj_x", "words", 0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("SearchTasks after Close = %v; want ErrClosed", err)
	}
}

// TestRelativeDir: a data directory given relative to the working
// directory opens (the driver's URI would read "d" as an authority).
func TestRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	db, err := Open(context.Background(), Options{Dir: "d"})
	if err != nil {
		t.Fatalf("Open(d) = %v", err)
	}
	defer db.Close()
	if _, err := db.CreateProject(context.Background(), store.Project{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(db.Path()) || filepath.Base(filepath.Dir(db.Path())) != "d" {
		t.Errorf("Path = %q", db.Path())
	}
}
