package mcpserver

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The input schemas are built from these types, and the same values check
// the arguments of every call (validateArgs): what tools/list publishes is
// exactly what is enforced, in one place. Only the subset of JSON Schema the
// validator understands can be expressed.

// inputSchema is a tool's input schema: an object of named properties,
// never anything else (additionalProperties is always false).
type inputSchema struct {
	props    []inputProp
	required []string
}

// inputProp is one argument.
type inputProp struct {
	name string
	spec propSpec
}

// propSpec describes one value: a string, an integer, a boolean or an array
// of strings.
type propSpec struct {
	Type        string    `json:"type"`
	Description string    `json:"description,omitempty"`
	MinLength   *int      `json:"minLength,omitempty"`
	MaxLength   *int      `json:"maxLength,omitempty"`
	Minimum     *int64    `json:"minimum,omitempty"`
	Maximum     *int64    `json:"maximum,omitempty"`
	Default     any       `json:"default,omitempty"`
	Enum        []string  `json:"enum,omitempty"`
	Items       *propSpec `json:"items,omitempty"`
	MaxItems    *int      `json:"maxItems,omitempty"`
	// maxBytes bounds the UTF-8 length of a string too (the store counts
	// bytes): JSON Schema's maxLength counts characters, so non-ASCII text
	// may be refused below maxLength characters. Not published.
	maxBytes int
}

func ptr[T any](v T) *T { return &v }

// str is a string argument of 1 to maxLen characters (and bytes).
func str(desc string, maxLen int) propSpec {
	return propSpec{Type: "string", Description: desc, MinLength: ptr(1), MaxLength: ptr(maxLen), maxBytes: maxLen}
}

// text is a string argument of at most maxLen characters (and bytes),
// possibly empty.
func text(desc string, maxLen int) propSpec {
	return propSpec{Type: "string", Description: desc, MaxLength: ptr(maxLen), maxBytes: maxLen}
}

// enum is a string argument taking one of values.
func enum(desc string, values ...string) propSpec {
	return propSpec{Type: "string", Description: desc, Enum: values}
}

// integer is an integer argument in [lo, hi], with an optional default
// (documentation only: the handler applies it).
func integer(desc string, lo, hi int64, def int64) propSpec {
	p := propSpec{Type: "integer", Description: desc, Minimum: ptr(lo), Maximum: ptr(hi)}
	if def != 0 {
		p.Default = def
	}
	return p
}

// boolean is a boolean argument.
func boolean(desc string) propSpec { return propSpec{Type: "boolean", Description: desc} }

// strList is an array of at most maxItems strings of 1 to maxLen characters.
func strList(desc string, maxItems, maxLen int) propSpec {
	item := propSpec{Type: "string", MinLength: ptr(1), MaxLength: ptr(maxLen), maxBytes: maxLen}
	return propSpec{Type: "array", Description: desc, Items: &item, MaxItems: ptr(maxItems)}
}

// object builds an input schema; required names properties that must be present.
func object(required []string, props ...inputProp) inputSchema {
	for _, r := range required {
		if !slices.ContainsFunc(props, func(p inputProp) bool { return p.name == r }) {
			panic("mcpserver: required property " + r + " is not declared")
		}
	}
	return inputSchema{props: props, required: required}
}

// prop names a propSpec.
func prop(name string, spec propSpec) inputProp { return inputProp{name: name, spec: spec} }

// MarshalJSON renders the JSON Schema (properties sorted by name, as
// encoding/json sorts map keys).
func (s inputSchema) MarshalJSON() ([]byte, error) {
	props := make(map[string]propSpec, len(s.props))
	for _, p := range s.props {
		props[p.name] = p.spec
	}
	return json.Marshal(struct {
		Type                 string              `json:"type"`
		Properties           map[string]propSpec `json:"properties"`
		Required             []string            `json:"required,omitempty"`
		AdditionalProperties bool                `json:"additionalProperties"`
	}{"object", props, s.required, false})
}

// argError is a refusal of a tool call's arguments, worded for the model.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

func argErrorf(format string, a ...any) error { return &argError{fmt.Sprintf(format, a...)} }

