// Package sqlite is the embedded default store: one SQLite database file in
// the broker's data directory, on modernc.org/sqlite (pure Go, no cgo).
//
// The database runs in WAL mode with a busy timeout. Writes go through one
// connection (SQLite allows one writer at a time; queueing them in Go is
// cheaper than contending for the file lock), reads through a pool of
// read-only connections. Versioned migrations, embedded in the binary, are
// applied at Open; a database written by a newer binary is refused.
//
// Tasks, knowledge and transcript messages are searched with FTS5
// external-content indexes (porter stemming, case and diacritics folded),
// kept in step with their tables by triggers; see
// migrations/0003_project_context.sql.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentbroker/agentbroker/store"

	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// FileName is the database's name inside the data directory.
const FileName = "agentbroker.db"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options configures Open. The zero value of each field means its default.
type Options struct {
	// Dir is the data directory. It is created (mode 0700) when missing.
	// Required.
	Dir string
	// Readers is the size of the read-only connection pool. Default 4.
	Readers int
	// BusyTimeout is how long a connection waits for a lock held by another
	// connection or process before failing. Default 5s.
	BusyTimeout time.Duration
	// Logger receives migration and lifecycle messages. Nil: silent.
	Logger *slog.Logger
	// NoReadCache sends every revocation check and task read to the
	// database (see changes.go), to measure what the cache saves.
	NoReadCache bool
}

// DB is the SQLite store. It is safe for concurrent use.
type DB struct {
	path   string
	w      *sql.DB // one connection: every write
	r      *sql.DB // read-only pool
	rp     readPool
	known  int
	log    *slog.Logger
	closed atomic.Bool

	// changes and the caches answer the revocation check and the task
	// read, the two reads of every MCP call, from memory while nothing
	// they depend on changed (see changes.go).
	changes   *counters
	noCache   bool // Options.NoReadCache: changes is still bumped
	revoked   readCache[[2]string, bool]
	taskCache readCache[[2]string, store.Task]
}

var _ store.Store = (*DB)(nil)

// migration is one embedded schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. Names are
// NNNN_description.sql; versions must be 1, 2, 3 … without gaps.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %q: bad version: %w", name, err)
		}
		body, err := fs.ReadFile(migrationFiles, "migrations/"+name)
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// Open opens (creating when needed) the database in opts.Dir, checks that
// the directory is usable, and applies pending migrations. Every failure a
// person can cause (a file where the directory should be, a directory that
// cannot be written, a file that is not a database, a schema from a newer
// binary) comes back as an error that says so.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Dir == "" {
		return nil, errors.New("open store: no data directory given")
	}
	// The driver takes a file: URI, in which a relative path would read as
	// an authority ("invalid uri authority: d").
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	opts.Dir = dir
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := prepareDir(opts.Dir); err != nil {
		return nil, err
	}
	path := filepath.Join(opts.Dir, FileName)
	if err := prepareFile(path); err != nil {
		return nil, err
	}

	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, known: len(ms), log: log}
	if db.changes, err = openCounters(path + ChangesSuffix); err != nil {
		// Correct without it, only slower.
		log.Warn("store: reads will not be cached", "error", err)
		db.changes = nil
	}
	db.noCache = opts.NoReadCache

	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	db.w, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {
			"busy_timeout(" + busy + ")",
			"journal_mode(WAL)",
			"synchronous(NORMAL)",
			"foreign_keys(1)",
		},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)

	if err := withOpenLock(ctx, opts.Dir, 4*opts.BusyTimeout, func() error {
		if err := db.w.PingContext(ctx); err != nil {
			return describeOpenError(path, err)
		}
		return db.migrate(ctx, ms)
	}); err != nil {
		db.w.Close()
		return nil, err
	}

	db.r, err = sql.Open("sqlite", dsn(path, url.Values{
		"mode":    {"ro"},
		"_pragma": {"busy_timeout(" + busy + ")", "query_only(1)"},
	}))
	if err != nil {
		db.w.Close()
		return nil, fmt.Errorf("open store %s for reading: %w", path, err)
	}
	db.rp.db = db.r
	db.r.SetMaxOpenConns(opts.Readers)
	db.r.SetMaxIdleConns(opts.Readers)
	if err := db.r.PingContext(ctx); err != nil {
		db.Close()
		return nil, describeOpenError(path, err)
	}
	return db, nil
}

