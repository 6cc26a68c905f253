package postgres

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/agentbroker/agentbroker/store"
)

// FuzzSearchWords: whatever the text, the words sent to phraseto_tsquery
// are at most store.MaxSearchWords, each valid UTF-8 of letters, digits and
// spaces only, with at least one letter or digit; a query without any is
// ErrInvalid, and so is one over store.MaxQueryLen.
func FuzzSearchWords(f *testing.F) {
	for _, s := range []string{"", "migrations", "foo-bar baz", `"alpha`, "NEAR(a b, 2)", "col:val", "日本語 🚀", "a\x00b", "\xff\xfe",
		strings.Repeat("alpha ", 100), "Ünïcödé", "%_", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		words, err := searchWords(q)
		if len(q) > store.MaxQueryLen {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("a %d-byte query: %v; want ErrInvalid", len(q), err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) || len(words) != 0 {
				t.Fatalf("searchWords(%q) = %q, %v", q, words, err)
			}
			if strings.ContainsFunc(strings.ToValidUTF8(q, " "), isWordRune) {
				t.Fatalf("searchWords(%q) refused a query with a word", q)
			}
			return
		}
		if len(words) == 0 || len(words) > store.MaxSearchWords {
			t.Fatalf("searchWords(%q) = %d words", q, len(words))
		}
		for _, w := range words {
			if !utf8.ValidString(w) || !strings.ContainsFunc(w, isWordRune) {
				t.Fatalf("searchWords(%q): word %q", q, w)
			}
			if strings.ContainsFunc(w, func(r rune) bool { return r != ' ' && !isWordRune(r) }) {
				t.Fatalf("searchWords(%q): word %q holds punctuation or controls", q, w)
			}
			if strings.ContainsFunc(w, unicode.IsControl) {
				t.Fatalf("searchWords(%q): word %q holds a control", q, w)
			}
		}
	})
}

func TestSearchWords(t *testing.T) {
	for q, want := range map[string]string{
		"foo-bar baz":           "foo bar|baz",
		`NEAR(a b, 2)`:          "NEAR a|b |2 ",
		"Migrations MIGRATIONS": "Migrations",
		"🚀 alpha":               "alpha",
	} {
		got, err := searchWords(q)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("searchWords(%q) = %q, %v; want %q", q, got, err, want)
		}
	}
}
