package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/agentbroker/agentbroker/store"
)

const taskColumns = `id, project_id, title, description, status, notes, output_summary, session_id, budget_pico_usd, created_at, updated_at`

const taskColumnsT = `t.id, t.project_id, t.title, t.description, t.status, t.notes, t.output_summary, t.session_id, t.budget_pico_usd, t.created_at, t.updated_at`

func scanTask(s scanner) (store.Task, error) {
	var (
		t                store.Task
		created, updated int64
	)
	err := s.Scan(&t.ID, &t.ProjectID, &t.Title, &t.Description, &t.Status, &t.Notes, &t.OutputSummary, &t.SessionID, &t.BudgetPicoUSD, &created, &updated)
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return t, err
}

func checkTask(t store.Task) error {
	if !t.Status.Valid() {
		return fmt.Errorf("unknown task status %q: %w", t.Status, store.ErrInvalid)
	}
	if t.BudgetPicoUSD < 0 {
		return fmt.Errorf("negative task budget: %w", store.ErrInvalid)
	}
	return store.CheckAll(
		store.TextField{Name: "title", Value: t.Title, Max: store.MaxTitleLen, Required: true},
		store.TextField{Name: "description", Value: t.Description, Max: store.MaxTextLen, Required: false},
		store.TextField{Name: "notes", Value: t.Notes, Max: store.MaxTextLen, Required: false},
		store.TextField{Name: "output summary", Value: t.OutputSummary, Max: store.MaxTextLen, Required: false},
		store.TextField{Name: "session ID", Value: t.SessionID, Max: store.MaxIDLen, Required: false},
	)
}

