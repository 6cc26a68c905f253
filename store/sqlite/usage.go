package sqlite

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
		var ok bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ? AND project_id = ?)`,
			r.SessionID, r.ProjectID).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("session %q in project %q: %w", r.SessionID, r.ProjectID, store.ErrNotFound)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO usage_records (session_id, project_id, task_id, model, provider,
			input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_pico_usd, outcome, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.SessionID, r.ProjectID, r.TaskID, r.Model, r.Provider, r.InputTokens, r.OutputTokens,
			r.CacheReadTokens, r.CacheWriteTokens, r.CostPicoUSD, r.Outcome, micros(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("add usage: %w", err)
	}
	return nil
}

// usageKeys are the SQL expressions of the groupings' keys.
var usageKeys = map[store.UsageGroup]string{
	store.UsageTotal:     `''`,
	store.UsageByDay:     `strftime('%Y-%m-%d', at / 1000000, 'unixepoch')`,
	store.UsageBySession: `session_id`,
	store.UsageByTask:    `task_id`,
	store.UsageByModel:   `model`,
}

// UsageTotals adds up the usage records f selects, by the indexes on
// project, session and task.
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
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.ProjectID != "" {
		add("project_id = ?", f.ProjectID)
	}
	if f.SessionID != "" {
		add("session_id = ?", f.SessionID)
	}
	if f.TaskID != "" {
		add("task_id = ?", f.TaskID)
	}
	if !f.Since.IsZero() {
		add("at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", micros(f.Until))
	}
	q := `SELECT ` + key + ` AS k, count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
		coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0), coalesce(sum(cost_pico_usd), 0)
		FROM usage_records`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	if f.GroupBy != store.UsageTotal {
		q += ` GROUP BY k ORDER BY k`
	}
	rows, err := r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("usage totals: %w", err)
	}
	defer rows.Close()
	var out []store.UsageSum
	for rows.Next() {
		var s store.UsageSum
		if err := rows.Scan(&s.Key, &s.Calls, &s.InputTokens, &s.OutputTokens, &s.CacheReadTokens,
			&s.CacheWriteTokens, &s.CostPicoUSD); err != nil {
			return nil, fmt.Errorf("usage totals: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage totals: %w", err)
	}
	return out, nil
}
