package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/agentbroker/agentbroker/store"
)

const projectColumns = `id, name, description, repo_path, repo_url, default_branch, instructions, created_at, updated_at`

func scanProject(s scanner) (store.Project, error) {
	var (
		p                store.Project
		created, updated int64
	)
	err := s.Scan(&p.ID, &p.Name, &p.Description, &p.RepoPath, &p.RepoURL, &p.DefaultBranch, &p.Instructions, &created, &updated)
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	return p, err
}

func checkProject(p store.Project) error {
	return store.CheckAll(
		store.TextField{Name: "name", Value: p.Name, Max: store.MaxNameLen, Required: true},
		store.TextField{Name: "description", Value: p.Description, Max: store.MaxTextLen, Required: false},
		store.TextField{Name: "repo path", Value: p.RepoPath, Max: store.MaxRefLen, Required: false},
		store.TextField{Name: "repo URL", Value: p.RepoURL, Max: store.MaxRefLen, Required: false},
		store.TextField{Name: "default branch", Value: p.DefaultBranch, Max: store.MaxNameLen, Required: false},
		store.TextField{Name: "instructions", Value: p.Instructions, Max: store.MaxTextLen, Required: false},
	)
}

// CreateProject stores p with a new ID and returns it as stored.
func (db *DB) CreateProject(ctx context.Context, p store.Project) (store.Project, error) {
	if err := checkProject(p); err != nil {
		return store.Project{}, fmt.Errorf("create project: %w", err)
	}
	p.ID = store.NewID("prj_")
	p.CreatedAt = store.Now()
	p.UpdatedAt = p.CreatedAt
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO projects (`+projectColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.Name, p.Description, p.RepoPath, p.RepoURL, p.DefaultBranch, p.Instructions, micros(p.CreatedAt), micros(p.UpdatedAt))
		return err
	})
	if err != nil {
		return store.Project{}, fmt.Errorf("create project: %w", err)
	}
	return p, nil
}

// GetProject returns one project.
func (db *DB) GetProject(ctx context.Context, id string) (store.Project, error) {
	r, err := db.reader()
	if err != nil {
		return store.Project{}, fmt.Errorf("get project: %w", err)
	}
	p, err := scanProject(r.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Project{}, fmt.Errorf("get project %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Project{}, fmt.Errorf("get project: %w", err)
	}
	return p, nil
}

// UpdateProject replaces every field of the project p.ID but its ID and
// CreatedAt, and returns it as stored.
func (db *DB) UpdateProject(ctx context.Context, p store.Project) (store.Project, error) {
	if err := checkProject(p); err != nil {
		return store.Project{}, fmt.Errorf("update project: %w", err)
	}
	var out store.Project
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanProject(tx.QueryRowContext(ctx, `UPDATE projects SET
			name = ?, description = ?, repo_path = ?, repo_url = ?, default_branch = ?, instructions = ?, updated_at = ?
			WHERE id = ? RETURNING `+projectColumns,
			p.Name, p.Description, p.RepoPath, p.RepoURL, p.DefaultBranch, p.Instructions, micros(store.Now()), p.ID))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Project{}, fmt.Errorf("update project %q: %w", p.ID, store.ErrNotFound)
	}
	if err != nil {
		return store.Project{}, fmt.Errorf("update project: %w", err)
	}
	return out, nil
}

// ListProjects returns every project by name, case-insensitively.
func (db *DB) ListProjects(ctx context.Context) ([]store.Project, error) {
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	rows, err := r.QueryContext(ctx, `SELECT `+projectColumns+` FROM projects ORDER BY name COLLATE NOCASE, id`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	ps, err := collect(rows, scanProject)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return ps, nil
}
