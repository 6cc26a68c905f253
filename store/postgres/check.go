package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/agentbroker/agentbroker/store"
)

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func projectExists(ctx context.Context, q rowQuerier, id string) (bool, error) {
	var ok bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)`, id).Scan(&ok); err != nil {
		return false, err
	}
	return ok, nil
}

func requireProject(ctx context.Context, q rowQuerier, id string) error {
	ok, err := projectExists(ctx, q, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("project %q: %w", id, store.ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
