package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"unicode/utf16"
	"unicode/utf8"
)

// CheckJSONText reports text that encoding/json would decode without
// complaint but not as sent: bytes that are not UTF-8, and \u escapes of
// lone UTF-16 surrogates (both become U+FFFD). A request carrying them is
// refused rather than stored altered.
func CheckJSONText(b []byte) error {
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("the body is not valid UTF-8 (at byte %d)", i)
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		i++ // the escaped character: \\ and \" are skipped whole
		if b[i] != 'u' {
			continue
		}
		r, ok := hex4(b[i+1:])
		if !ok {
			continue // not JSON: the decoder says so
		}
		i += 4
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00: // high: a low one must follow
			if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
				if lo, ok := hex4(b[i+3:]); ok && lo >= 0xdc00 && lo <= 0xdfff {
					i += 6
					continue
				}
			}
			return fmt.Errorf("the body has a lone UTF-16 surrogate \\u%04x", r)
		case utf16.IsSurrogate(r):
			return fmt.Errorf("the body has a lone UTF-16 surrogate \\u%04x", r)
		}
	}
	return nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// DecodeJSON reads a request body of at most max bytes and decodes it into
// v strictly: one JSON value, no unknown fields, no trailing data, text
// as sent (CheckJSONText). It answers the client itself when it returns
// false: 413 over the limit, 400 otherwise, both in the WriteError shape.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			WriteError(w, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("body larger than %d bytes", max))
			return false
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			WriteError(w, http.StatusRequestTimeout, "request_timeout", "the body did not arrive in time")
			return false
		}
		WriteError(w, http.StatusBadRequest, "invalid_request", "cannot read the body: "+err.Error())
		return false
	}
	if err := CheckJSONText(body); err != nil {
		WriteError(w, http.StatusBadRequest, "invalid_request", "bad JSON body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, "invalid_request", "bad JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		WriteError(w, http.StatusBadRequest, "invalid_request", "bad JSON body: trailing data after the object")
		return false
	}
	return true
}
