package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit (the top-level object counts
// as 1), so that scanRequest accepts exactly the bodies json.Valid does.
const maxDepth = 10000

// Errors of scanRequest. The proxy refuses the request with 400 and the
// error's text.
var (
	errNotJSON     = errors.New("the request body is not valid JSON")
	errNotObject   = errors.New("the request body is not a JSON object")
	errNoModel     = errors.New("the request has no model field")
	errAmbiguous   = errors.New("the request names a field twice") // in a *fieldError
	errFieldNotStr = errors.New("the field is not a string")       // in a *fieldError
)

// fieldError is a problem with one watched field.
type fieldError struct {
	err   error
	field string
}

func (e *fieldError) Error() string {
	if e.err == errAmbiguous {
		return fmt.Sprintf("%v: %q (in another spelling or twice)", e.err, e.field)
	}
	return fmt.Sprintf("%v: %q", e.err, e.field)
}

func (e *fieldError) Unwrap() error { return e.err }

// requestFields are the top-level fields of a request body the proxy
// decides on. Everything else is skipped (validated, never decoded).
type requestFields struct {
	// Model is the "model" field.
	Model string
	// Speed is Anthropic's "speed" field, ServiceTier the "service_tier"
	// field of both APIs; empty when absent or null. They change the price.
	Speed       string
	ServiceTier string
}

// watched are the fields scanRequest reads, by index.
var watched = [...]string{"model", "speed", "service_tier"}

// maxRawKey is the longest raw key (quotes included) that can decode to a
// watched name under case folding: 12 runes, each at most a 12-byte
// surrogate-pair escape. Longer keys are not decoded.
const maxRawKey = 2 + 12*12

// scanRequest reads the top-level fields the proxy needs from a request
// body in one pass over the bytes, without decoding anything else: the
// body must be exactly what json.Valid accepts (so that the proxy and the
// upstream cannot read different things from it), a JSON object, with a
// string "model". A key spelled differently from a watched one but equal
// under case folding ("Model"; escapes are decoded first, so "mod\u0065l"
// is "model"), or a watched key given twice, is refused as ambiguous: some
// parsers take the first, some the last, some fold case, and the proxy
// must decide on the value the upstream will use.
//
// Memory: the decoded field values and nothing else; keys are decoded
// into a fixed buffer and the nesting stack is a fixed bitset.
func scanRequest(b []byte) (requestFields, error) {
	var f requestFields
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		if s.value(0) && s.end() {
			return f, errNotObject
		}
		return f, errNotJSON
	}
	s.i++
	var raw [len(watched)][]byte
	var seen [len(watched)]bool
	var keyBuf [3 * maxRawKey]byte
	ambiguous := -1
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
	} else {
		for {
			s.ws()
			kraw, complex, ok := s.str()
			if !ok {
				return f, errNotJSON
			}
			s.ws()
			if s.i >= len(b) || b[s.i] != ':' {
				return f, errNotJSON
			}
			s.i++
			s.ws()
			vstart := s.i
			if !s.value(1) {
				return f, errNotJSON
			}
			if ambiguous < 0 && len(kraw) <= maxRawKey {
				key := kraw[1 : len(kraw)-1]
				if complex {
					key = appendUnquoted(keyBuf[:0], kraw)
				}
				for k, name := range watched {
					if !bytes.EqualFold(key, []byte(name)) {
						continue
					}
					if string(key) != name || seen[k] {
						ambiguous = k
					}
					seen[k] = true
					raw[k] = b[vstart:s.i]
				}
			}
			s.ws()
			if s.i >= len(b) {
				return f, errNotJSON
			}
			if b[s.i] == ',' {
				s.i++
				continue
			}
			if b[s.i] == '}' {
				s.i++
				break
			}
			return f, errNotJSON
		}
	}
	if !s.end() {
		return f, errNotJSON
	}
	if ambiguous >= 0 {
		return f, &fieldError{errAmbiguous, watched[ambiguous]}
	}
	var ok bool
	if seen[0] {
		if f.Model, ok = stringValue(raw[0], false); !ok {
			return requestFields{}, &fieldError{errFieldNotStr, "model"}
		}
	}
	if f.Speed, ok = stringValue(raw[1], true); !ok {
		return requestFields{}, &fieldError{errFieldNotStr, "speed"}
	}
	if f.ServiceTier, ok = stringValue(raw[2], true); !ok {
		return requestFields{}, &fieldError{errFieldNotStr, "service_tier"}
	}
	if !seen[0] {
		// The other fields are read: a route whose model is in its path
		// (route.action) takes a body without one.
		return f, errNoModel
	}
	return f, nil
}

