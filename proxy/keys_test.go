package proxy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/proxy"
)

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  sk-file-key\n", 0o600)
	readOnly := write("ro", "sk-ro-key", 0o400)
	shared := write("shared", "sk-shared", 0o644)
	group := write("group", "sk-group", 0o640)
	empty := write("empty", " \n", 0o600)
	newline := write("newline", "sk-a\nsk-b\n", 0o600)
	huge := write("huge", strings.Repeat("k", 70<<10), 0o600)
	t.Setenv("PROXY_TEST_KEY", "sk-env-key")
	t.Setenv("PROXY_TEST_EMPTY", "")
	t.Setenv("PROXY_TEST_BAD", "sk bad")

	tests := []struct {
		name, env, file string
		want            string
		err             error
	}{
		{"environment wins", "PROXY_TEST_KEY", good, "sk-env-key", nil},
		{"file when the variable is empty", "PROXY_TEST_EMPTY", good, "sk-file-key", nil},
		{"file only", "", good, "sk-file-key", nil},
		{"read-only file", "", readOnly, "sk-ro-key", nil},
		{"world-readable file", "", shared, "", proxy.ErrKeyFileMode},
		{"group-readable file", "PROXY_TEST_UNSET", group, "", proxy.ErrKeyFileMode},
		{"empty file", "", empty, "", proxy.ErrBadKey},
		{"two lines", "", newline, "", proxy.ErrBadKey},
		{"huge file", "", huge, "", proxy.ErrBadKey},
		{"bad variable", "PROXY_TEST_BAD", good, "", proxy.ErrBadKey},
		{"nothing set", "PROXY_TEST_UNSET", "", "", proxy.ErrNoKey},
		{"missing file", "PROXY_TEST_UNSET", filepath.Join(dir, "none"), "", proxy.ErrNoKey},
		{"nothing given", "", "", "", proxy.ErrNoKey},
	}
	for _, tt := range tests {
		got, err := proxy.LoadKey(tt.env, tt.file)
		if got != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("%s: %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
		if err != nil && (strings.Contains(err.Error(), "sk-") || strings.Contains(err.Error(), "kkkk")) {
			t.Errorf("%s: the error shows the key: %v", tt.name, err)
		}
	}
	if _, err := proxy.LoadKey("", dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}
