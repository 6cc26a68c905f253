package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestScanRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       requestFields
		err        error
		errField   string
	}{
		{"first", `{"model":"claude-opus-4-8","messages":[]}`, requestFields{Model: "claude-opus-4-8"}, nil, ""},
		{"last, after nested decoys", `{"metadata":{"model":"x"},"messages":[{"model":"y","content":"\"model\":\"z\""}],"model":"gpt-5.5"}`, requestFields{Model: "gpt-5.5"}, nil, ""},
		{"white space", " \r\n\t{ \"model\" :\t\"o3\" } \n", requestFields{Model: "o3"}, nil, ""},
		{"escaped key", `{"mod\u0065l":"o3"}`, requestFields{Model: "o3"}, nil, ""},
		{"escaped value", `{"model":"o\u0033-\ud83d\ude00\n"}`, requestFields{Model: "o3-😀\n"}, nil, ""},
		{"lone surrogate", `{"model":"\ud800x"}`, requestFields{Model: "\uFFFDx"}, nil, ""},
		{"invalid UTF-8", "{\"model\":\"a\xffb\"}", requestFields{Model: "a\uFFFDb"}, nil, ""},
		{"speed and tier", `{"model":"m","speed":"fast","service_tier":"priority"}`, requestFields{Model: "m", Speed: "fast", ServiceTier: "priority"}, nil, ""},
		{"null options", `{"model":"m","speed":null,"service_tier":null}`, requestFields{Model: "m"}, nil, ""},
		{"empty object", `{}`, requestFields{}, errNoModel, ""},
		{"no model", `{"Models":"x","modelo":"y"}`, requestFields{}, errNoModel, ""},
		{"model twice", `{"model":"a","model":"b"}`, requestFields{}, errAmbiguous, "model"},
		{"Model", `{"Model":"a"}`, requestFields{}, errAmbiguous, "model"},
		{"MODEL and model", `{"model":"a","MODEL":"b"}`, requestFields{}, errAmbiguous, "model"},
		{"escaped twice", `{"model":"a","\u006dodel":"b"}`, requestFields{}, errAmbiguous, "model"},
		{"long s", `{"model":"a","ſpeed":"fast"}`, requestFields{}, errAmbiguous, "speed"},
		{"Kelvin is not model", `{"model":"a","Kmodel":1}`, requestFields{Model: "a"}, nil, ""},
		{"model number", `{"model":5}`, requestFields{}, errFieldNotStr, "model"},
		{"model null", `{"model":null}`, requestFields{}, errFieldNotStr, "model"},
		{"speed object", `{"model":"m","speed":{}}`, requestFields{}, errFieldNotStr, "speed"},
		{"array", `[{"model":"m"}]`, requestFields{}, errNotObject, ""},
		{"string", `"model"`, requestFields{}, errNotObject, ""},
		{"empty", ``, requestFields{}, errNotJSON, ""},
		{"truncated", `{"model":"m"`, requestFields{}, errNotJSON, ""},
		{"trailing", `{"model":"m"}x`, requestFields{}, errNotJSON, ""},
		{"two objects", `{"model":"m"}{"model":"n"}`, requestFields{}, errNotJSON, ""},
		{"trailing comma", `{"model":"m",}`, requestFields{}, errNotJSON, ""},
		{"single quotes", `{'model':'m'}`, requestFields{}, errNotJSON, ""},
		{"bad escape", `{"model":"\x"}`, requestFields{}, errNotJSON, ""},
		{"control char", "{\"model\":\"a\tb\"}", requestFields{}, errNotJSON, ""},
		{"leading zero", `{"model":"m","n":01}`, requestFields{}, errNotJSON, ""},
		{"bare dot", `{"model":"m","n":1.}`, requestFields{}, errNotJSON, ""},
		{"NaN", `{"model":"m","n":NaN}`, requestFields{}, errNotJSON, ""},
		{"BOM", "\ufeff{\"model\":\"m\"}", requestFields{}, errNotJSON, ""},
		{"comment", `{"model":"m"/*x*/}`, requestFields{}, errNotJSON, ""},
		{"numbers", `{"a":-0,"b":1e5,"c":-1.25E-3,"d":[true,false,null,{},[]],"model":"m"}`, requestFields{Model: "m"}, nil, ""},
	}
	for _, tt := range tests {
		got, err := scanRequest([]byte(tt.body))
		if !errors.Is(err, tt.err) || err == nil && tt.err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tt.name, got, err, tt.want, tt.err)
			continue
		}
		if tt.errField != "" && !strings.Contains(err.Error(), `"`+tt.errField+`"`) {
			t.Errorf("%s: error %q does not name %q", tt.name, err, tt.errField)
		}
		// The verdict on validity agrees with encoding/json.
		if (errors.Is(err, errNotJSON)) == json.Valid([]byte(tt.body)) {
			t.Errorf("%s: json.Valid says %v, scanRequest %v", tt.name, json.Valid([]byte(tt.body)), err)
		}
	}
}

