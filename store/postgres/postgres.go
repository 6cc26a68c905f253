// Package postgres is the store for a fleet of brokers: every broker of the
// fleet opens the same PostgreSQL database (github.com/jackc/pgx/v5). It
// passes the same conformance suite (store/storetest) as the embedded
// SQLite store, which stays the default for one broker.
//
// Versioned migrations, embedded in the binary, are applied at Open, under
// a transaction-level advisory lock so that brokers starting together
// apply each once; a database written by a newer binary is refused.
//
// Tasks, knowledge and transcript messages are searched with PostgreSQL's
// own full-text search (see search.go and migrations/0001_schema.sql).
//
// The revocation check and the task read, the two reads of every MCP call,
// are answered from memory while nothing they depend on changed, on any
// broker of the fleet: writes announce the rows they change with NOTIFY,
// and each broker LISTENs (see changes.go).
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/agentbroker/agentbroker/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Options configures Open. The zero value of each field means its default.
type Options struct {
	// URL is the database's connection string (postgres://user:pass@host/db
	// or key=value pairs). It may hold a password: it is never logged nor
	// put in an error. Required.
	URL string
	// MaxConns bounds the pool of connections. Default 16.
	MaxConns int
	// Logger receives migration and lifecycle messages. Nil: silent.
	Logger *slog.Logger
	// NoReadCache sends every revocation check and task read to the
	// database.
	NoReadCache bool
}

// DB is the PostgreSQL store. It is safe for concurrent use.
type DB struct {
	db     *sql.DB
	cfg    *pgx.ConnConfig
	desc   string // host and database, for messages: no password
	known  int
	log    *slog.Logger
	closed atomic.Bool

	changes   *changes
	noCache   bool
	ttl       time.Duration // cacheTTL (tests: longer, to see notices at work)
	revoked   readCache[[2]string, bool]
	taskCache readCache[[2]string, store.Task]
}

var _ store.Store = (*DB)(nil)

type migration struct {
	version int
	name    string
	sql     string
}

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

// Describe names the database of a connection string for a person: user,
// host and database, never the password. An unparsable string is
// "(unparsable database URL)".
func Describe(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "(unparsable database URL)"
	}
	return describe(cfg)
}

func describe(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("postgres user=%s host=%s port=%d database=%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// Open connects to the database, applies pending migrations and starts
// listening for other brokers' changes.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.URL == "" {
		return nil, errors.New("open store: no database URL given")
	}
	cfg, err := pgx.ParseConfig(opts.URL)
	if err != nil {
		// pgx's message may quote the string, password and all.
		return nil, errors.New("open store: the database URL cannot be parsed")
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	db := &DB{cfg: cfg, desc: describe(cfg), known: len(ms), log: log, noCache: opts.NoReadCache, ttl: cacheTTL}
	db.db = stdlib.OpenDB(*cfg.Copy())
	db.db.SetMaxOpenConns(opts.MaxConns)
	db.db.SetMaxIdleConns(opts.MaxConns)
	db.db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.db.PingContext(ctx); err != nil {
		db.db.Close()
		return nil, fmt.Errorf("open store (%s): %w", db.desc, err)
	}
	if err := db.migrate(ctx, ms); err != nil {
		db.db.Close()
		return nil, err
	}
	db.changes = newChanges(db)
	if err := db.changes.start(ctx); err != nil {
		// Correct without it, only slower: every read goes to the database.
		log.Warn("store: reads will not be cached", "error", err)
	}
	return db, nil
}

// migrationLock keys the advisory lock that serialises migrations.
const migrationLock = 0x61676e74 // "agnt"

// migrate applies the migrations this database lacks, all in one
// transaction (PostgreSQL's DDL is transactional).
func (db *DB) migrate(ctx context.Context, ms []migration) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate store: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at bigint NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	applied, err := appliedVersion(ctx, tx)
	if err != nil {
		return err
	}
	if applied > len(ms) {
		return fmt.Errorf("open store (%s): schema version %d, this binary knows up to %d (upgrade agentbroker): %w",
			db.desc, applied, len(ms), store.ErrSchemaTooNew)
	}
	for _, m := range ms[applied:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migration %s: record: %w", m.name, err)
		}
		db.log.Info("store migration applied", "version", m.version, "name", m.name)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate store: commit: %w", err)
	}
	return nil
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func appliedVersion(ctx context.Context, q rowQuerier) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// String names the database (no password).
func (db *DB) String() string { return db.desc }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if db.closed.Load() {
		return store.ErrClosed
	}
	var one int
	if err := db.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
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
	applied, err = appliedVersion(ctx, db.db)
	return applied, db.known, err
}

// Close stops listening and closes the pool. It is safe to call more than
// once.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	db.changes.stop()
	return db.db.Close()
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

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

// PostgreSQL's error codes that callers branch on.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeDiskFull            = "53100"
	codeReadOnly            = "25006"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func isConstraint(err error) bool { return pgCode(err) == codeUniqueViolation }

// classifyWrite marks the errors of a write callers tell apart.
func classifyWrite(err error) error {
	switch pgCode(err) {
	case codeDiskFull:
		return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
	case codeReadOnly:
		return fmt.Errorf("%w: %w", store.ErrReadOnly, err)
	}
	return err
}

// write runs fn in one transaction and commits it when fn returns nil.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.closed.Load() {
		return store.ErrClosed
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return classifyWrite(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return classifyWrite(err)
	}
	return classifyWrite(tx.Commit())
}

// reader returns the pool, or ErrClosed.
func (db *DB) reader() (*sql.DB, error) {
	if db.closed.Load() {
		return nil, store.ErrClosed
	}
	return db.db, nil
}
