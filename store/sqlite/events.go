package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/agentbroker/agentbroker/store"
)

func checkEvent(e store.Event) error {
	switch {
	case e.SessionID == "":
		return fmt.Errorf("event without a session: %w", store.ErrInvalid)
	case e.Seq < 1:
		return fmt.Errorf("event seq %d: must be 1 or more: %w", e.Seq, store.ErrInvalid)
	case len(e.Data) > store.MaxEventData:
		return fmt.Errorf("event data is %d bytes, over the limit of %d: %w", len(e.Data), store.MaxEventData, store.ErrInvalid)
	case !json.Valid(e.Data):
		return fmt.Errorf("event data is not JSON: %w", store.ErrInvalid)
	}
	return store.CheckAll(
		store.TextField{Name: "event session", Value: e.SessionID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "event type", Value: e.Type, Max: store.MaxEventType, Required: true},
	)
}

// AppendEvents stores a batch of events in one transaction. Each session's
// events must continue its log exactly: the first seq of a session in the
// batch is one past the last stored, and they rise by one.
func (db *DB) AppendEvents(ctx context.Context, evs []store.Event) error {
	if len(evs) > store.MaxEventBatch {
		return fmt.Errorf("append events: %d events, over the limit of %d: %w", len(evs), store.MaxEventBatch, store.ErrInvalid)
	}
	for i, e := range evs {
		if err := checkEvent(e); err != nil {
			return fmt.Errorf("append events: event %d: %w", i, err)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	t := store.Now()
	err := db.write(ctx, func(tx *sql.Tx) error {
		next := map[string]int64{}
		for i, e := range evs {
			want, ok := next[e.SessionID]
			if !ok {
				var exists bool
				var last int64
				if err := tx.QueryRowContext(ctx, `SELECT
					EXISTS (SELECT 1 FROM sessions WHERE id = ?1),
					coalesce((SELECT max(seq) FROM events WHERE session_id = ?1), 0)`, e.SessionID).Scan(&exists, &last); err != nil {
					return err
				}
				if !exists {
					return fmt.Errorf("event %d: session %q: %w", i, e.SessionID, store.ErrNotFound)
				}
				want = last + 1
			}
			if e.Seq != want {
				return fmt.Errorf("event %d: session %q seq %d, want %d: %w", i, e.SessionID, e.Seq, want, store.ErrConflict)
			}
			created := t
			if !e.CreatedAt.IsZero() {
				created = store.StoredTime(e.CreatedAt)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO events (session_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)`,
				e.SessionID, e.Seq, e.Type, string(e.Data), micros(created)); err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
			next[e.SessionID] = want + 1
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// Events returns a session's events after afterSeq, in order.
func (db *DB) Events(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]store.Event, error) {
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	switch {
	case limit <= 0:
		limit = store.DefaultEventLimit
	case limit > store.MaxEventLimit:
		limit = store.MaxEventLimit
	}
	rows, err := r.QueryContext(ctx, `SELECT seq, type, data, created_at FROM events
		WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?`, sessionID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		e := store.Event{SessionID: sessionID}
		var data string
		var created int64
		if err := rows.Scan(&e.Seq, &e.Type, &data, &created); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		e.Data, e.CreatedAt = []byte(data), fromMicros(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// LastEventSeq is the highest seq stored for the session.
func (db *DB) LastEventSeq(ctx context.Context, sessionID string) (int64, error) {
	r, err := db.reader()
	if err != nil {
		return 0, err
	}
	var last int64
	if err := r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE session_id = ?`, sessionID).Scan(&last); err != nil {
		return 0, fmt.Errorf("last event seq: %w", err)
	}
	return last, nil
}
