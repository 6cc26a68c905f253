package profile

import (
	"encoding/json"
	"slices"
	"testing"
)

// Merging into an existing settings.json keeps the agent's and the user's
// keys and their other visible tools, sets ours, and gives the same bytes
// when run again.
func TestQwenSettingsMerge(t *testing.T) {
	t.Parallel()
	qs := &qwenSettings{server: "agentbroker"}
	existing := []byte(`{"tools":{"visible":["mcp__other__x","mcp__agentbroker__get_task"],"core":["read_file"]},"ui":{"theme":"dark"}}`)
	out, err := qs.merge(existing)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Tools struct {
			Visible []string `json:"visible"`
			Core    []string `json:"core"`
		} `json:"tools"`
		UI      map[string]any  `json:"ui"`
		Privacy map[string]bool `json:"privacy"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, tool := range projectTools {
		if !slices.Contains(cfg.Tools.Visible, "mcp__agentbroker__"+tool.name) {
			t.Errorf("%s not visible: %v", tool.name, cfg.Tools.Visible)
		}
	}
	if !slices.Contains(cfg.Tools.Visible, "mcp__other__x") || len(cfg.Tools.Visible) != len(projectTools)+1 ||
		!slices.Equal(cfg.Tools.Core, []string{"read_file"}) || cfg.UI["theme"] != "dark" {
		t.Errorf("merge lost or duplicated keys: %s", out)
	}
	if v, ok := cfg.Privacy["usageStatisticsEnabled"]; !ok || v {
		t.Errorf("usage statistics not off: %s", out)
	}
	again, err := qs.merge(out)
	if err != nil || string(again) != string(out) {
		t.Errorf("merge is not idempotent: %v\n%s\n%s", err, out, again)
	}
	for _, bad := range []string{`[1,2]`, `{"tools":3}`, `{"tools":`, `null x`, `null`, `"x"`} {
		if _, err := qs.merge([]byte(bad)); err == nil {
			t.Errorf("merge(%s) accepted", bad)
		}
	}
}

// Whatever the existing file holds, merge either refuses it or returns a
// JSON object with our tools visible; its result merges to itself.
func FuzzQwenSettingsMerge(f *testing.F) {
	for _, s := range []string{``, `null`, `{}`, `{"tools":{"visible":["a"]}}`, `{"tools":{"visible":"x"}}`, `{"privacy":1}`,
		`{"tools":null}`, `[]`, `{"a":{"b":[1,{"c":null}]}}`} {
		f.Add([]byte(s))
	}
	qs := &qwenSettings{server: "agentbroker"}
	f.Fuzz(func(t *testing.T, existing []byte) {
		out, err := qs.merge(existing)
		if err != nil {
			return
		}
		var cfg map[string]any
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("merge gave invalid JSON %q: %v", out, err)
		}
		tools, _ := cfg["tools"].(map[string]any)
		visible, _ := tools["visible"].([]any)
		if !slices.Contains(visible, any("mcp__agentbroker__get_task")) {
			t.Fatalf("get_task not visible in %s", out)
		}
		again, err := qs.merge(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not idempotent: %v\n%s\n%s", err, out, again)
		}
	})
}
