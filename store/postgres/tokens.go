package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// SigningKeys returns every key, retired ones included, oldest first.
func (db *DB) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT id, seed, created_at, retired_at FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	keys, err := collect(rows, func(s scanner) (store.SigningKey, error) {
		var (
			k       store.SigningKey
			created int64
			retired sql.NullInt64
		)
		err := s.Scan(&k.ID, &k.Seed, &created, &retired)
		k.CreatedAt, k.RetiredAt = fromMicros(created), fromNullMicros(retired)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return keys, nil
}

// AddSigningKey stores a new key; store.ErrConflict if its ID exists.
func (db *DB) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	if len(k.Seed) != 32 {
		return fmt.Errorf("add signing key: seed must be 32 bytes, got %d", len(k.Seed))
	}
	if err := store.CheckText("key ID", k.ID, store.MaxIDLen, true); err != nil {
		return fmt.Errorf("add signing key: %w", err)
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, seed, created_at, retired_at) VALUES ($1, $2, $3, $4)`,
			k.ID, k.Seed, micros(k.CreatedAt), nullMicros(k.RetiredAt))
		return err
	})
	if isConstraint(err) {
		return fmt.Errorf("add signing key %q: %w", k.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("add signing key: %w", err)
	}
	return nil
}

// RetireSigningKey marks a key retired, keeping a first retirement.
func (db *DB) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = coalesce(retired_at, $1) WHERE id = $2`, micros(at), id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("retire signing key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("retire signing key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// RevokeToken revokes one token by jti. Revoking twice keeps the first.
func (db *DB) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if jti == "" {
		return fmt.Errorf("revoke token: empty jti")
	}
	if err := store.CheckText("jti", jti, store.MaxIDLen, true); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	s := slot(changedRevocations, jti)
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3)
			ON CONFLICT (jti) DO NOTHING`, jti, micros(expiresAt), micros(time.Now())); err != nil {
			return err
		}
		return notify(ctx, tx, s)
	})
	db.changes.changed(s)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// RevokeSession revokes every token of a session.
func (db *DB) RevokeSession(ctx context.Context, sessionID string, at time.Time) error {
	if sessionID == "" {
		return fmt.Errorf("revoke session: empty session id")
	}
	if err := store.CheckText("session ID", sessionID, store.MaxIDLen, true); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	s := slot(changedRevocations, sessionID)
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_sessions (session_id, revoked_at) VALUES ($1, $2)
			ON CONFLICT (session_id) DO NOTHING`, sessionID, micros(at)); err != nil {
			return err
		}
		return notify(ctx, tx, s)
	})
	db.changes.changed(s)
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

const isRevokedSQL = `SELECT
	EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1) OR
	($2 <> '' AND EXISTS (SELECT 1 FROM revoked_sessions WHERE session_id = $2))`

// IsRevoked reports whether the token or its session is revoked. Unlike
// the task reads, a "not revoked" answer is never served from memory: in a
// fleet the revoking broker's NOTIFY may still be in flight when another
// broker is asked, and "refused on the next request, on every node" must
// not depend on it. A revocation is never undone, so a "revoked" answer is
// kept (one indexed query per check otherwise: measured in bench fleet).
func (db *DB) IsRevoked(ctx context.Context, jti, sessionID string) (bool, error) {
	key := [2]string{jti, sessionID}
	if _, ok := db.revoked.get(key, 0, revocationsKept); ok {
		return true, nil
	}
	r, err := db.reader()
	if err != nil {
		return false, err
	}
	var revoked bool
	if err := r.QueryRowContext(ctx, isRevokedSQL, jti, sessionID).Scan(&revoked); err != nil {
		return false, fmt.Errorf("check revocation: %w", err)
	}
	if revoked {
		db.revoked.put(key, 0, time.Now(), true)
	}
	return revoked, nil
}

// revocationsKept is how long a "revoked" answer is kept: for good (the
// cache's size bound still applies).
const revocationsKept = 100 * 365 * 24 * time.Hour
