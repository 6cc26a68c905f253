package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/agentbroker/agentbroker/store"
)

const taskColumns = `id, project_id, title, description, status, notes, output_summary, session_id, budget_pico_usd, created_at, updated_at`

// taskColumnsT is taskColumns qualified by a table alias, for joins.
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
	err := db.write(ctx, func(tx *sql.Tx) error {
		if err := requireProject(ctx, tx, t.ProjectID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tasks (`+taskColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.ProjectID, t.Title, t.Description, t.Status, t.Notes, t.OutputSummary, t.SessionID, t.BudgetPicoUSD,
			micros(t.CreatedAt), micros(t.UpdatedAt))
		return err
	})
	db.changes.changed(slot(changedTasks, t.ProjectID, t.ID))
	if err != nil {
		return store.Task{}, fmt.Errorf("create task: %w", err)
	}
	return t, nil
}

const getTaskSQL = `SELECT ` + taskColumns + ` FROM tasks WHERE project_id = ? AND id = ?`

func getTask(ctx context.Context, q rowQuerier, projectID, id string) (store.Task, error) {
	return taskRow(q.QueryRowContext(ctx, getTaskSQL, projectID, id), projectID, id)
}

func taskRow(row *sql.Row, projectID, id string) (store.Task, error) {
	t, err := scanTask(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Task{}, fmt.Errorf("task %q in project %q: %w", id, projectID, store.ErrNotFound)
	}
	return t, err
}

// GetTask returns one task of the project.
func (db *DB) GetTask(ctx context.Context, projectID, id string) (store.Task, error) {
	if db.closed.Load() {
		return store.Task{}, fmt.Errorf("get task: %w", store.ErrClosed)
	}
	// A point read: not worth modernc's interrupt watcher (see IsRevoked).
	return readThrough(db, &db.taskCache, [2]string{projectID, id}, func() (store.Task, error) {
		t, err := taskRow(db.rp.QueryRowContext(context.WithoutCancel(ctx), getTaskSQL, projectID, id), projectID, id)
		if err != nil {
			return store.Task{}, fmt.Errorf("get task: %w", err)
		}
		return t, nil
	}, slot(changedTasks, projectID, id))
}

// UpdateTask changes the fields u sets, and UpdatedAt.
func (db *DB) UpdateTask(ctx context.Context, projectID, id string, u store.TaskUpdate) (store.Task, error) {
	var t store.Task
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = getTask(ctx, tx, projectID, id); err != nil {
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
		_, err = tx.ExecContext(ctx, `UPDATE tasks SET
			title = ?, description = ?, status = ?, notes = ?, output_summary = ?, session_id = ?, budget_pico_usd = ?, updated_at = ?
			WHERE project_id = ? AND id = ?`,
			t.Title, t.Description, t.Status, t.Notes, t.OutputSummary, t.SessionID, t.BudgetPicoUSD, micros(t.UpdatedAt), projectID, id)
		return err
	})
	db.changes.changed(slot(changedTasks, projectID, id))
	if err != nil {
		return store.Task{}, fmt.Errorf("update task: %w", err)
	}
	return t, nil
}

// set copies *v to *dst when v is not nil.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
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
	// Only the filters given are in the statement, so that SQLite can
	// pick the status or session index.
	q := `SELECT ` + taskColumns + ` FROM tasks WHERE project_id = ?1`
	args := []any{projectID}
	if f.Status != "" {
		q += ` AND status = ?` + fmt.Sprint(len(args)+1)
		args = append(args, string(f.Status))
	}
	if f.SessionID != "" {
		q += ` AND session_id = ?` + fmt.Sprint(len(args)+1)
		args = append(args, f.SessionID)
	}
	q += ` ORDER BY created_at DESC, pk DESC LIMIT ?` + fmt.Sprint(len(args)+1)
	args = append(args, store.Clamp(f.Limit, store.DefaultListLimit, store.MaxListLimit))
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
// first. A match in the title weighs most, then the description.
func (db *DB) SearchTasks(ctx context.Context, projectID, query string, limit int) ([]store.SearchHit[store.Task], error) {
	match, err := ftsQuery(query)
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	rows, err := r.QueryContext(ctx, `SELECT `+taskColumnsT+`, `+snippetSQL("tasks_fts")+`
		FROM tasks_fts JOIN tasks t ON t.pk = tasks_fts.rowid
		WHERE tasks_fts MATCH ?1 AND t.project_id = ?2
		ORDER BY bm25(tasks_fts, 4.0, 2.0, 1.0, 1.0), t.pk DESC
		LIMIT ?3`,
		match, projectID, store.Clamp(limit, store.DefaultSearchLimit, store.MaxSearchLimit))
	if err != nil {
		return nil, fmt.Errorf("search tasks: %w", err)
	}
	hits, err := collect(rows, func(s scanner) (store.SearchHit[store.Task], error) {
		var h store.SearchHit[store.Task]
		var err error
		h.Item, err = scanTask(snippetScanner{s, &h.Snippet})
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

// snippetScanner scans one more column, the snippet, after the item's.
type snippetScanner struct {
	s       scanner
	snippet *string
}

func (ss snippetScanner) Scan(dest ...any) error {
	return ss.s.Scan(append(dest, ss.snippet)...)
}
