package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/agentbroker/agentbroker/store"
)

// idEncoding is lowercase base32 without padding: URL-safe, and one case
// so that an ID survives case-folding systems.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix and 16 random characters (80 bits).
func newID(prefix string) string {
	var b [10]byte
	rand.Read(b[:]) // never fails: crypto/rand aborts the program instead
	return prefix + idEncoding.EncodeToString(b[:])
}

// now is the current time as the store keeps it: UTC, microseconds.
func now() time.Time { return fromMicros(time.Now().UnixMicro()) }

// storedTime is t as it reads back from the database.
func storedTime(t time.Time) time.Time { return fromMicros(micros(t)) }

// checkText refuses text the store does not keep: an empty required field,
// a value over max bytes, invalid UTF-8, a NUL byte.
func checkText(field, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is required: %w", field, store.ErrInvalid)
	case len(v) > max:
		return fmt.Errorf("%s is %d bytes, over the limit of %d: %w", field, len(v), max, store.ErrInvalid)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8: %w", field, store.ErrInvalid)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte: %w", field, store.ErrInvalid)
	}
	return nil
}

// textField is one field for checkAll.
type textField struct {
	name     string
	value    string
	max      int
	required bool
}

// checkAll returns the first field's refusal, if any.
func checkAll(fields ...textField) error {
	for _, f := range fields {
		if err := checkText(f.name, f.value, f.max, f.required); err != nil {
			return err
		}
	}
	return nil
}

// clamp applies a default to limit <= 0 and a ceiling to the rest.
func clamp(limit, def, max int) int {
	switch {
	case limit <= 0:
		return def
	case limit > max:
		return max
	}
	return limit
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it when fn returns nil.
// A full disk or a read-only database is store.ErrNoSpace or
// store.ErrReadOnly (the transaction is rolled back).
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.closed.Load() {
		return store.ErrClosed
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return classifyWrite(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return classifyWrite(err)
	}
	return classifyWrite(tx.Commit())
}

// classifyWrite marks the errors of a write that callers tell apart: a
// full disk, a read-only database or filesystem.
func classifyWrite(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_FULL:
			return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
		case sqlite3lib.SQLITE_READONLY:
			return fmt.Errorf("%w: %w", store.ErrReadOnly, err)
		}
	}
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w", store.ErrReadOnly, err)
	}
	return err
}

// reader returns the read pool, or ErrClosed.
func (db *DB) reader() (*readPool, error) {
	if db.closed.Load() {
		return nil, store.ErrClosed
	}
	return &db.rp, nil
}

// readPool is the read-only pool with each statement prepared once, on
// first use: modernc/sqlite keeps no statement cache, and parsing a
// query cost as much as running it (a third of a knowledge search).
type readPool struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt // by SQL text: the texts are the code's own
}

// maxPrepared bounds the cache, should some query text ever be built from
// values: past it, queries are prepared each time.
const maxPrepared = 256

func (p *readPool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.stmts[query]; ok {
		return s, nil
	}
	if len(p.stmts) >= maxPrepared {
		return nil, nil
	}
	s, err := p.db.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, err
	}
	if p.stmts == nil {
		p.stmts = make(map[string]*sql.Stmt)
	}
	p.stmts[query] = s
	return s, nil
}

func (p *readPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return p.db.QueryContext(ctx, query, args...)
	}
	return s.QueryContext(ctx, args...)
}

func (p *readPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := p.stmt(ctx, query)
	if err != nil || s == nil {
		// The same error again, as a Row carries it.
		return p.db.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// close closes the prepared statements.
func (p *readPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, s := range p.stmts {
		errs = append(errs, s.Close())
	}
	p.stmts = nil
	return errors.Join(errs...)
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// projectExists is for telling "no rows" from "no such project".
func projectExists(ctx context.Context, q rowQuerier, id string) (bool, error) {
	var ok bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?)`, id).Scan(&ok); err != nil {
		return false, err
	}
	return ok, nil
}

// requireProject returns ErrNotFound when the project does not exist.
func requireProject(ctx context.Context, q rowQuerier, id string) error {
	ok, err := projectExists(ctx, q, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("project %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// collect scans every row with scan, then checks the rows' error.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
