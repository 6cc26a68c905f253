package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"syscall"

	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/agentbroker/agentbroker/store"
)

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