// CreateTask stores t with a new ID in t.ProjectID, which must exist.
func (db *DB) CreateTask(ctx context.Context, t store.Task) (store.Task, error) {
	if t.Status == "" {
		t.Status = store.TaskDraft
	}
	if err := store.CheckAll(store.TextField{Name: "project ID", Value: t.ProjectID, Max: store.MaxIDLen, Required: true}); err != nil {
		return store.Task{}, fmt.Errorf("create task: %w", err)
	}
	if err := checkTask(t); err != nil {
		return store.Task{}, fmt.Errorf("create task: %w", err)
	}
	t.ID = store.NewID("tsk_")
	t.CreatedAt = store.Now()
	t.UpdatedAt = t.CreatedAt
	s := slot(changedTasks, t.ProjectID, t.ID)
	err := db.write(ctx, func(tx *sql.Tx) error {
		if err := requireProject(ctx, tx, t.ProjectID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO tasks (`+taskColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			t.ID, t.ProjectID, t.Title, t.Description, t.Status, t.Notes, t.OutputSummary, t.SessionID, t.BudgetPicoUSD,
			micros(t.CreatedAt), micros(t.UpdatedAt)); err != nil {
			return err
		}
		return notify(ctx, tx, s)
	})
	db.changes.changed(s)
	if err != nil {
		return store.Task{}, fmt.Errorf("create task: %w", err)
	}
	return t, nil
}

const getTaskSQL = `SELECT ` + taskColumns + ` FROM tasks WHERE project_id = $1 AND id = $2`

func getTask(ctx context.Context, q rowQuerier, projectID, id string, lock bool) (store.Task, error) {
	query := getTaskSQL
	if lock {
		query += ` FOR UPDATE`
	}
	t, err := scanTask(q.QueryRowContext(ctx, query, projectID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Task{}, fmt.Errorf("task %q in project %q: %w", id, projectID, store.ErrNotFound)
	}
	return t, err
}

// GetTask returns one task of the project.
func (db *DB) GetTask(ctx context.Context, projectID, id string) (store.Task, error) {
	r, err := db.reader()
	if err != nil {
		return store.Task{}, fmt.Errorf("get task: %w", err)
	}
	return readThrough(db, &db.taskCache, [2]string{projectID, id}, func() (store.Task, error) {
		t, err := getTask(ctx, r, projectID, id, false)
		if err != nil {
			return store.Task{}, fmt.Errorf("get task: %w", err)
		}
		return t, nil
	}, slot(changedTasks, projectID, id))
}

// UpdateTask changes the fields u sets, and UpdatedAt.
func (db *DB) UpdateTask(ctx context.Context, projectID, id string, u store.TaskUpdate) (store.Task, error) {
	var t store.Task
	s := slot(changedTasks, projectID, id)
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = getTask(ctx, tx, projectID, id, true); err != nil {
			return err
		}
		if u == (store.TaskUpdate{}) {
			return nil
		}
		set(&t.Title, u.Title)
		set(&t.Description, u.Description)
		set(&t.Status, u.Status)
		set(&t.Notes, u.Notes)
		set(&t.OutputSummary, u.OutputSummary)
		set(&t.SessionID, u.SessionID)
		set(&t.BudgetPicoUSD, u.BudgetPicoUSD)
		if err := checkTask(t); err != nil {
			return err
		}
		t.UpdatedAt = store.Now()
		if _, err = tx.ExecContext(ctx, `UPDATE tasks SET
			title = $1, description = $2, status = $3, notes = $4, output_summary = $5, session_id = $6, budget_pico_usd = $7, updated_at = $8
			WHERE project_id = $9 AND id = $10`,
			t.Title, t.Description, t.Status, t.Notes, t.OutputSummary, t.SessionID, t.BudgetPicoUSD, micros(t.UpdatedAt), projectID, id); err != nil {
			return err
		}
		return notify(ctx, tx, s)
	})
	db.changes.changed(s)
	if err != nil {
		return store.Task{}, fmt.Errorf("update task: %w", err)
	}
	return t, nil
}

// ListTasks returns the project's tasks matching f, newest first.
func (db *DB) ListTasks(ctx context.Context, projectID string, f store.TaskFilter) ([]store.Task, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, fmt.Errorf("list tasks: unknown task status %q: %w", f.Status, store.ErrInvalid)
	}
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	q := `SELECT ` + taskColumns + ` FROM tasks WHERE project_id = $1`
	args := []any{projectID}
	if f.Status != "" {
		args = append(args, string(f.Status))
		q += fmt.Sprintf(` AND status = $%d`, len(args))
	}
	if f.SessionID != "" {
		args = append(args, f.SessionID)
		q += fmt.Sprintf(` AND session_id = $%d`, len(args))
	}
	args = append(args, store.Clamp(f.Limit, store.DefaultListLimit, store.MaxListLimit))
	q += fmt.Sprintf(` ORDER BY created_at DESC, pk DESC LIMIT $%d`, len(args))
	rows, err := r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	ts, err := collect(rows, scanTask)
	if err == nil && len(ts) == 0 {
		err = requireProject(ctx, r, projectID)
	}
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return ts, nil
}

// SearchTasks finds the project's tasks matching the words of query, best
// first: the title weighs most, then the description.
func (db *DB) SearchTasks(ctx context.Context, projectID, query string, limit int) ([]store.SearchHit[store.Task], error) {
	words, err := searchWords(query)
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	all, anyOf := tsQueries(3, len(words))
	rows, err := r.QueryContext(ctx, `WITH q AS (SELECT `+all+` AS q, `+anyOf+` AS qa)
		SELECT `+taskColumnsT+`, s.field, ts_headline('agentbroker', s.field, q.qa, '`+headlineOptions+`')
		FROM q, tasks t,
		LATERAL (SELECT CASE
			WHEN to_tsvector('agentbroker', t.title) @@ q.qa THEN t.title
			WHEN to_tsvector('agentbroker', t.description) @@ q.qa THEN t.description
			WHEN to_tsvector('agentbroker', t.notes) @@ q.qa THEN t.notes
			WHEN to_tsvector('agentbroker', t.output_summary) @@ q.qa THEN t.output_summary
			ELSE t.title END AS field) s
		WHERE t.project_id = $1 AND t.tsv @@ q.q
		ORDER BY ts_rank(`+weights+`, t.tsv, q.q, 1) DESC, t.pk DESC
		LIMIT $2`,
		searchArgs([]any{projectID, store.Clamp(limit, store.DefaultSearchLimit, store.MaxSearchLimit)}, words)...)
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	hits, err := collect(rows, func(s scanner) (store.SearchHit[store.Task], error) {
		var h store.SearchHit[store.Task]
		var field string
		var err error
		h.Item, err = scanTask(extraScanner{s, []any{&field, &h.Snippet}})
		h.Snippet = finishSnippet(h.Snippet, field)
		return h, err
	})
	if err == nil && len(hits) == 0 {
		err = requireProject(ctx, r, projectID)
	}
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	return hits, nil
}

// extraScanner scans more columns after the item's.
type extraScanner struct {
	s     scanner
	extra []any
}

func (es extraScanner) Scan(dest ...any) error {
	return es.s.Scan(append(dest, es.extra...)...)
}
