package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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

// PutSession records a session, in one statement: an insert, or an update
// of a session of the same project (a session of another project is not
// updated: ErrConflict).
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
	var config sql.NullString
	if s.Config != nil {
		config = sql.NullString{String: string(s.Config), Valid: true}
	}
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, ''), $8, $9)
			ON CONFLICT (id) DO UPDATE SET agent = excluded.agent, model = excluded.model, state = excluded.state,
				title = excluded.title, config = coalesce($7, sessions.config), updated_at = excluded.updated_at
			WHERE sessions.project_id = excluded.project_id`,
			s.ID, s.ProjectID, s.Agent, s.Model, s.State, s.Title, config, micros(created), micros(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	switch {
	case pgCode(err) == codeForeignKeyViolation:
		return fmt.Errorf("put session: project %q: %w", s.ProjectID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("put session: %w", err)
	case n == 0:
		return fmt.Errorf("put session: session %q belongs to another project: %w", s.ID, store.ErrConflict)
	}
	return nil
}

func (db *DB) getSession(ctx context.Context, where string, args ...any) (store.SessionRecord, error) {
	r, err := db.reader()
	if err != nil {
		return store.SessionRecord{}, err
	}
	return scanSession(r.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE `+where, args...))
}

// GetSession returns one session record of the project.
func (db *DB) GetSession(ctx context.Context, projectID, id string) (store.SessionRecord, error) {
	s, err := db.getSession(ctx, `project_id = $1 AND id = $2`, projectID, id)
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
	s, err := db.getSession(ctx, `id = $1`, id)
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
	rows, err := r.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE state = ANY($1::text[])
		ORDER BY created_at, id`, states)
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
	rows, err := r.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE project_id = $1
		ORDER BY created_at DESC, pk DESC LIMIT $2`,
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
// next Seq of its session; the sessions' rows are locked for it.
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
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.SessionID
		}
		projects, err := lockSessions(ctx, tx, ids)
		if err != nil {
			return err
		}
		type key struct{ session, project string }
		next := make(map[key]int64)
		for i, m := range msgs {
			k := key{m.SessionID, m.ProjectID}
			seq, ok := next[k]
			if !ok {
				if p, ok := projects[m.SessionID]; !ok || p != m.ProjectID {
					return fmt.Errorf("message %d: session %q in project %q: %w", i, m.SessionID, m.ProjectID, store.ErrNotFound)
				}
				var last int64
				if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM messages WHERE session_id = $1`,
					m.SessionID).Scan(&last); err != nil {
					return err
				}
				seq = last + 1
			}
			m.Seq = seq
			if m.CreatedAt.IsZero() {
				m.CreatedAt = t
			} else {
				m.CreatedAt = store.StoredTime(m.CreatedAt)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO messages (`+messageColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
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
		WHERE session_id = $1 AND project_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
		sessionID, projectID, afterSeq, store.Clamp(limit, store.DefaultMessageLimit, store.MaxMessageLimit))
	if err != nil {
		return nil, fmt.Errorf("session messages: %w", err)
	}
	ms, err := collect(rows, scanMessage)
	if err == nil && len(ms) == 0 {
		var ok bool
		err = r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND project_id = $2)`, sessionID, projectID).Scan(&ok)
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
	words, err := searchWords(query)
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	all, anyOf := tsQueries(3, len(words))
	rows, err := r.QueryContext(ctx, `WITH q AS (SELECT `+all+` AS q, `+anyOf+` AS qa)
		SELECT `+messageColumnsM+`, ts_headline('agentbroker', m.content, q.qa, '`+headlineOptions+`')
		FROM q, messages m
		WHERE m.project_id = $1 AND m.tsv @@ q.q
		ORDER BY ts_rank(m.tsv, q.q, 1) DESC, m.pk DESC
		LIMIT $2`,
		searchArgs([]any{projectID, store.Clamp(limit, store.DefaultSearchLimit, store.MaxSearchLimit)}, words)...)
	if err != nil {
		return nil, fmt.Errorf("search messages: %w", err)
	}
	hits, err := collect(rows, func(s scanner) (store.SearchHit[store.Message], error) {
		var h store.SearchHit[store.Message]
		var err error
		h.Item, err = scanMessage(extraScanner{s, []any{&h.Snippet}})
		h.Snippet = finishSnippet(h.Snippet, h.Item.Content)
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