// validateArgs checks decoded arguments (a JSON object decoded into
// map[string]any, nil for none) against s: no unknown property, every
// required one present, each of the right type and within its limits.
// Errors name the first offending argument; several unknown ones are listed
// together, sorted.
func (s inputSchema) validateArgs(args map[string]any) error {
	var unknown []string
	for k := range args {
		if !slices.ContainsFunc(s.props, func(p inputProp) bool { return p.name == k }) {
			unknown = append(unknown, strconv.Quote(clip(k, 64)))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		names := make([]string, len(s.props))
		for i, p := range s.props {
			names[i] = p.name
		}
		if len(names) == 0 {
			return argErrorf("unknown argument %s: this tool takes no arguments", strings.Join(unknown, ", "))
		}
		return argErrorf("unknown argument %s: this tool takes %s", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	for _, r := range s.required {
		if v, ok := args[r]; !ok || v == nil {
			return argErrorf("missing required argument %q", r)
		}
	}
	for _, p := range s.props {
		v, ok := args[p.name]
		if !ok {
			continue
		}
		if err := p.spec.check(p.name, v); err != nil {
			return err
		}
	}
	return nil
}

// check validates one value against p; name is the argument's name (with
// an index for array items) for messages.
func (p propSpec) check(name string, v any) error {
	if v == nil {
		return argErrorf("argument %q must be a %s, not null", name, p.Type)
	}
	switch p.Type {
	case "string":
		s, ok := v.(string)
		if !ok {
			return argErrorf("argument %q must be a string", name)
		}
		if !utf8.ValidString(s) {
			return argErrorf("argument %q is not valid UTF-8", name)
		}
		n := utf8.RuneCountInString(s)
		if p.MinLength != nil && n < *p.MinLength {
			if *p.MinLength == 1 {
				return argErrorf("argument %q must not be empty", name)
			}
			return argErrorf("argument %q must be at least %d characters long", name, *p.MinLength)
		}
		if p.MaxLength != nil && n > *p.MaxLength {
			return argErrorf("argument %q is %d characters long; the limit is %d", name, n, *p.MaxLength)
		}
		if p.maxBytes > 0 && len(s) > p.maxBytes {
			return argErrorf("argument %q is %d bytes long in UTF-8; the limit is %d bytes", name, len(s), p.maxBytes)
		}
		if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
			return argErrorf("argument %q must be one of %s; got %q", name, strings.Join(p.Enum, ", "), clip(s, 64))
		}
	case "integer":
		f, ok := v.(float64)
		if !ok {
			if n, isNum := v.(json.Number); isNum {
				var err error
				if f, err = n.Float64(); err != nil {
					return argErrorf("argument %q must be an integer", name)
				}
				ok = true
			}
		}
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
			return argErrorf("argument %q must be an integer", name)
		}
		if p.Minimum != nil && f < float64(*p.Minimum) {
			return argErrorf("argument %q must be at least %d", name, *p.Minimum)
		}
		if p.Maximum != nil && f > float64(*p.Maximum) {
			return argErrorf("argument %q must be at most %d", name, *p.Maximum)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return argErrorf("argument %q must be true or false", name)
		}
	case "array":
		items, ok := v.([]any)
		if !ok {
			return argErrorf("argument %q must be an array", name)
		}
		if p.MaxItems != nil && len(items) > *p.MaxItems {
			return argErrorf("argument %q has %d items; the limit is %d", name, len(items), *p.MaxItems)
		}
		if p.Items != nil {
			for i, it := range items {
				if err := p.Items.check(fmt.Sprintf("%s[%d]", name, i), it); err != nil {
					return err
				}
			}
		}
	default:
		panic("mcpserver: schema type " + p.Type + " has no validator")
	}
	return nil
}

// clip shortens s to at most n bytes (on a rune boundary) for messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Output schemas are plain JSON Schema values; tests validate every
// structured result against them with a full JSON Schema validator.

type jsonObject = map[string]any

// outObject is an object schema with the given properties, of which
// required must be present; no other property appears.
func outObject(desc string, required []string, props jsonObject) jsonObject {
	o := jsonObject{"type": "object", "properties": props, "additionalProperties": false}
	if desc != "" {
		o["description"] = desc
	}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func outString(desc string) jsonObject { return jsonObject{"type": "string", "description": desc} }

func outTime(desc string) jsonObject {
	return jsonObject{"type": "string", "format": "date-time", "description": desc}
}

func outInt(desc string) jsonObject { return jsonObject{"type": "integer", "description": desc} }

func outBool(desc string) jsonObject { return jsonObject{"type": "boolean", "description": desc} }

func outEnum(desc string, values []string) jsonObject {
	return jsonObject{"type": "string", "enum": values, "description": desc}
}

func outArray(desc string, items jsonObject) jsonObject {
	return jsonObject{"type": "array", "items": items, "description": desc}
}
