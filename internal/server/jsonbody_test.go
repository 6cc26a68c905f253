package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckJSONText(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		`{"a":"héllo 😀"}`:               true,
		`{"a":"\ud83d\ude00"}`:          true, // a pair
		`{"a":"\\ud800"}`:               true, // an escaped backslash, then text
		`{"a":"\\\ud800"}`:              false,
		`{"a":"\ud800"}`:                false,
		`{"a":"\ud800x"}`:               false,
		`{"a":"\ud800\u0041"}`:          false,
		`{"a":"\udc00"}`:                false,
		`{"a":"\ude00\ud83d"}`:          false,
		`{"a":"\u00e9\u20ac"}`:          true,
		"{\"a\":\"\xff\"}":              false,
		"{\"a\":\"\xc3\x28\"}":          false,
		"{\"a\":\"\xed\xa0\x80\"}":      false, // a surrogate in UTF-8
		`{"a":"\u12"}`:                  true,  // not JSON: the decoder says so
		`{"a":"\uD83D\uDE00 and more"}`: true,
	} {
		if err := CheckJSONText([]byte(in)); (err == nil) != ok {
			t.Errorf("CheckJSONText(%q) = %v; want ok %v", in, err, ok)
		}
	}
}

func TestDecodeJSONLimit(t *testing.T) {
	t.Parallel()
	const max = 64
	obj := `{"a":"x"}`
	for _, tc := range []struct {
		body string
		code int
	}{
		{obj + strings.Repeat(" ", max-len(obj)), 200},    // at the limit, padded after
		{obj + strings.Repeat(" ", max-len(obj)+1), 413},  // one over, in the padding
		{`{"a":"` + strings.Repeat("x", max) + `"}`, 413}, // over, inside the object
		{obj + " {}", 400},        // trailing data
		{`{"b":1}`, 400},          // unknown field
		{"{\"a\":\"\xff\"}", 400}, // not UTF-8
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		var v struct{ A string }
		ok := DecodeJSON(rec, req, max, &v)
		code := rec.Code
		if ok {
			code = 200
		}
		if code != tc.code || (!ok && !strings.Contains(rec.Body.String(), `"error_description"`)) {
			t.Errorf("DecodeJSON(%d bytes %.20q…) = %d %s; want %d", len(tc.body), tc.body, code, rec.Body, tc.code)
		}
		if code == http.StatusRequestEntityTooLarge && !strings.Contains(rec.Body.String(), "larger than 64 bytes") {
			t.Errorf("413 without the limit: %s", rec.Body)
		}
	}
}
