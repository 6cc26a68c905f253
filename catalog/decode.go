package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// decode parses a catalog file strictly: size limit, JSON syntax, one object
// and nothing after it, no unknown or duplicate field, every value of the
// right JSON type. It reports every unknown field and type mismatch it finds
// (a syntax error ends the walk, as nothing after it can be trusted), then
// decodes with encoding/json's DisallowUnknownFields as the final word.
func decode(data []byte, source string) (*file, []Problem) {
	fail := func(field, format string, args ...any) []Problem {
		return []Problem{{Source: source, Field: field, Message: fmt.Sprintf(format, args...)}}
	}
	if len(data) > MaxFileSize {
		return nil, fail("", "the file is %d bytes; the limit is %d (4 MiB)", len(data), MaxFileSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fail("", `the file is empty; an override with nothing to change is {}`)
	}
	w := &walker{dec: json.NewDecoder(bytes.NewReader(data)), data: data, source: source}
	w.dec.UseNumber()
	if w.value(reflect.TypeFor[file](), "") {
		if _, err := w.dec.Token(); err != io.EOF {
			w.add("", "unexpected data after the catalog object at %s", w.position(w.dec.InputOffset()))
		}
	}
	if len(w.problems) > 0 {
		return nil, w.problems
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fail("", "%v", err)
	}
	if f.SchemaVersion != 0 && f.SchemaVersion != SchemaVersion {
		return nil, fail("schema_version", "is %d; this agentbroker reads version %d", f.SchemaVersion, SchemaVersion)
	}
	return &f, nil
}

// walker checks a JSON document against a Go type through the token stream,
// collecting problems instead of stopping at the first.
type walker struct {
	dec      *json.Decoder
	data     []byte
	source   string
	problems []Problem
}

func (w *walker) add(field, format string, args ...any) {
	w.problems = append(w.problems, Problem{Source: w.source, Field: field, Message: fmt.Sprintf(format, args...)})
}

// position renders a byte offset as line:column for people.
func (w *walker) position(offset int64) string {
	if offset > int64(len(w.data)) {
		offset = int64(len(w.data))
	}
	before := w.data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// syntax records a token error; it returns false so callers stop walking.
func (w *walker) syntax(err error) bool {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		w.add("", "invalid JSON at %s: %v", w.position(se.Offset), se)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		w.add("", "invalid JSON: unexpected end of input")
	default:
		w.add("", "invalid JSON at %s: %v", w.position(w.dec.InputOffset()), err)
	}
	return false
}

// value reads one JSON value and checks it against t. It returns false
// after a syntax error.
func (w *walker) value(t reflect.Type, path string) bool {
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err)
	}
	name := path
	if name == "" {
		name = "the catalog"
	}
	if tok == nil {
		if t.Kind() == reflect.Slice {
			return true
		}
		w.add(path, "null is not allowed here; omit the field instead")
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			w.add(path, "%s must be a JSON object, not %s", name, describe(tok))
			return w.skip(tok)
		}
		fields := jsonFields(t)
		seen := make(map[string]bool)
		for w.dec.More() {
			kt, err := w.dec.Token()
			if err != nil {
				return w.syntax(err)
			}
			key, _ := kt.(string)
			sub := join(path, key)
			if seen[key] {
				w.add(sub, "field appears twice")
			}
			seen[key] = true
			ft, ok := fields[key]
			if !ok {
				w.add(sub, "unknown field %q (known: %s)", key, strings.Join(sortedKeys(fields), ", "))
				tok, err := w.dec.Token()
				if err != nil {
					return w.syntax(err)
				}
				if !w.skip(tok) {
					return false
				}
				continue
			}
			if !w.value(ft, sub) {
				return false
			}
		}
		if _, err := w.dec.Token(); err != nil { // '}'
			return w.syntax(err)
		}
		return true
	case reflect.Slice:
		if tok != json.Delim('[') {
			w.add(path, "%s must be a JSON array, not %s", name, describe(tok))
			return w.skip(tok)
		}
		for i := 0; w.dec.More(); i++ {
			if !w.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i)) {
				return false
			}
		}
		if _, err := w.dec.Token(); err != nil { // ']'
			return w.syntax(err)
		}
		return true
	case reflect.String:
		if _, ok := tok.(string); !ok {
			w.add(path, "must be a string, not %s", describe(tok))
			return w.skip(tok)
		}
		return true
	case reflect.Int, reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			w.add(path, "must be an integer, not %s", describe(tok))
			return w.skip(tok)
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			w.add(path, "must be an integer that fits in 64 bits, not %s", n)
		}
		return true
	default:
		panic("catalog: decode: unsupported kind " + t.Kind().String())
	}
}

// skip consumes the rest of a value whose first token is tok.
func (w *walker) skip(tok json.Token) bool {
	d, ok := tok.(json.Delim)
	if !ok || (d != '{' && d != '[') {
		return true
	}
	for depth := 1; depth > 0; {
		t, err := w.dec.Token()
		if err != nil {
			return w.syntax(err)
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return true
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return "null"
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = f.Type
	}
	return fields
}

func sortedKeys(m map[string]reflect.Type) []string {
	return slices.Sorted(maps.Keys(m))
}
