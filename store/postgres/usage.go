package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/agentbroker/agentbroker/store"
)

// AddUsage stores one model call's usage record.
func (db *DB) AddUsage(ctx context.Context, r store.UsageRecord) error {
	if err := store.CheckAll(
		store.TextField{Name: "usage session", Value: r.SessionID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "usage project", Value: r.ProjectID, Max: store.MaxIDLen, Required: true},
		store.TextField{Name: "usage task", Value: r.TaskID, Max: store.MaxIDLen, Required: false},
		store.TextField{Name: "usage model", Value: r.Model, Max: store.MaxNameLen, Required: false},
		store.TextField{Name: "usage provider", Value: r.Provider, Max: store.MaxNameLen, Required: false},
		store.TextField{Name: "usage outcome", Value: r.Outcome, Max: store.MaxNameLen, Required: false},
	); err != nil {
		return fmt.Errorf("add usage: %w", err)
	}
	for _, n := range []int64{r.InputTokens, r.OutputTokens, r.CacheReadTokens, r.CacheWriteTokens, r.CostPicoUSD} {
		if n < 0 {
			return fmt.Errorf("add usage: negative count or cost %d: %w", n, store.ErrInvalid)
		}
	}
	at := store.Now()
	if !r.At.IsZero() {
		at = store.StoredTime(r.At)
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO usage_records (session_id, project_id, task_id, model, provider,
			input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_pico_usd, outcome, at)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
			WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND project_id = $2)`,
			r.SessionID, r.ProjectID, r.TaskID, r.Model, r.Provider, r.InputTokens, r.OutputTokens,
			r.CacheReadTokens, r.CacheWriteTokens, r.CostPicoUSD, r.Outcome, micros(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("session %q in project %q: %w", r.SessionID, r.ProjectID, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add usage: %w", err)
	}
	return nil
}

var usageKeys = map[store.UsageGroup]string{
	store.UsageTotal:     `''`,
	store.UsageByDay:     `to_char(to_timestamp(at::double precision / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
	store.UsageBySession: `session_id`,
	store.UsageByTask:    `task_id`,
	store.UsageByModel:   `model`,
}

// UsageTotals adds up the usage records f selects.
func (db *DB) UsageTotals(ctx context.Context, f store.UsageFilter) ([]store.UsageSum, error) {
	key, ok := usageKeys[f.GroupBy]
	if !ok {
		return nil, fmt.Errorf("usage totals: unknown grouping %q: %w", f.GroupBy, store.ErrInvalid)
	}
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.ProjectID != "" {
		add("project_id = $%d", f.ProjectID)
	}
	if f.SessionID != "" {
		add("session_id = $%d", f.SessionID)
	}
	if f.TaskID != "" {
		add("task_id = $%d", f.TaskID)
	}
	if !f.Since.IsZero() {
		add("at >= $%d", micros(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < $%d", micros(f.Until))
	}
	// sum of bigint is numeric: back to bigint (a total past 2^63 fails
	// rather than wraps).
	q := `SELECT ` + key + ` AS k, count(*), coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint,
		coalesce(sum(cache_read_tokens), 0)::bigint, coalesce(sum(cache_write_tokens), 0)::bigint, coalesce(sum(cost_pico_usd), 0)::bigint
		FROM usage_records`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	if f.GroupBy != store.UsageTotal {
		q += ` GROUP BY k ORDER BY (` + key + `) COLLATE "C"`
	}
	rows, err := r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("usage totals: %w", err)
	}
	out, err := collect(rows, func(s scanner) (store.UsageSum, error) {
		var u store.UsageSum
		err := s.Scan(&u.Key, &u.Calls, &u.InputTokens, &u.OutputTokens, &u.CacheReadTokens, &u.CacheWriteTokens, &u.CostPicoUSD)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("usage totals: %w", err)
	}
	return out, nil
}
