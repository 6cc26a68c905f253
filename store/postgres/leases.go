package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

var _ store.Leases = (*DB)(nil)

// dbNow is the database's clock in unix microseconds.
const dbNow = `(extract(epoch from clock_timestamp()) * 1000000)::bigint`

func checkLease(sessionID, node string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("lease of %s: ttl %v must be positive: %w", sessionID, ttl, store.ErrInvalid)
	}
	return store.CheckAll(
		store.TextField{Name: "lease session", Value: sessionID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "lease node", Value: node, Max: store.MaxIDLen, Required: true},
	)
}

// AcquireLease makes node the owner of session when it is free, expired
// or node's already; one statement, so two nodes racing for it cannot both
// win (the row's lock decides).
func (db *DB) AcquireLease(ctx context.Context, sessionID, node string, ttl time.Duration) (string, error) {
	if err := checkLease(sessionID, node, ttl); err != nil {
		return "", fmt.Errorf("acquire lease: %w", err)
	}
	var owner string
	err := db.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO session_leases (session_id, node, acquired_at, expires_at)
			VALUES ($1, $2, `+dbNow+`, `+dbNow+` + $3)
			ON CONFLICT (session_id) DO UPDATE SET
				node = excluded.node,
				acquired_at = CASE WHEN session_leases.node = excluded.node THEN session_leases.acquired_at ELSE excluded.acquired_at END,
				expires_at = excluded.expires_at
			WHERE session_leases.node = excluded.node OR session_leases.expires_at <= `+dbNow+`
			RETURNING node`, sessionID, node, ttl.Microseconds()).Scan(&owner)
	})
	if errors.Is(err, sql.ErrNoRows) {
		// Held by another node, alive.
		o, err := db.LeaseOwner(ctx, sessionID)
		if err != nil {
			return "", err
		}
		if o == "" {
			// It expired between the two statements: try again.
			return db.AcquireLease(ctx, sessionID, node, ttl)
		}
		return o, nil
	}
	if pgCode(err) == codeForeignKeyViolation {
		return "", fmt.Errorf("acquire lease: session %q: %w", sessionID, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("acquire lease: %w", err)
	}
	return owner, nil
}

// RenewLeases extends node's leases and returns their sessions.
func (db *DB) RenewLeases(ctx context.Context, node string, ttl time.Duration) ([]string, error) {
	if err := checkLease("-", node, ttl); err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	var ids []string
	err := db.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE session_leases SET expires_at = `+dbNow+` + $2
			WHERE node = $1 RETURNING session_id`, node, ttl.Microseconds())
		if err != nil {
			return err
		}
		ids, err = collect(rows, func(s scanner) (string, error) {
			var id string
			return id, s.Scan(&id)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	return ids, nil
}

// ReleaseLease ends node's lease of session.
func (db *DB) ReleaseLease(ctx context.Context, sessionID, node string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM session_leases WHERE session_id = $1 AND node = $2`, sessionID, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// LeaseOwner returns the node with a live lease of session, or "".
func (db *DB) LeaseOwner(ctx context.Context, sessionID string) (string, error) {
	r, err := db.reader()
	if err != nil {
		return "", err
	}
	var node string
	err = r.QueryRowContext(ctx, `SELECT node FROM session_leases WHERE session_id = $1 AND expires_at > `+dbNow, sessionID).Scan(&node)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease owner: %w", err)
	}
	return node, nil
}

var _ store.Nodes = (*DB)(nil)

// PutNode records node's base URL.
func (db *DB) PutNode(ctx context.Context, node, url string) error {
	if err := store.CheckAll(store.TextField{Name: "node", Value: node, Max: store.MaxIDLen, Required: true}, store.TextField{Name: "node URL", Value: url, Max: store.MaxRefLen, Required: true}); err != nil {
		return fmt.Errorf("put node: %w", err)
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (id, url, updated_at) VALUES ($1, $2, `+dbNow+`)
			ON CONFLICT (id) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at`, node, url)
		return err
	})
	if err != nil {
		return fmt.Errorf("put node: %w", err)
	}
	return nil
}

// NodeURL returns a node's base URL.
func (db *DB) NodeURL(ctx context.Context, node string) (string, error) {
	r, err := db.reader()
	if err != nil {
		return "", err
	}
	var url string
	err = r.QueryRowContext(ctx, `SELECT url FROM nodes WHERE id = $1`, node).Scan(&url)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("node %q: %w", node, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("node URL: %w", err)
	}
	return url, nil
}

var _ store.EventWatcher = (*DB)(nil)