// The nesting limit is encoding/json's, to the level.
func TestScanRequestDepth(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		// The top-level object is one level; the value nests depth-1 more.
		n := depth - 1
		for _, open := range []string{"[", `{"a":`} {
			closer := "]"
			if open != "[" {
				closer = "}"
			}
			body := []byte(`{"model":"m","x":` + strings.Repeat(open, n) + "1" + strings.Repeat(closer, n) + "}")
			_, err := scanRequest(body)
			if valid := json.Valid(body); valid != (err == nil) || valid != (depth <= maxDepth) {
				t.Errorf("depth %d with %q: json.Valid %v, scanRequest %v", depth, open, valid, err)
			}
		}
		// A top-level array of that depth (not an object, but valid or not).
		body := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		_, err := scanRequest(body)
		if json.Valid(body) != errors.Is(err, errNotObject) {
			t.Errorf("array depth %d: json.Valid %v, scanRequest %v", depth, json.Valid(body), err)
		}
	}
}

func TestScanRequestAllocations(t *testing.T) {
	body := []byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"hello \u00e9"}]}],"mod\u0065l":"claude-opus-4-8","max_tokens":1000,"stream":true}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = scanRequest(body) }); n > 2 {
		t.Errorf("%v allocations per scan, want at most 2 (the model string)", n)
	}
}

// oracle decides what scanRequest must return, with encoding/json, and
// which field the error must name.
func oracle(b []byte) (requestFields, string, error) {
	if !json.Valid(b) {
		return requestFields{}, "", errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '{' {
		return requestFields{}, "", errNotObject
	}
	var raw [len(watched)]json.RawMessage
	var seen [len(watched)]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			panic(err)
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		for k, name := range watched {
			if strings.EqualFold(key, name) {
				if key != name || seen[k] {
					return requestFields{}, name, errAmbiguous
				}
				seen[k], raw[k] = true, v
			}
		}
	}
	var f requestFields
	if seen[0] && (json.Unmarshal(raw[0], &f.Model) != nil || string(raw[0]) == "null") {
		return requestFields{}, "model", errFieldNotStr
	}
	for k, dst := range []*string{1: &f.Speed, 2: &f.ServiceTier} {
		if k == 0 || raw[k] == nil || string(raw[k]) == "null" {
			continue
		}
		if json.Unmarshal(raw[k], dst) != nil {
			return requestFields{}, watched[k], errFieldNotStr
		}
	}
	if !seen[0] {
		// The other fields are still read (a route whose model is in its
		// path takes a body without one).
		return f, "", errNoModel
	}
	return f, "", nil
}

// FuzzModelField: no panic on any body, memory bounded by the body's size,
// and exactly encoding/json's reading: the same validity verdict, the same
// strings (escapes, surrogates and invalid UTF-8 decoded alike), and a
// refusal wherever encoding/json's case-insensitive or last-wins key
// matching could read another value than an exact, single key.
func FuzzModelField(f *testing.F) {
	for _, s := range []string{
		`{"model":"claude-opus-4-8","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`{"input":[{"type":"message"}],"model":"gpt-5.5"}`,
		`{"model":"a","Model":"b"}`,
		`{"mod\u0065l":"\ud83d\ude00"}`,
		`{"model":"m","speed":"fast"}`,
	} {
		f.Add([]byte(s))
	}
	var before, after runtime.MemStats
	f.Fuzz(func(t *testing.T, b []byte) {
		// Measuring stops the world: on one body in four (by length).
		measure := len(b)%4 == 0
		if measure {
			runtime.ReadMemStats(&before)
		}
		got, err := scanRequest(b)
		if measure {
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(16*len(b))+64<<10 {
				t.Fatalf("allocated %d bytes for a %d-byte body", alloc, len(b))
			}
		}
		model, merr := modelField(b)
		if model != got.Model || (merr == nil) != (err == nil) {
			t.Fatalf("modelField %q %v, scanRequest %+v %v", model, merr, got, err)
		}
		want, field, werr := oracle(b)
		if !errors.Is(err, werr) || (err == nil) != (werr == nil) || got != want {
			t.Fatalf("body %q:\n got %+v, %v\nwant %+v, %v", b, got, err, want, werr)
		}
		if field != "" && !strings.Contains(err.Error(), `"`+field+`"`) {
			t.Fatalf("body %q: error %v, want it to name %q", b, err, field)
		}
	})
}

func BenchmarkScanRequest(b *testing.B) {
	body := []byte(`{"model":"claude-opus-4-8","max_tokens":32000,"stream":true,"system":[{"type":"text","text":"` +
		strings.Repeat("You are Claude Code. ", 2000) + `"}],"messages":[{"role":"user","content":"hello"}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scanRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}