// modelField is the model a request body names (scanRequest's Model).
func modelField(b []byte) (string, error) {
	f, err := scanRequest(b)
	return f.Model, err
}

// stringValue decodes a JSON string value (validated by the scanner); raw
// nil (absent) is "". A null is "" when nullOK. Anything else is not ok.
func stringValue(raw []byte, nullOK bool) (string, bool) {
	if raw == nil || nullOK && string(raw) == "null" {
		return "", true
	}
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	return string(appendUnquoted(make([]byte, 0, len(raw)), raw)), true
}

// appendUnquoted appends the text of a JSON string (raw, quotes included,
// already validated) to dst, exactly as encoding/json decodes it: escapes
// resolved, a lone or broken surrogate and each byte of invalid UTF-8
// replaced by U+FFFD.
func appendUnquoted(dst, raw []byte) []byte {
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch e := s[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if d := utf16.DecodeRune(r, hex4(s[i+2:])); d != utf8.RuneError {
							dst = utf8.AppendRune(dst, d)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // " \\ /
				dst = append(dst, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// hex4 decodes four hex digits (validated by the scanner).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// scanner validates JSON text as encoding/json's scanner does.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// end skips trailing white space and reports whether nothing else follows.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// str scans a string at s.i. It returns its raw bytes (quotes included)
// and whether it holds escapes or non-ASCII bytes.
func (s *scanner) str() (raw []byte, complex, ok bool) {
	start := s.i
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, false
	}
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start:s.i], complex, true
		case c == '\\':
			complex = true
			s.i++
			if s.i >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if s.i >= len(s.b) || !isHex(s.b[s.i]) {
						return nil, false, false
					}
					s.i++
				}
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			if c >= utf8.RuneSelf {
				complex = true
			}
			s.i++
		}
	}
	return nil, false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && isDigit(s.b[s.i]) {
		s.i++
	}
	return s.i > start
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// member scans `"key" :` inside an object, white space around.
func (s *scanner) member() bool {
	s.ws()
	if _, _, ok := s.str(); !ok {
		return false
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return false
	}
	s.i++
	return true
}

// value scans one JSON value at s.i (after white space), nested depth
// containers deep, without recursion: the open containers are a bitset
// (1 for an object, 0 for an array).
func (s *scanner) value(depth int) bool {
	var stack [maxDepth/64 + 1]uint64
	n := 0 // open containers
	for {
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch c := s.b[s.i]; c {
		case '{', '[':
			if depth+n+1 > maxDepth {
				return false
			}
			s.i++
			s.ws()
			closer := byte(']')
			if c == '{' {
				closer = '}'
			}
			if s.i < len(s.b) && s.b[s.i] == closer {
				s.i++ // empty: a complete value
				break
			}
			if c == '{' {
				stack[n/64] |= 1 << (n % 64)
			} else {
				stack[n/64] &^= 1 << (n % 64)
			}
			n++
			if c == '{' && !s.member() {
				return false
			}
			continue // the first element
		case '"':
			if _, _, ok := s.str(); !ok {
				return false
			}
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			if !s.number() {
				return false
			}
		}
		// A value ended: close containers until one takes another element.
		for {
			if n == 0 {
				return true
			}
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			object := stack[(n-1)/64]&(1<<((n-1)%64)) != 0
			c := s.b[s.i]
			if c == ',' {
				s.i++
				if object && !s.member() {
					return false
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				s.i++
				n--
				continue
			}
			return false
		}
	}
}
