// Package termtext makes text from elsewhere (an agent, a prompt, a tool,
// the store, a server's error) safe to print on a terminal: control
// characters that a terminal would act on are shown escaped instead, so
// that an agent cannot write to the operator's clipboard (OSC 52), set the
// window title, clear the screen, move the cursor or reorder what a
// permission question says.
//
// What is escaped, and how it shows (newline and tab pass as they are):
//
//	C0 controls U+0000–U+001F (ESC, CR, BEL, BS…)   \x1b, \x0d, \x07, \x08
//	DEL U+007F                                      \u007f
//	C1 controls U+0080–U+009F (CSI, OSC, NEL…)      \u009b, \u009d, \u0085
//	bidi embeddings and overrides U+202A–U+202E     \u202e
//	bidi isolates U+2066–U+2069                     \u2066
//	bytes that are not UTF-8                        \xff
//
// DEL, C1 and bidi characters are written as JSON \u escapes, and
// encoding/json never writes a raw C0 control or a byte that is not UTF-8,
// so JSON that passes through Escape stays valid and means the same. A
// backslash in the input is left alone: text can look like an escape, but
// never act as a control.
package termtext

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether r is escaped by Escape.
func Unsafe(r rune) bool {
	switch {
	case r == '\n', r == '\t':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Escape returns s with every Unsafe character and every byte that is not
// UTF-8 escaped (see the package comment). Text without any is returned as
// it is.
func Escape(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 && Unsafe(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case Unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// firstUnsafe is the index of the first byte Escape changes, or -1.
func firstUnsafe(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf { // ASCII: the fast path
			if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || Unsafe(r) {
			return i
		}
		i += n
	}
	return -1
}

// Writer escapes everything written through it (Escape) before passing it
// on. Each Write is escaped on its own, so a UTF-8 sequence split across
// two Writes shows as escaped bytes; fmt, text/tabwriter and encoding/json
// write whole values, so this does not arise with them.
type Writer struct {
	w io.Writer
}

// NewWriter returns a Writer on w; w itself if it already is one.
func NewWriter(w io.Writer) *Writer {
	if tw, ok := w.(*Writer); ok {
		return tw
	}
	return &Writer{w: w}
}

// Write escapes p and writes it to the underlying writer. It reports
// len(p) when all of the escaped text was written.
func (t *Writer) Write(p []byte) (int, error) {
	s := string(p)
	if _, err := io.WriteString(t.w, Escape(s)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap returns the underlying writer: for the caller's own control
// sequences (a spinner), and to ask whether it is a terminal.
func (t *Writer) Unwrap() io.Writer { return t.w }