func dsn(path string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// prepareDir makes sure dir is a directory this process can write.
func prepareDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("data directory %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("data directory %s exists and is not a directory", dir)
	}
	probe, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	name := probe.Name()
	probe.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("data directory %s: remove write probe: %w", dir, err)
	}
	return nil
}

// prepareFile creates the database file 0600 before SQLite does (SQLite
// would follow the umask), and refuses a path that is not a regular file.
func prepareFile(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return prepareFile(path) // another process made it meanwhile: check it
		}
		if err != nil {
			return fmt.Errorf("create database %s: %w", path, err)
		}
		return f.Close()
	case err != nil:
		return fmt.Errorf("database %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("database %s is not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		// The file holds signing keys: tighten what an older or foreign
		// tool left open.
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("database %s: restrict permissions: %w", path, err)
		}
	}
	return nil
}

// describeOpenError turns SQLite's codes into what a person can act on.
func describeOpenError(path string, err error) error {
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_NOTADB, sqlite3lib.SQLITE_CORRUPT:
			return fmt.Errorf("open store %s: the file is not a SQLite database or is corrupt (move it aside to start afresh): %w", path, err)
		case sqlite3lib.SQLITE_READONLY, sqlite3lib.SQLITE_CANTOPEN, sqlite3lib.SQLITE_PERM:
			return fmt.Errorf("open store %s: cannot open the database for writing: %w", path, err)
		case sqlite3lib.SQLITE_FULL:
			return fmt.Errorf("open store %s: the disk is full: %w", path, err)
		}
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// migrate applies the migrations this database lacks, each in its own
// transaction. BEGIN IMMEDIATE (the writer's _txlock) serialises brokers
// and CLI commands that start at the same moment on the same file.
func (db *DB) migrate(ctx context.Context, ms []migration) error {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return describeOpenError(db.path, err)
	}
	for {
		applied, err := db.appliedVersion(ctx, db.w)
		if err != nil {
			return err
		}
		if applied > len(ms) {
			return fmt.Errorf("open store %s: schema version %d, this binary knows up to %d (upgrade agentbroker): %w",
				db.path, applied, len(ms), store.ErrSchemaTooNew)
		}
		if applied == len(ms) {
			return nil
		}
		m := ms[applied]
		if err := db.apply(ctx, m); err != nil {
			return err
		}
	}
}

func (db *DB) apply(ctx context.Context, m migration) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.name, err)
	}
	defer tx.Rollback()
	// Another process may have applied it while we waited for the lock.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	db.log.Info("store migration applied", "version", m.version, "name", m.name)
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) appliedVersion(ctx context.Context, q querier) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Ping checks that a read and the writer both reach the database.
func (db *DB) Ping(ctx context.Context) error {
	if db.closed.Load() {
		return store.ErrClosed
	}
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store (reader): %w", err)
	}
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store (writer): %w", err)
	}
	var one int
	if err := db.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// SchemaVersion returns the applied schema version and the newest this
// binary knows.
func (db *DB) SchemaVersion(ctx context.Context) (applied, known int, err error) {
	if db.closed.Load() {
		return 0, db.known, store.ErrClosed
	}
	applied, err = db.appliedVersion(ctx, db.r)
	return applied, db.known, err
}

// Close closes both pools. It is safe to call more than once.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	var errs []error
	errs = append(errs, db.rp.close())
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	// Closing the last connection checkpoints the WAL into the main file.
	errs = append(errs, db.w.Close())
	return errors.Join(errs...)
}

// micros and fromMicros store times as integer microseconds since the epoch.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// nullMicros maps the zero time to NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// isConstraint reports a uniqueness or primary-key violation.
func isConstraint(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3lib.SQLITE_CONSTRAINT
}
