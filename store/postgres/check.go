package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentbroker/agentbroker/store"
)

// The rules below are the SQLite store's (store/sqlite/records.go): both
// refuse and return exactly the same things.

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID(prefix string) string {
	var b [10]byte
	rand.Read(b[:])
	return prefix + idEncoding.EncodeToString(b[:])
}

func now() time.Time { return fromMicros(time.Now().UnixMicro()) }

func storedTime(t time.Time) time.Time { return fromMicros(micros(t)) }

func checkText(field, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is required: %w", field, store.ErrInvalid)
	case len(v) > max:
		return fmt.Errorf("%s is %d bytes, over the limit of %d: %w", field, len(v), max, store.ErrInvalid)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8: %w", field, store.ErrInvalid)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte: %w", field, store.ErrInvalid)
	}
	return nil
}

type textField struct {
	name     string
	value    string
	max      int
	required bool
}

func checkAll(fields ...textField) error {
	for _, f := range fields {
		if err := checkText(f.name, f.value, f.max, f.required); err != nil {
			return err
		}
	}
	return nil
}

func clamp(limit, def, max int) int {
	switch {
	case limit <= 0:
		return def
	case limit > max:
		return max
	}
	return limit
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// checkConfig refuses a session config that is not a JSON object or is
// over store.MaxConfigLen.
func checkConfig(c []byte) error {
	switch {
	case c == nil:
		return nil
	case len(c) > store.MaxConfigLen:
		return fmt.Errorf("session config is %d bytes, over the limit of %d: %w", len(c), store.MaxConfigLen, store.ErrInvalid)
	case !json.Valid(c) || len(bytes.TrimSpace(c)) == 0 || bytes.TrimSpace(c)[0] != '{':
		return fmt.Errorf("session config is not a JSON object: %w", store.ErrInvalid)
	case bytes.IndexByte(c, 0) >= 0:
		return fmt.Errorf("session config contains a NUL byte: %w", store.ErrInvalid)
	}
	return nil
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
