package acp

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// Extra holds the members of a JSON object that a type does not declare.
// ACP is an open protocol (agents add fields and `_meta` everywhere): the
// types keep what they do not know, so that a message decoded and encoded
// again says the same thing.
type Extra map[string]json.RawMessage

// marshalObject encodes v (a struct type without its own MarshalJSON) and
// appends the members of extra that v does not declare, in key order.
func marshalObject(v any, extra Extra) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	known := jsonKeys(reflect.TypeOf(v))
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !known[k] {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return b, nil
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1])
	for _, k := range keys {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		if v := extra[k]; len(v) > 0 {
			buf.Write(v)
		} else {
			buf.WriteString("null")
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// unmarshalObject decodes data into v (a pointer to a struct without its
// own UnmarshalJSON) and keeps the members it does not declare in *extra.
func unmarshalObject(data []byte, v any, extra *Extra) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	known := jsonKeys(reflect.TypeOf(v).Elem())
	for k := range all {
		if known[k] {
			delete(all, k)
		}
	}
	if len(all) == 0 {
		*extra = nil
	} else {
		*extra = all
	}
	return nil
}

// jsonKeys lists the JSON member names a struct type declares.
func jsonKeys(t reflect.Type) map[string]bool {
	keys := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		keys[name] = true
	}
	return keys
}
