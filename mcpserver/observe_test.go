package mcpserver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentbroker/agentbroker/tokens"
)

// TestObserverAndMetrics: the observer hears tools/list with the token's
// claims and every tool call with its outcome; /metrics counts them.
func TestObserverAndMetrics(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	raw, claims := w.mint(w.projA.ID, w.sessA, allScopes...)
	c := w.client(raw)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
		t.Fatal(err)
	}
	listed := w.obs.Listed()
	if len(listed) != 1 || listed[0] != claims {
		t.Fatalf("ToolsListed = %+v; want once, with the token's claims %+v", listed, claims)
	}

	call(t, c, "get_task", map[string]any{"id": w.taskA.ID})
	call(t, c, "get_task", map[string]any{"id": "tsk_nope"})
	call(t, c, "get_task", map[string]any{"id": w.taskA.ID, "extra": true})
	call(t, c, "update_task", map[string]any{"id": w.taskA2.ID, "status": "failed"})

	calls := w.obs.Calls()
	want := []struct {
		tool    string
		outcome Outcome
		msg     string
	}{
		{"get_task", OutcomeOK, ""},
		{"get_task", OutcomeNotFound, "not found"},
		{"get_task", OutcomeInvalidArguments, "unknown argument"},
		{"update_task", OutcomeForbidden, "not bound"},
	}
	if len(calls) != len(want) {
		t.Fatalf("observer saw %d calls; want %d: %+v", len(calls), len(want), calls)
	}
	for i, wc := range want {
		got := calls[i]
		if got.Tool != wc.tool || got.Outcome != wc.outcome || !strings.Contains(got.Error, wc.msg) ||
			got.Session != w.sessA || got.Project != w.projA.ID || got.TokenID != claims.ID || got.Agent != "claude" ||
			got.Start.IsZero() || got.Duration < 0 {
			t.Errorf("call %d = %+v; want %s %s", i, got, wc.tool, wc.outcome)
		}
	}
	for series, v := range map[string]float64{
		`agentbroker_mcp_tool_calls_total{tool="get_task",outcome="ok"}`:                1,
		`agentbroker_mcp_tool_calls_total{tool="get_task",outcome="not_found"}`:         1,
		`agentbroker_mcp_tool_calls_total{tool="get_task",outcome="invalid_arguments"}`: 1,
		`agentbroker_mcp_tool_calls_total{tool="update_task",outcome="forbidden"}`:      1,
		`agentbroker_mcp_tool_call_duration_seconds_count{tool="get_task"}`:             3,
	} {
		if got := w.metric(series); got != v {
			t.Errorf("%s = %v; want %v", series, got, v)
		}
	}

	// Wait lets a broker test wait for readiness.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if !w.obs.Wait(ctx2, func(l []tokens.Claims, _ []ToolCall) bool { return len(l) == 1 }) {
		t.Fatal("Wait did not see the listing")
	}
}

// TestMemoryObserverBounded: the memory observer keeps only the newest.
func TestMemoryObserverBounded(t *testing.T) {
	t.Parallel()
	m := &MemoryObserver{Limit: 3}
	for i := 0; i < 5; i++ {
		m.ToolCalled(context.Background(), ToolCall{Tool: string(rune('a' + i))})
	}
	calls := m.Calls()
	if len(calls) != 3 || calls[0].Tool != "c" || calls[2].Tool != "e" {
		t.Fatalf("calls = %+v", calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if m.Wait(ctx, func(l []tokens.Claims, _ []ToolCall) bool { return len(l) > 0 }) {
		t.Fatal("Wait reported a listing that never happened")
	}
}

// TestToolSnapshots: every tool's published definition (input and output
// schemas included) matches testdata/toolsnaps/<tool>.json; refresh with
// go test ./mcpserver -run TestToolSnapshots -update.
func TestToolSnapshots(t *testing.T) {
	dir := filepath.Join("testdata", "toolsnaps")
	names := map[string]bool{}
	for _, d := range tools() {
		names[d.name+".json"] = true
		tool, err := d.mcpTool()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(tool)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		got, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join(dir, d.name+".json")
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test ./mcpserver -run TestToolSnapshots -update)", d.name, err)
		}
		if string(want) != string(got) {
			t.Errorf("tool %s changed; review the diff and run go test ./mcpserver -run TestToolSnapshots -update\n--- got\n%s", d.name, got)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !names[e.Name()] {
			if *update {
				os.Remove(filepath.Join(dir, e.Name()))
				continue
			}
			t.Errorf("stale snapshot %s: no such tool", e.Name())
		}
	}
}

// TestSchemasAreStrict: every input schema refuses unknown properties and
// bounds every string, integer and array it declares.
func TestSchemasAreStrict(t *testing.T) {
	t.Parallel()
	for _, d := range tools() {
		tool, err := d.mcpTool()
		if err != nil {
			t.Fatal(err)
		}
		var in struct {
			Type                 string                    `json:"type"`
			AdditionalProperties *bool                     `json:"additionalProperties"`
			Properties           map[string]map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(tool.RawInputSchema, &in); err != nil {
			t.Fatal(err)
		}
		if in.Type != "object" || in.AdditionalProperties == nil || *in.AdditionalProperties {
			t.Errorf("%s: input schema is not a closed object", d.name)
		}
		for name, p := range in.Properties {
			if p["description"] == nil || p["description"] == "" {
				t.Errorf("%s.%s: no description", d.name, name)
			}
			switch p["type"] {
			case "string":
				if p["maxLength"] == nil && p["enum"] == nil {
					t.Errorf("%s.%s: unbounded string", d.name, name)
				}
			case "integer":
				if p["maximum"] == nil || p["minimum"] == nil {
					t.Errorf("%s.%s: unbounded integer", d.name, name)
				}
			case "array":
				if p["maxItems"] == nil {
					t.Errorf("%s.%s: unbounded array", d.name, name)
				}
			}
		}
		if len(tool.RawOutputSchema) == 0 || tool.Description == "" || tool.Annotations.ReadOnlyHint == nil {
			t.Errorf("%s: missing output schema, description or annotations", d.name)
		}
	}
}
