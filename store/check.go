package store

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The rules every store applies to what it is given, so that the SQLite and
// the PostgreSQL stores refuse and return exactly the same things.

// idEncoding is lowercase base32 without padding: URL-safe, and one case
// so that an ID survives case-folding systems.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix and 16 random characters (80 bits).
func NewID(prefix string) string {
	var b [10]byte
	rand.Read(b[:]) // never fails: crypto/rand aborts the program instead
	return prefix + idEncoding.EncodeToString(b[:])
}

// CheckText refuses text a store does not keep: an empty required field,
// a value over max bytes, invalid UTF-8, a NUL byte.
func CheckText(field, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is required: %w", field, ErrInvalid)
	case len(v) > max:
		return fmt.Errorf("%s is %d bytes, over the limit of %d: %w", field, len(v), max, ErrInvalid)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8: %w", field, ErrInvalid)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte: %w", field, ErrInvalid)
	}
	return nil
}

// TextField is one field for CheckAll.
type TextField struct {
	Name     string
	Value    string
	Max      int
	Required bool
}

// CheckAll returns the first field's refusal, if any.
func CheckAll(fields ...TextField) error {
	for _, f := range fields {
		if err := CheckText(f.Name, f.Value, f.Max, f.Required); err != nil {
			return err
		}
	}
	return nil
}

// Clamp applies a default to limit <= 0 and a ceiling to the rest.
func Clamp(limit, def, max int) int {
	switch {
	case limit <= 0:
		return def
	case limit > max:
		return max
	}
	return limit
}

// CheckConfig refuses a session config that is not a JSON object or is
// over MaxConfigLen (a valid JSON text holds no raw NUL byte).
func CheckConfig(c []byte) error {
	switch {
	case c == nil:
		return nil
	case len(c) > MaxConfigLen:
		return fmt.Errorf("session config is %d bytes, over the limit of %d: %w", len(c), MaxConfigLen, ErrInvalid)
	case !json.Valid(c) || len(bytes.TrimSpace(c)) == 0 || bytes.TrimSpace(c)[0] != '{':
		return fmt.Errorf("session config is not a JSON object: %w", ErrInvalid)
	}
	return nil
}

// Now is the current time as the stores keep it: UTC, microseconds.
func Now() time.Time { return StoredTime(time.Now()) }

// StoredTime is t as it reads back from a store.
func StoredTime(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }
