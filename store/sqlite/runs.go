package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/agentbroker/agentbroker/store"
)

const runColumns = `session_id, project_id, task_id, agent, model, state, reason, reply, notes, started_at, ended_at`

func scanRun(s scanner) (store.TaskRun, error) {
	var (
		r              store.TaskRun
		started, ended int64
	)
	err := s.Scan(&r.SessionID, &r.ProjectID, &r.TaskID, &r.Agent, &r.Model, &r.State, &r.Reason, &r.Reply, &r.Notes,
		&started, &ended)
	r.StartedAt = fromMicros(started)
	if ended != 0 {
		r.EndedAt = fromMicros(ended)
	}
	return r, err
}

// AddRun records a new running run of a recorded session, for a task of
// its project.
func (db *DB) AddRun(ctx context.Context, r store.TaskRun) (store.TaskRun, error) {
	if err := store.CheckAll(
		store.TextField{Name: "run session", Value: r.SessionID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "run project", Value: r.ProjectID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "run task", Value: r.TaskID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "run agent", Value: r.Agent, Max: store.MaxNameLen, Required: false},
		store.TextField{Name: "run model", Value: r.Model, Max: store.MaxNameLen, Required: false},
	); err != nil {
		return store.TaskRun{}, fmt.Errorf("add run: %w", err)
	}
	r.State, r.Reason, r.Reply, r.Notes = store.RunRunning, "", "", ""
	r.StartedAt, r.EndedAt = store.Now(), store.TaskRun{}.EndedAt
	err := db.write(ctx, func(tx *sql.Tx) error {
		var session, task, dup bool
		if err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM sessions WHERE id = ? AND project_id = ?),
			EXISTS (SELECT 1 FROM tasks WHERE id = ? AND project_id = ?),
			EXISTS (SELECT 1 FROM task_runs WHERE session_id = ?)`,
			r.SessionID, r.ProjectID, r.TaskID, r.ProjectID, r.SessionID).Scan(&session, &task, &dup); err != nil {
			return err
		}
		switch {
		case !session:
			return fmt.Errorf("session %q in project %q: %w", r.SessionID, r.ProjectID, store.ErrNotFound)
		case !task:
			return fmt.Errorf("task %q in project %q: %w", r.TaskID, r.ProjectID, store.ErrNotFound)
		case dup:
			return fmt.Errorf("a run of session %q: %w", r.SessionID, store.ErrConflict)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO task_runs (`+runColumns+`) VALUES (?, ?, ?, ?, ?, ?, '', '', '', ?, 0)`,
			r.SessionID, r.ProjectID, r.TaskID, r.Agent, r.Model, r.State, micros(r.StartedAt))
		return err
	})
	if err != nil {
		return store.TaskRun{}, fmt.Errorf("add run: %w", err)
	}
	return r, nil
}

// FinishRun ends a running run; the first end wins.
func (db *DB) FinishRun(ctx context.Context, projectID, sessionID string, end store.RunEnd) (store.TaskRun, error) {
	if !end.State.Final() {
		return store.TaskRun{}, fmt.Errorf("finish run: state %q is not an end: %w", end.State, store.ErrInvalid)
	}
	if err := store.CheckAll(
		store.TextField{Name: "run reason", Value: end.Reason, Max: store.MaxTextLen, Required: false},
		store.TextField{Name: "run reply", Value: end.Reply, Max: store.MaxTextLen, Required: false},
		store.TextField{Name: "run notes", Value: end.Notes, Max: store.MaxTextLen, Required: false},
	); err != nil {
		return store.TaskRun{}, fmt.Errorf("finish run: %w", err)
	}
	var out store.TaskRun
	err := db.write(ctx, func(tx *sql.Tx) error {
		r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM task_runs WHERE project_id = ? AND session_id = ?`,
			projectID, sessionID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run of session %q in project %q: %w", sessionID, projectID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if r.State.Final() {
			return fmt.Errorf("run of session %q ended already (%s): %w", sessionID, r.State, store.ErrConflict)
		}
		r.State, r.Reason, r.Reply, r.Notes, r.EndedAt = end.State, end.Reason, end.Reply, end.Notes, store.Now()
		_, err = tx.ExecContext(ctx, `UPDATE task_runs SET state = ?, reason = ?, reply = ?, notes = ?, ended_at = ?
			WHERE session_id = ?`, r.State, r.Reason, r.Reply, r.Notes, micros(r.EndedAt), sessionID)
		out = r
		return err
	})
	if err != nil {
		return store.TaskRun{}, fmt.Errorf("finish run: %w", err)
	}
	return out, nil
}

// GetRun returns the run of a session.
func (db *DB) GetRun(ctx context.Context, projectID, sessionID string) (store.TaskRun, error) {
	rp, err := db.reader()
	if err != nil {
		return store.TaskRun{}, err
	}
	r, err := scanRun(rp.QueryRowContext(ctx, `SELECT `+runColumns+` FROM task_runs WHERE project_id = ? AND session_id = ?`,
		projectID, sessionID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.TaskRun{}, fmt.Errorf("get run: session %q in project %q: %w", sessionID, projectID, store.ErrNotFound)
	}
	if err != nil {
		return store.TaskRun{}, fmt.Errorf("get run: %w", err)
	}
	return r, nil
}

// ListRuns returns a task's runs, newest first.
func (db *DB) ListRuns(ctx context.Context, projectID, taskID string) ([]store.TaskRun, error) {
	rp, err := db.reader()
	if err != nil {
		return nil, err
	}
	rows, err := rp.QueryContext(ctx, `SELECT `+runColumns+` FROM task_runs WHERE project_id = ? AND task_id = ?
		ORDER BY started_at DESC, rowid DESC LIMIT ?`, projectID, taskID, store.MaxListLimit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := collect(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// RunningRuns returns the runs still running, oldest first.
func (db *DB) RunningRuns(ctx context.Context) ([]store.TaskRun, error) {
	rp, err := db.reader()
	if err != nil {
		return nil, err
	}
	rows, err := rp.QueryContext(ctx, `SELECT `+runColumns+` FROM task_runs WHERE state = 'running' ORDER BY started_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("running runs: %w", err)
	}
	runs, err := collect(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("running runs: %w", err)
	}
	return runs, nil
}
