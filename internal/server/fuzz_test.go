package server

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// surrogateEscape finds a \u escape of a UTF-16 surrogate preceded by an
// odd number of backslashes (an escape, not an escaped backslash).
var surrogateEscape = regexp.MustCompile(`(^|[^\\])(\\\\)*\\u[dD][89a-fA-F][0-9a-fA-F]{2}`)

// FuzzCheckJSONText: every request body the broker decodes passes
// CheckJSONText first. It never panics; it refuses exactly the bodies
// that are not UTF-8 or hold a surrogate escape, and of a body it passes,
// encoding/json decodes every string without inventing U+FFFD: what is
// stored is what was sent.
func FuzzCheckJSONText(f *testing.F) {
	for _, s := range []string{
		`{"a":"b"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"a":"\\ud800"}`, `{"a":"\\\ud800"}`,
		"{\"a\":\"\xff\"}", `{"a":"\ufffd"}`, "{\"a\":\"\xef\xbf\xbd\"}", `["\udbff\udfff","\udc00"]`, `"\u"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckJSONText(b)
		if err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
		if !utf8.Valid(b) {
			if err == nil {
				t.Fatalf("passed invalid UTF-8 %q", b)
			}
			return
		}
		if err != nil && !surrogateEscape.Match(b) {
			t.Fatalf("refused %q (%v) without a surrogate escape in it", b, err)
		}
		if !json.Valid(b) {
			return // the decoder refuses it anyway
		}
		// Every string of the document, keys included, as decoded.
		var decoded strings.Builder
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			tok, terr := dec.Token()
			if terr != nil {
				break
			}
			if s, ok := tok.(string); ok {
				decoded.WriteString(s)
			}
		}
		sent := replacementsSent(b)
		invented := strings.Count(decoded.String(), "\ufffd") > sent
		switch {
		case err == nil && invented:
			t.Fatalf("passed %q, which decodes with an invented U+FFFD", b)
		case err != nil && !invented:
			t.Fatalf("refused %q (%v), which decodes as sent", b, err)
		}
	})
}

// replacementsSent counts the U+FFFD a body expresses: as UTF-8, or as a
// \ufffd escape (not an escaped backslash followed by "ufffd").
func replacementsSent(b []byte) int {
	n := bytes.Count(b, []byte("\ufffd"))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		i++
		if b[i] == 'u' && i+4 < len(b) && strings.EqualFold(string(b[i+1:i+5]), "fffd") {
			n++
		}
	}
	return n
}
