package postgres

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/agentbroker/agentbroker/store"
)

// Full-text search on PostgreSQL, made to answer as the SQLite store's
// FTS5 does (store.go's rules):
//
//   - Documents are indexed with the "agentbroker" text search
//     configuration (migrations/0001_schema.sql): English Snowball stems
//     without stop words, accents and case folded, hyphenated words as
//     their parts.
//   - A query is split into words at white space and control characters;
//     words without a letter or digit are dropped, and so are repeats (case
//     folded); the first store.MaxSearchWords are kept. Each word becomes a
//     phrase of its parts: its other characters are turned into spaces and
//     the rest goes to phraseto_tsquery, as a parameter (nothing the user
//     types reaches a query language). The phrases are ANDed.
//   - Hits are ranked by ts_rank with length normalisation (rank divided by
//     1 + the log of the document's length), the fields weighed as the
//     SQLite store weighs them in bm25 (A 1.0, B 0.5, C 0.25): title over
//     description over notes, a nearer cousin of BM25 than the raw count.
//   - The snippet is ts_headline of the first field that matches any word
//     of the query, about a dozen words, matches «marked», "…" where text
//     was cut.

const (
	snippetOpen  = "«"
	snippetClose = "»"
	snippetEllip = "…"
)

// headlineOptions asks ts_headline for about a dozen words around the
// best match, every word counted (ShortWord=0).
const headlineOptions = `StartSel=«, StopSel=», MaxWords=12, MinWords=4, ShortWord=0, MaxFragments=1, FragmentDelimiter=" … "`

// weights are ts_rank's for D, C, B and A.
const weights = `'{0.1, 0.25, 0.5, 1.0}'`

// searchWords turns plain text into the phrases to search for.
func searchWords(q string) ([]string, error) {
	if len(q) > store.MaxQueryLen {
		return nil, fmt.Errorf("search query is %d bytes, over the limit of %d: %w", len(q), store.MaxQueryLen, store.ErrInvalid)
	}
	q = strings.ToValidUTF8(q, " ")
	words := strings.FieldsFunc(q, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
	var (
		out  []string
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
		out = append(out, strings.Map(func(r rune) rune {
			if isWordRune(r) {
				return r
			}
			return ' '
		}, w))
		if len(out) == store.MaxSearchWords {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty search: the query has no words: %w", store.ErrInvalid)
	}
	return out, nil
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r)
}

// tsQueries is the SQL of the query (every phrase) and of any of its
// phrases, the words being parameters first..first+n-1.
func tsQueries(first, n int) (all, anyOf string) {
	var a, o strings.Builder
	for i := range n {
		if i > 0 {
			a.WriteString(" && ")
			o.WriteString(" || ")
		}
		p := fmt.Sprintf("phraseto_tsquery('agentbroker', $%d)", first+i)
		a.WriteString(p)
		o.WriteString(p)
	}
	return "(" + a.String() + ")", "(" + o.String() + ")"
}

// args returns the leading arguments then the words.
func searchArgs(lead []any, words []string) []any {
	out := append([]any{}, lead...)
	for _, w := range words {
		out = append(out, w)
	}
	return out
}

// finishSnippet marks the cuts ts_headline made in field.
func finishSnippet(h, field string) string {
	plain := strings.NewReplacer(snippetOpen, "", snippetClose, "").Replace(h)
	plain = strings.TrimSpace(plain)
	if plain == "" {
		return h
	}
	out := h
	if !strings.HasPrefix(strings.TrimSpace(field), plain) && !strings.HasPrefix(plain, strings.TrimSpace(field)) {
		if i := strings.Index(field, plain); i != 0 {
			out = snippetEllip + out
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(field), plain) {
		out += snippetEllip
	}
	return out
}
