package sqlite

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/agentbroker/agentbroker/store"
)

// Snippet markers and size, for FTS5's snippet(): matched words «like
// this», cut text "…", about a dozen tokens.
const (
	snippetOpen   = "«"
	snippetClose  = "»"
	snippetEllip  = "…"
	snippetTokens = 12
)

// snippetSQL is the snippet() call for an FTS5 table, choosing the column
// with the best match (-1).
func snippetSQL(table string) string {
	return fmt.Sprintf(`snippet(%s, -1, '%s', '%s', '%s', %d)`, table, snippetOpen, snippetClose, snippetEllip, snippetTokens)
}

// ftsQuery turns plain text from a person or a model into an FTS5 MATCH
// expression that cannot be anything but a conjunction of phrases.
//
// The text is split at white space and control characters into words.
// Each word holding at least one letter or digit becomes one FTS5 string
// ("…", inner quotes doubled), which FTS5 tokenizes like the documents:
// "foo-bar" is the phrase foo bar, "migrations" stems to migrat. Words of
// only punctuation or symbols are dropped, as are repeats (case-folded);
// strings are joined by spaces, FTS5's implicit AND. Nothing the user
// types can reach FTS5 unquoted, so NEAR, OR, NOT, *, ^, :, ( and column
// filters have no meaning. Only the first store.MaxSearchWords distinct
// words are kept. A query with no words is store.ErrInvalid.
func ftsQuery(q string) (string, error) {
	if len(q) > store.MaxQueryLen {
		return "", fmt.Errorf("search query is %d bytes, over the limit of %d: %w", len(q), store.MaxQueryLen, store.ErrInvalid)
	}
	// Invalid UTF-8 and control characters (NUL ends an FTS5 string
	// early) become separators.
	q = strings.ToValidUTF8(q, " ")
	words := strings.FieldsFunc(q, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
	var (
		b    strings.Builder
		seen = make(map[string]bool)
	)
	for _, w := range words {
		if !strings.ContainsFunc(w, isWordRune) {
			continue
		}
		key := strings.ToLower(w)
		if seen[key] {
			continue
		}
		seen[key] = true
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(w, `"`, `""`))
		b.WriteByte('"')
		if len(seen) == store.MaxSearchWords {
			break
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("empty search: the query has no words: %w", store.ErrInvalid)
	}
	return b.String(), nil
}

// isWordRune reports the characters FTS5's unicode61 tokenizer keeps in
// tokens by default: letters, numbers, private use. (A word of characters
// Go calls letters but the tokenizer does not know is an empty phrase,
// which FTS5 ignores in a conjunction.)
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r)
}
