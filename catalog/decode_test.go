package catalog

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestOverrideDecodingProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  []want // every one must be reported
	}{
		{"syntax error with position", "{\n  \"schema_version\": 1,\n  \"models\": [}\n", []want{
			{text: "invalid JSON at line 3, column"},
		}},
		{"truncated", `{"schema_version": 1, "models": [`, []want{{text: "invalid JSON"}}},
		{"not an object", `[1, 2]`, []want{{text: "the catalog must be a JSON object, not an array"}}},
		{"trailing data", `{"schema_version": 1} {"schema_version": 1}`, []want{{text: "unexpected data after the catalog object"}}},
		{"trailing garbage", `{"schema_version": 1} x`, []want{{text: "unexpected data after the catalog object"}}},
		{"empty", "  \n", []want{{text: "the file is empty"}}},
		{"every unknown field", `{"schema_version": 1, "modles": [], "models": [{"id": "o3", "prise": 1,
			"limits": {"context": 1, "max_ouput": 2}, "prices": {"tiers": [{"above": 1}]}}],
			"agents": [{"agent": "x", "defualt": "o3"}]}`, []want{
			{field: "modles", text: `unknown field "modles"`},
			{field: "models[0].prise", text: `unknown field "prise"`},
			{field: "models[0].limits.max_ouput", text: `unknown field "max_ouput"`},
			{field: "models[0].prices.tiers[0].above", text: `unknown field "above"`},
			{field: "agents[0].defualt", text: `unknown field "defualt"`},
		}},
		{"field names are case-sensitive", `{"schema_version": 1, "models": [{"ID": "o3"}]}`, []want{
			{field: "models[0].ID", text: `unknown field "ID"`},
		}},
		{"every type error", `{"schema_version": "1", "models": [{"id": 3, "limits": {"context": 1.5, "max_output": "9"},
			"prices": {"input": 1e6, "output": 99999999999999999999}, "aliases": "o3-2025-04-16", "lifecycle": []}]}`, []want{
			{field: "schema_version", text: "must be an integer, not a string"},
			{field: "models[0].id", text: "must be a string, not a number"},
			{field: "models[0].limits.context", text: "must be an integer that fits in 64 bits, not 1.5"},
			{field: "models[0].limits.max_output", text: "must be an integer, not a string"},
			{field: "models[0].prices.input", text: "not 1e6"},
			{field: "models[0].prices.output", text: "not 99999999999999999999"},
			{field: "models[0].aliases", text: "must be a JSON array, not a string"},
			{field: "models[0].lifecycle", text: "must be a JSON object, not an array"},
		}},
		{"duplicate key", `{"schema_version": 1, "models": [{"id": "o3", "id": "o4-mini"}]}`, []want{
			{field: "models[0].id", text: "field appears twice"},
		}},
		{"null scalar", `{"schema_version": 1, "models": [{"id": null}]}`, []want{
			{field: "models[0].id", text: "null is not allowed"},
		}},
		{"wrong schema version", `{"schema_version": 2}`, []want{{field: "schema_version", text: "is 2; this agentbroker reads version 1"}}},
		{"duplicate model in override", `{"schema_version": 1, "models": [` + o3JSON + `,` + o3JSON + `]}`, []want{
			{model: "o3", field: "models[1].id", text: "lists this model twice"},
		}},
		{"duplicate agent in override", `{"schema_version": 1, "agents": [` + ampJSON + `,` + ampJSON + `]}`, []want{
			{agent: "amp", field: "agents[1].agent", text: "lists this agent twice"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			problems := Check([]byte(tt.input))
			for _, w := range tt.want {
				if !slices.ContainsFunc(problems, w.matches) {
					t.Errorf("missing %+v in:\n%s", w, render(problems))
				}
			}
			for _, p := range problems {
				if p.Source != sourceOverride {
					t.Errorf("%s: source %q, want override", p, p.Source)
				}
			}
			_, err := Load([]byte(tt.input))
			var ve *ValidationError
			if !errors.Is(err, ErrInvalidCatalog) || !errors.As(err, &ve) || len(ve.Problems) != len(problems) {
				t.Errorf("Load = %v, want a ValidationError with the %d problems", err, len(problems))
			}
		})
	}
}

const o3JSON = `{"id": "o3", "provider": "openai", "lab": "openai", "display_name": "o3", "family": "o",
 "limits": {"context": 200000, "max_output": 100000}, "prices": {"input": 2000000, "output": 8000000},
 "endpoints": ["responses"], "lifecycle": {"status": "active", "released": "2025-04-16"},
 "provenance": {"source": "test", "verified_on": "2026-11-29"}}`

const ampJSON = `{"agent": "amp", "api": "messages", "default": "claude-opus-4-6", "selectable": ["claude-opus-4-6"], "allowed": ["claude-opus-4-6"]}`

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	big := append([]byte(`{"schema_version": 1}`), bytes.Repeat([]byte(" "), MaxFileSize)...)
	problems := Check(big)
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "the limit is 4194304 (4 MiB)") {
		t.Errorf("Check(5 MiB) = %v", problems)
	}
	if _, err := Load(big); !errors.Is(err, ErrInvalidCatalog) {
		t.Errorf("Load(5 MiB) = %v", err)
	}
	ok := append([]byte(`{"schema_version": 1}`), bytes.Repeat([]byte(" "), MaxFileSize-100)...)
	if problems := Check(ok); len(problems) != 0 {
		t.Errorf("Check(just under the limit) = %v", problems)
	}
}

func TestProblemString(t *testing.T) {
	t.Parallel()
	p := Problem{Source: "override", Model: "gpt-5.5", Field: "prices.cache_read", Message: "cache read price 6000000 is above the input price 5000000"}
	want := `override: model "gpt-5.5": prices.cache_read: cache read price 6000000 is above the input price 5000000`
	if p.String() != want {
		t.Errorf("String() = %q, want %q", p.String(), want)
	}
	if got := (Problem{Agent: "amp", Message: "x"}).String(); got != `agent "amp": x` {
		t.Errorf("String() = %q", got)
	}
}
