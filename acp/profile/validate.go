package profile

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Input size limits.
const (
	maxTokenBytes    = 16 << 10
	maxAuthJSONBytes = 1 << 20
	maxURLBytes      = 2048
)

// hasControl reports whether s has an ASCII control character (newline,
// carriage return, NUL, DEL…), which would split an environment entry, a
// header or a TOML line.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// truncate shortens a non-secret value for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func checkAbsPath(name, p string) error {
	if p == "" {
		return fmt.Errorf("%w: %s is empty", ErrBadValue, name)
	}
	if hasControl(p) || !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("%w: %s %q is not a clean absolute path", ErrBadValue, name, truncate(p))
	}
	return nil
}

// checkURL accepts an absolute http or https URL without user info; a base
// URL (allowQuery false) also has no query or fragment.
func checkURL(name, raw string, allowQuery bool) error {
	if raw == "" {
		return fmt.Errorf("%w: %s is empty", ErrBadValue, name)
	}
	if hasControl(raw) || strings.ContainsAny(raw, " \"'\\") {
		return fmt.Errorf("%w: %s has a control character, a space or a quote (a trailing newline?)", ErrBadValue, name)
	}
	if len(raw) > maxURLBytes {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrBadValue, name, maxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadValue, name, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: %s %q: want an http or https URL", ErrBadValue, name, truncate(raw))
	case u.Host == "":
		return fmt.Errorf("%w: %s %q has no host", ErrBadValue, name, truncate(raw))
	case u.User != nil:
		return fmt.Errorf("%w: %s carries user info: pass credentials as secrets", ErrBadValue, name)
	case !allowQuery && (u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, "?#")):
		return fmt.Errorf("%w: %s %q: a base URL has no query or fragment", ErrBadValue, name, truncate(raw))
	}
	return nil
}

// checkToken accepts a non-empty, bounded value without control characters
// or spaces. Its errors never include the value.
func checkToken(name string, s Secret) error {
	v := s.Reveal()
	switch {
	case v == "":
		return fmt.Errorf("%w: %s is empty", ErrMissingSecret, name)
	case len(v) > maxTokenBytes:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrBadValue, name, maxTokenBytes)
	case hasControl(v) || strings.ContainsAny(v, " \t"):
		return fmt.Errorf("%w: %s has a control character or a space (a trailing newline?)", ErrBadValue, name)
	}
	return nil
}

// checkAuthJSON accepts Codex's auth.json: a JSON object. Its errors never
// include the content.
func checkAuthJSON(s Secret) error {
	v := s.Reveal()
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: Codex auth.json content is empty", ErrMissingSecret)
	}
	if len(v) > maxAuthJSONBytes {
		return fmt.Errorf("%w: Codex auth.json is larger than %d bytes", ErrBadValue, maxAuthJSONBytes)
	}
	var obj map[string]any
	if json.Unmarshal([]byte(v), &obj) != nil || obj == nil {
		return fmt.Errorf("%w: Codex auth.json content is not a JSON object", ErrBadValue)
	}
	return nil
}
