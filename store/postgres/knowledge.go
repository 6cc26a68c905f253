package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentbroker/agentbroker/store"
)

const knowledgeColumns = `id, project_id, title, body, tags, session_id, created_at, updated_at`

const knowledgeColumnsK = `k.id, k.project_id, k.title, k.body, k.tags, k.session_id, k.created_at, k.updated_at`

func scanKnowledge(s scanner) (store.Knowledge, error) {
	var (
		k                store.Knowledge
		tags             string
		created, updated int64
	)
	if err := s.Scan(&k.ID, &k.ProjectID, &k.Title, &k.Body, &tags, &k.SessionID, &created, &updated); err != nil {
		return k, err
	}
	k.CreatedAt, k.UpdatedAt = fromMicros(created), fromMicros(updated)
	k.Tags = []string{}
	if err := json.Unmarshal([]byte(tags), &k.Tags); err != nil {
		return k, fmt.Errorf("knowledge %q: tags: %w", k.ID, err)
	}
	return k, nil
}

func normTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if err := store.CheckText("tag", t, store.MaxTagLen, true); err != nil {
			return nil, err
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	if len(out) > store.MaxTags {
		return nil, fmt.Errorf("%d tags, over the limit of %d: %w", len(out), store.MaxTags, store.ErrInvalid)
	}
	return out, nil
}

func tagsJSON(tags []string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(tags)
	return strings.TrimSuffix(b.String(), "\n")
}

func checkKnowledge(k *store.Knowledge) error {
	if err := store.CheckAll(
		store.TextField{Name: "title", Value: k.Title, Max: store.MaxTitleLen, Required: true},
		store.TextField{Name: "body", Value: k.Body, Max: store.MaxTextLen, Required: true},
		store.TextField{Name: "session ID", Value: k.SessionID, Max: store.MaxIDLen, Required: false},
	); err != nil {
		return err
	}
	tags, err := normTags(k.Tags)
	if err != nil {
		return err
	}
	k.Tags = tags
	return nil
}

// AddKnowledge stores k with a new ID in k.ProjectID, which must exist.
func (db *DB) AddKnowledge(ctx context.Context, k store.Knowledge) (store.Knowledge, error) {
	if err := store.CheckAll(store.TextField{Name: "project ID", Value: k.ProjectID, Max: store.MaxIDLen, Required: true}); err != nil {
		return store.Knowledge{}, fmt.Errorf("add knowledge: %w", err)
	}
	if err := checkKnowledge(&k); err != nil {
		return store.Knowledge{}, fmt.Errorf("add knowledge: %w", err)
	}
	k.ID = store.NewID("kn_")
	k.CreatedAt = store.Now()
	k.UpdatedAt = k.CreatedAt
	err := db.write(ctx, func(tx *sql.Tx) error {
		if err := requireProject(ctx, tx, k.ProjectID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO knowledge (`+knowledgeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			k.ID, k.ProjectID, k.Title, k.Body, tagsJSON(k.Tags), k.SessionID, micros(k.CreatedAt), micros(k.UpdatedAt))
		return err
	})
	if err != nil {
		return store.Knowledge{}, fmt.Errorf("add knowledge: %w", err)
	}
	return k, nil
}

func getKnowledge(ctx context.Context, q rowQuerier, projectID, id string, lock bool) (store.Knowledge, error) {
	query := `SELECT ` + knowledgeColumns + ` FROM knowledge WHERE project_id = $1 AND id = $2`
	if lock {
		query += ` FOR UPDATE`
	}
	k, err := scanKnowledge(q.QueryRowContext(ctx, query, projectID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Knowledge{}, fmt.Errorf("knowledge %q in project %q: %w", id, projectID, store.ErrNotFound)
	}
	return k, err
}

// GetKnowledge returns one entry of the project.
func (db *DB) GetKnowledge(ctx context.Context, projectID, id string) (store.Knowledge, error) {
	r, err := db.reader()
	if err != nil {
		return store.Knowledge{}, fmt.Errorf("get knowledge: %w", err)
	}
	k, err := getKnowledge(ctx, r, projectID, id, false)
	if err != nil {
		return store.Knowledge{}, fmt.Errorf("get knowledge: %w", err)
	}
	return k, nil
}

// UpdateKnowledge changes the fields u sets, and UpdatedAt.
func (db *DB) UpdateKnowledge(ctx context.Context, projectID, id string, u store.KnowledgeUpdate) (store.Knowledge, error) {
	var k store.Knowledge
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		if k, err = getKnowledge(ctx, tx, projectID, id, true); err != nil {
			return err
		}
		if u == (store.KnowledgeUpdate{}) {
			return nil
		}
		set(&k.Title, u.Title)
		set(&k.Body, u.Body)
		set(&k.Tags, u.Tags)
		if err := checkKnowledge(&k); err != nil {
			return err
		}
		k.UpdatedAt = store.Now()
		_, err = tx.ExecContext(ctx, `UPDATE knowledge SET title = $1, body = $2, tags = $3, updated_at = $4
			WHERE project_id = $5 AND id = $6`,
			k.Title, k.Body, tagsJSON(k.Tags), micros(k.UpdatedAt), projectID, id)
		return err
	})
	if err != nil {
		return store.Knowledge{}, fmt.Errorf("update knowledge: %w", err)
	}
	return k, nil
}

// ListKnowledge returns the project's entries, newest first.
func (db *DB) ListKnowledge(ctx context.Context, projectID string, limit int) ([]store.Knowledge, error) {
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("list knowledge: %w", err)
	}
	rows, err := r.QueryContext(ctx, `SELECT `+knowledgeColumns+` FROM knowledge WHERE project_id = $1
		ORDER BY created_at DESC, pk DESC LIMIT $2`,
		projectID, store.Clamp(limit, store.DefaultListLimit, store.MaxListLimit))
	if err != nil {
		return nil, fmt.Errorf("list knowledge: %w", err)
	}
	ks, err := collect(rows, scanKnowledge)
	if err == nil && len(ks) == 0 {
		err = requireProject(ctx, r, projectID)
	}
	if err != nil {
		return nil, fmt.Errorf("list knowledge: %w", err)
	}
	return ks, nil
}

// SearchKnowledge finds the project's entries matching the words of query,
// best first: the title weighs most, then the tags, then the body.
func (db *DB) SearchKnowledge(ctx context.Context, projectID, query string, limit int) ([]store.SearchHit[store.Knowledge], error) {
	words, err := searchWords(query)
	if err != nil {
		return nil, fmt.Errorf("search knowledge: %w", err)
	}
	r, err := db.reader()
	if err != nil {
		return nil, fmt.Errorf("search knowledge: %w", err)
	}
	all, anyOf := tsQueries(3, len(words))
	rows, err := r.QueryContext(ctx, `WITH q AS (SELECT `+all+` AS q, `+anyOf+` AS qa)
		SELECT `+knowledgeColumnsK+`, s.field, ts_headline('agentbroker', s.field, q.qa, '`+headlineOptions+`')
		FROM q, knowledge k,
		LATERAL (SELECT CASE
			WHEN to_tsvector('agentbroker', k.title) @@ q.qa THEN k.title
			WHEN to_tsvector('agentbroker', k.body) @@ q.qa THEN k.body
			WHEN to_tsvector('agentbroker', k.tags) @@ q.qa THEN k.tags
			ELSE k.title END AS field) s
		WHERE k.project_id = $1 AND k.tsv @@ q.q
		ORDER BY ts_rank(`+weights+`, k.tsv, q.q, 1) DESC, k.pk DESC
		LIMIT $2`,
		searchArgs([]any{projectID, store.Clamp(limit, store.DefaultSearchLimit, store.MaxSearchLimit)}, words)...)
	if err != nil {
		return nil, fmt.Errorf("search knowledge: %w", err)
	}
	hits, err := collect(rows, func(s scanner) (store.SearchHit[store.Knowledge], error) {
		var h store.SearchHit[store.Knowledge]
		var field string
		var err error
		h.Item, err = scanKnowledge(extraScanner{s, []any{&field, &h.Snippet}})
		h.Snippet = finishSnippet(h.Snippet, field)
		return h, err
	})
	if err == nil && len(hits) == 0 {
		err = requireProject(ctx, r, projectID)
	}
	if err != nil {
		return nil, fmt.Errorf("search knowledge: %w", err)
	}
	return hits, nil
}
