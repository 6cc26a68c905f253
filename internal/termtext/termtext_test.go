package termtext

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "hello, world", "hello, world"},
		{"newline and tab kept", "a\tb\nc", "a\tb\nc"},
		{"unicode kept", "café ✓ 日本 \u200d e\u0301", "café ✓ 日本 \u200d e\u0301"},
		{"empty", "", ""},
		{"OSC 52 clipboard write", "x\x1b]52;c;ZWNobyBoaQ==\x07y", `x\x1b]52;c;ZWNobyBoaQ==\x07y`},
		{"window title", "\x1b]0;innocent\x07", `\x1b]0;innocent\x07`},
		{"OSC with ST", "\x1b]0;t\x1b\\", `\x1b]0;t\x1b\`},
		{"clear screen and home", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"cursor up, erase line", "yes\x1b[1A\x1b[2Kno", `yes\x1b[1A\x1b[2Kno`},
		{"carriage return overwrite", "rm -rf /\rls", `rm -rf /\x0dls`},
		{"backspace", "allow\b\b\b\b\bdeny", `allow\x08\x08\x08\x08\x08deny`},
		{"NUL, VT, FF", "a\x00b\x0bc\x0cd", `a\x00b\x0bc\x0cd`},
		{"DEL", "a\x7fb", `a\u007fb`},
		{"C1 CSI and OSC, encoded", "a\u009b2Jb\u009d0;t\u009c", `a\u009b2Jb\u009d0;t\u009c`},
		{"C1 NEL", "a\u0085b", `a\u0085b`},
		{"bidi override", "file\u202egnp.exe", `file\u202egnp.exe`},
		{"bidi embeddings", "\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
		{"bidi isolates", "\u2066a\u2067b\u2068c\u2069", `\u2066a\u2067b\u2068c\u2069`},
		{"lone C1 byte, not UTF-8", "a\x9b2Jb", `a\x9b2Jb`},
		{"truncated sequence", "a\xe2\x80", `a\xe2\x80`},
		{"U+FFFD itself kept", "a\ufffdb", "a\ufffdb"},
		{"a backslash is left alone", `\x1b`, `\x1b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Escape(tc.in); got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestEscapeKeepsJSON: JSON from encoding/json, passed through Escape,
// is still valid and decodes to the same value.
func TestEscapeKeepsJSON(t *testing.T) {
	t.Parallel()
	in := map[string]string{"text": "a\x1b]52;c;x\x07\x7f\u0085\u009b\u202e\u2066\r\n\tz"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	esc := Escape(string(b))
	var back map[string]string
	if err := json.Unmarshal([]byte(esc), &back); err != nil {
		t.Fatalf("escaped JSON %s: %v", esc, err)
	}
	if back["text"] != in["text"] {
		t.Errorf("escaped JSON decodes to %q, want %q", back["text"], in["text"])
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk gone") }

func TestWriter(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	w := NewWriter(&b)
	if NewWriter(w) != w {
		t.Error("NewWriter wrapped a Writer again")
	}
	if w.Unwrap() != &b {
		t.Error("Unwrap does not return the underlying writer")
	}
	in := "say \x1b[2Jhi\n"
	n, err := w.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(in))
	}
	if got, want := b.String(), "say \\x1b[2Jhi\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
	if n, err := NewWriter(failingWriter{}).Write([]byte("x")); err == nil || n != 0 {
		t.Errorf("Write on a failing writer = %d, %v; want 0 and the error", n, err)
	}
}

// FuzzEscape: whatever comes in, Escape does not panic, its output is
// UTF-8 holding no control character but newline and tab (nor DEL, C1 or
// a bidi control), it is idempotent, and safe text passes unchanged.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "a\tb\nc", "\x1b]52;c;aGk=\x07", "\x1b[2J", "\r\b\x7f",
		"\u009b\u0085", "\u202e\u2066", "\xff\xfe", "\xe2\x80", `\x1b`, "日本\u200d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if Unsafe(r) || (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) {
				t.Fatalf("Escape(%q) = %q holds %U", s, out, r)
			}
		}
		if again := Escape(out); again != out {
			t.Fatalf("Escape is not idempotent: %q → %q → %q", s, out, again)
		}
		if firstUnsafe(s) < 0 && out != s {
			t.Fatalf("safe text changed: %q → %q", s, out)
		}
	})
}
