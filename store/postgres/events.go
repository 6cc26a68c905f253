package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

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
	case !json.Valid(e.Data) || !utf8.Valid(e.Data):
		return fmt.Errorf("event data is not JSON: %w", store.ErrInvalid)
	}
	return store.CheckAll(
		store.TextField{Name: "event session", Value: e.SessionID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "event type", Value: e.Type, Max: store.MaxEventType, Required: true},
	)
}

// lockSessions locks the session rows of ids, in order (so that two
// transactions locking the same sessions cannot deadlock), and returns
// those that exist.
func lockSessions(ctx context.Context, tx *sql.Tx, ids []string) (map[string]string, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	found := make(map[string]string, len(ids))
	for _, id := range ids {
		var project string
		err := tx.QueryRowContext(ctx, `SELECT project_id FROM sessions WHERE id = $1 FOR UPDATE`, id).Scan(&project)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, err
		}
		found[id] = project
	}
	return found, nil
}

// AppendEvents stores a batch of events in one transaction. Each session's
// events must continue its log exactly. The sessions' rows are locked, so
// two brokers appending to one log are serialised (and the second refused).
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
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.SessionID
		}
		exists, err := lockSessions(ctx, tx, ids)
		if err != nil {
			return err
		}
		next := map[string]int64{}
		sessions := make([]string, 0, len(evs))
		seqs := make([]int64, 0, len(evs))
		types := make([]string, 0, len(evs))
		datas := make([]string, 0, len(evs))
		times := make([]int64, 0, len(evs))
		for i, e := range evs {
			want, ok := next[e.SessionID]
			if !ok {
				if _, ok := exists[e.SessionID]; !ok {
					return fmt.Errorf("event %d: session %q: %w", i, e.SessionID, store.ErrNotFound)
				}
				var last int64
				if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE session_id = $1`, e.SessionID).Scan(&last); err != nil {
					return err
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
			sessions, seqs, types = append(sessions, e.SessionID), append(seqs, e.Seq), append(types, e.Type)
			datas, times = append(datas, string(e.Data)), append(times, micros(created))
			next[e.SessionID] = want + 1
		}
		// One statement for the batch: a round trip per event would cost
		// more than the rest of the commit.
		if _, err = tx.ExecContext(ctx, `INSERT INTO events (session_id, seq, type, data, created_at)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])`,
			sessions, seqs, types, datas, times); err != nil {
			return err
		}
		// Wake the viewers on other brokers, once per session, at commit.
		_, err = tx.ExecContext(ctx, `SELECT pg_notify($1, s) FROM (SELECT DISTINCT unnest($2::text[]) AS s) d`,
			eventsChannel, sessions)
		return err
	})
	if isConstraint(err) {
		return fmt.Errorf("append events: %w: %w", store.ErrConflict, err)
	}
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
		WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, sessionID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out, err := collect(rows, func(s scanner) (store.Event, error) {
		e := store.Event{SessionID: sessionID}
		var data string
		var created int64
		err := s.Scan(&e.Seq, &e.Type, &data, &created)
		e.Data, e.CreatedAt = []byte(data), fromMicros(created)
		return e, err
	})
	if err != nil {
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
	if err := r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE session_id = $1`, sessionID).Scan(&last); err != nil {
		return 0, fmt.Errorf("last event seq: %w", err)
	}
	return last, nil
}
