package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// SigningKeys returns every key, retired ones included, oldest first.
func (db *DB) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, seed, created_at, retired_at FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		var (
			k       store.SigningKey
			created int64
			retired sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Seed, &created, &retired); err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt = fromMicros(created), fromNullMicros(retired)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return keys, nil
}

// AddSigningKey stores a new key; store.ErrConflict if its ID exists.
func (db *DB) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	if len(k.Seed) != 32 {
		return fmt.Errorf("add signing key: seed must be 32 bytes, got %d", len(k.Seed))
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO signing_keys (id, seed, created_at, retired_at) VALUES (?, ?, ?, ?)`,
		k.ID, k.Seed, micros(k.CreatedAt), nullMicros(k.RetiredAt))
	if isConstraint(err) {
		return fmt.Errorf("add signing key %q: %w", k.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("add signing key: %w", err)
	}
	return nil
}

// RetireSigningKey marks a key retired. Retiring a retired key keeps its
// first retirement time.
func (db *DB) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE signing_keys SET retired_at = coalesce(retired_at, ?) WHERE id = ?`, micros(at), id)
	if err != nil {
		return fmt.Errorf("retire signing key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("retire signing key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("retire signing key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// RevokeToken revokes one token by jti. Revoking twice keeps the first.
func (db *DB) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if jti == "" {
		return fmt.Errorf("revoke token: empty jti")
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?)
		ON CONFLICT (jti) DO NOTHING`, jti, micros(expiresAt), micros(time.Now()))
	db.changes.changed(slot(changedRevocations, jti))
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
	_, err := db.w.ExecContext(ctx, `INSERT INTO revoked_sessions (session_id, revoked_at) VALUES (?, ?)
		ON CONFLICT (session_id) DO NOTHING`, sessionID, micros(at))
	db.changes.changed(slot(changedRevocations, sessionID))
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

const isRevokedSQL = `SELECT
	EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?1) OR
	(?2 <> '' AND EXISTS (SELECT 1 FROM revoked_sessions WHERE session_id = ?2))`

// IsRevoked reports whether the token or its session is revoked.
func (db *DB) IsRevoked(ctx context.Context, jti, sessionID string) (bool, error) {
	if db.closed.Load() {
		return false, store.ErrClosed
	}
	return readThrough(db, &db.revoked, [2]string{jti, sessionID}, func() (bool, error) {
		var revoked bool
		// A point read: not worth modernc's interrupt watcher (a
		// goroutine per query on a cancellable context).
		if err := db.rp.QueryRowContext(context.WithoutCancel(ctx), isRevokedSQL, jti, sessionID).Scan(&revoked); err != nil {
			return false, fmt.Errorf("check revocation: %w", err)
		}
		return revoked, nil
	}, slot(changedRevocations, jti), slot(changedRevocations, sessionID))
}
