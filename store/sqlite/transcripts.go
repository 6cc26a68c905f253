package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/agentbroker/agentbroker/store"
)

const sessionColumns = `id, project_id, agent, model, state, title, config, created_at, updated_at`

func scanSession(s scanner) (store.SessionRecord, error) {
	var (
		r                store.SessionRecord
		config           string
		created, updated int64
	)
	err := s.Scan(&r.ID, &r.ProjectID, &r.Agent, &r.Model, &r.State, &r.Title, &config, &created, &updated)
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	if config != "" {
		r.Config = []byte(config)
	}
	return r, err
}

const messageColumns = `session_id, project_id, seq, role, content, created_at`

const messageColumnsM = `m.session_id, m.project_id, m.seq, m.role, m.content, m.created_at`

func scanMessage(s scanner) (store.Message, error) {
	var (
		m       store.Message
		created int64
	)
	err := s.Scan(&m.SessionID, &m.ProjectID, &m.Seq, &m.Role, &m.Content, &created)
	m.CreatedAt = fromMicros(created)
	return m, err
}

// PutSession records a session: it inserts a new one (CreatedAt is the
// caller's, or now when zero) or updates the agent, model, state and title
// of a recorded one (keeping its CreatedAt). The project must exist
// (ErrNotFound) and may not change (ErrConflict).
func (db *DB) PutSession(ctx context.Context, s store.SessionRecord) error {
	if err := store.CheckAll(
		store.TextField{Name: "session ID", Value: s.ID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "project ID", Value: s.ProjectID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "agent", Value: s.Agent, Max: store.MaxNameLen, Required: false},
		store.TextField{Name: "model", Value: s.Model, Max: store.MaxNameLen, Required: false},
		store.TextField{Name: "state", Value: s.State, Max: store.MaxNameLen, Required: false},
		store.TextField{Name: "title", Value: s.Title, Max: store.MaxTitleLen, Required: false},
	); err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	if err := store.CheckConfig(s.Config); err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	t := store.Now()
	created := t
	if !s.CreatedAt.IsZero() {
		created = s.CreatedAt
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		var project string
		err := tx.QueryRowContext(ctx, `SELECT project_id FROM sessions WHERE id = ?`, s.ID).Scan(&project)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := requireProject(ctx, tx, s.ProjectID); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				s.ID, s.ProjectID, s.Agent, s.Model, s.State, s.Title, string(s.Config), micros(created), micros(t))
			return err
		case err != nil:
			return err
		case project != s.ProjectID:
			return fmt.Errorf("session %q belongs to another project: %w", s.ID, store.ErrConflict)
		}
		if s.Config == nil {
			_, err = tx.ExecContext(ctx, `UPDATE sessions SET agent = ?, model = ?, state = ?, title = ?, updated_at = ? WHERE id = ?`,
				s.Agent, s.Model, s.State, s.Title, micros(t), s.ID)
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET agent = ?, model = ?, state = ?, title = ?, config = ?, updated_at = ? WHERE id = ?`,
			s.Agent, s.Model, s.State, s.Title, string(s.Config), micros(t), s.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	return nil
}

// GetSession returns one session record of the project.
func (db *DB) GetSession(ctx context.Context, projectID, id string) (store.SessionRecord, error) {
	r, err := db.reader()
	if err != nil {
		return store.SessionRecord{}, fmt.Errorf("get session: %w", err)
	}
	s, err := scanSession(r.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE project_id = ? AND id = ?`, projectID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.SessionRecord{}, fmt.Errorf("get session %q in project %q: %w", id, projectID, store.ErrNotFound)
	}
	if err != nil {
		return store.SessionRecord{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// SessionByID returns a session record by its ID alone.
func (db *DB) SessionByID(ctx context.Context, id string) (store.SessionRecord, error) {
	r, err := db.reader()
	if err != nil {
		return store.SessionRecord{}, fmt.Errorf("get session: %w", err)
	}
	s, err := scanSession(r.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.SessionRecord{}, fmt.Errorf("get session %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.SessionRecord{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// SessionsByState returns the sessions in any of states, oldest first.
func (db *DB) SessionsByState(ctx context.Context, states ...string) ([]store.SessionRecord, error) {
	if len(states) == 0 {
		return nil, nil
	}
	if len(states) > store.MaxStates {
		return nil, fmt.Errorf("sessions by state: %d states, over the limit of %d: %w", len(states), store.MaxStates, store.ErrInvalid)
	}
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("sessions by state: %w", err)
	}
	// One statement text per number of states (they are few), so that
	// each is prepared once.
	q := `SELECT ` + sessionColumns + ` FROM sessions WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `)
		ORDER BY created_at, id`
	args := make([]any, len(states))
	for i, s := range states {
		args[i] = s
	}
	rows, err := r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sessions by state: %w", err)
	}
	ss, err := collect(rows, scanSession)
	if err != nil {
		return nil, fmt.Errorf("sessions by state: %w", err)
	}
	return ss, nil
}

// ListSessions returns the project's sessions, newest first.
func (db *DB) ListSessions(ctx context.Context, projectID string, limit int) ([]store.SessionRecord, error) {
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	rows, err := r.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE project_id = ?
		ORDER BY created_at DESC, rowid DESC LIMIT ?`,
		projectID, store.Clamp(limit, store.DefaultListLimit, store.MaxListLimit))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	ss, err := collect(rows, scanSession)
	if err == nil && len(ss) == 0 {
		err = requireProject(ctx, r, projectID)
	}
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return ss, nil
}

func checkMessage(m store.Message) error {
	if !m.Role.Valid() {
		return fmt.Errorf("unknown message role %q: %w", m.Role, store.ErrInvalid)
	}
	return store.CheckAll(
		store.TextField{Name: "session ID", Value: m.SessionID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "project ID", Value: m.ProjectID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "content", Value: m.Content, Max: store.MaxTextLen, Required: true},
	)
}

// AppendMessages adds msgs, all or none, in one transaction. Each gets the
// next Seq of its session and, when it has none, CreatedAt = now.
func (db *DB) AppendMessages(ctx context.Context, msgs []store.Message) ([]store.Message, error) {
	if len(msgs) > store.MaxAppend {
		return nil, fmt.Errorf("append messages: %d messages, over the limit of %d: %w", len(msgs), store.MaxAppend, store.ErrInvalid)
	}
	for i, m := range msgs {
		if err := checkMessage(m); err != nil {
			return nil, fmt.Errorf("append messages: message %d: %w", i, err)
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	out := make([]store.Message, len(msgs))
	t := store.Now()
	err := db.write(ctx, func(tx *sql.Tx) error {
		// The next seq of each (session, project) of the batch; a pair not
		// yet seen is checked, so a later message naming the session with
		// another project is refused like the first would be.
		type key struct{ session, project string }
		next := make(map[key]int64)
		for i, m := range msgs {
			k := key{m.SessionID, m.ProjectID}
			seq, ok := next[k]
			if !ok {
				// The session must be recorded in the message's project;
				// one of another project is not found, not revealed.
				var exists bool
				var last int64
				err := tx.QueryRowContext(ctx, `SELECT
					EXISTS (SELECT 1 FROM sessions WHERE id = ?1 AND project_id = ?2),
					coalesce((SELECT max(seq) FROM messages WHERE session_id = ?1), 0)`,
					m.SessionID, m.ProjectID).Scan(&exists, &last)
				if err != nil {
					return err
				}
				if !exists {
					return fmt.Errorf("message %d: session %q in project %q: %w", i, m.SessionID, m.ProjectID, store.ErrNotFound)
				}
				seq = last + 1
			}
			m.Seq = seq
			if m.CreatedAt.IsZero() {
				m.CreatedAt = t
			} else {
				m.CreatedAt = store.StoredTime(m.CreatedAt)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO messages (`+messageColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
				m.SessionID, m.ProjectID, m.Seq, string(m.Role), m.Content, micros(m.CreatedAt)); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			next[k] = seq + 1
			out[i] = m
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("append messages: %w", err)
	}
	return out, nil
}

// SessionMessages returns the session's messages with Seq > afterSeq, in
// order; a session not recorded in the project is ErrNotFound.
func (db *DB) SessionMessages(ctx context.Context, projectID, sessionID string, afterSeq int64, limit int) ([]store.Message, error) {
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("session messages: %w", err)
	}
	rows, err := r.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE session_id = ? AND project_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		sessionID, projectID, afterSeq, store.Clamp(limit, store.DefaultMessageLimit, store.MaxMessageLimit))
	if err != nil {
		return nil, fmt.Errorf("session messages: %w", err)
	}
	ms, err := collect(rows, scanMessage)
	if err == nil && len(ms) == 0 {
		var ok bool
		err = r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ? AND project_id = ?)`, sessionID, projectID).Scan(&ok)
		if err == nil && !ok {
			err = fmt.Errorf("session %q in project %q: %w", sessionID, projectID, store.ErrNotFound)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("session messages: %w", err)
	}
	return ms, nil
}

// SearchMessages finds the project's messages, of any session, matching
// the words of query, best first.
func (db *DB) SearchMessages(ctx context.Context, projectID, query string, limit int) ([]store.SearchHit[store.Message], error) {
	match, err := ftsQuery(query)
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	rows, err := r.QueryContext(ctx, `SELECT `+messageColumnsM+`, `+snippetSQL("messages_fts")+`
		FROM messages_fts JOIN messages m ON m.pk = messages_fts.rowid
		WHERE messages_fts MATCH ?1 AND m.project_id = ?2
		ORDER BY bm25(messages_fts), m.pk DESC
		LIMIT ?3`,
		match, projectID, store.Clamp(limit, store.DefaultSearchLimit, store.MaxSearchLimit))
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	hits, err := collect(rows, func(s scanner) (store.SearchHit[store.Message], error) {
		var h store.SearchHit[store.Message]
		var err error
		h.Item, err = scanMessage(snippetScanner{s, &h.Snippet})
		return h, err
	})
	if err == nil && len(hits) == 0 {
		err = requireProject(ctx, r, projectID)
	}
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	return hits, nil
}
