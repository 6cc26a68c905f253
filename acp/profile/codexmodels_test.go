package profile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// bundledCatalog is shaped like Codex 0.166's `codex debug models --bundled`
// (fields trimmed; the instructions are ours, not Codex's): an entry for a
// model the broker's catalog allows (gpt-5.5), and one for a model it
// leaves out, of another kind (code mode only), which shares as long a
// prefix with gpt-5.4 and comes first by priority.
const bundledCatalog = `{"models":[
 {"slug":"gpt-5.6-terra","display_name":"GPT-5.6 Terra","priority":5,"supported_in_api":true,"tool_mode":"code_mode_only",
  "context_window":272000,"supported_reasoning_levels":[{"effort":"low","description":"l"}],"default_reasoning_level":"low",
  "base_instructions":"terra instructions","visibility":"list","upgrade":null},
 {"slug":"gpt-5.5","display_name":"GPT-5.5","priority":13,"supported_in_api":true,"tool_mode":null,
  "context_window":272000,"max_context_window":272000,"supported_reasoning_levels":[{"effort":"medium","description":"m"}],
  "default_reasoning_level":"medium","base_instructions":"five-five instructions","shell_type":"shell_command",
  "truncation_policy":{"mode":"tokens","limit":10000},"visibility":"list","upgrade":{"model":"gpt-6-sol"},"availability_nux":{"message":"new"}},
 {"slug":"codex-auto-review","display_name":"Auto review","priority":99,"supported_in_api":false,"base_instructions":"r","visibility":"hide"}
]}`

var (
	facts54 = ModelFacts{ID: "gpt-5.4", DisplayName: "GPT-5.4", InputWindow: 272000, ReasoningEfforts: []string{"none", "low", "medium", "high", "xhigh", "max"}}
	allowed = []string{"gpt-5.5", "gpt-5.4", "gpt-5.4-mini"}
)

func entries(t *testing.T, data []byte) map[string]map[string]any {
	t.Helper()
	var cat struct {
		Models []map[string]any `json:"models"`
	}
	if err := json.Unmarshal(data, &cat); err != nil {
		t.Fatalf("the catalog written is not JSON: %v", err)
	}
	out := map[string]map[string]any{}
	for _, m := range cat.Models {
		out[m["slug"].(string)] = m
	}
	return out
}

func TestCodexModelsAddsWhatCodexLacks(t *testing.T) {
	out, added, err := codexModels([]byte(bundledCatalog), []ModelFacts{facts54}, allowed)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(added, ",") != "gpt-5.4" {
		t.Fatalf("added %v, want gpt-5.4", added)
	}
	got := entries(t, out)
	for _, slug := range []string{"gpt-5.6-terra", "gpt-5.5", "codex-auto-review"} {
		if got[slug] == nil {
			t.Errorf("Codex's own entry %s was dropped: model_catalog_json replaces its catalog", slug)
		}
	}
	e := got["gpt-5.4"]
	if e == nil {
		t.Fatal("no entry for gpt-5.4")
	}
	// Based on the allowed model's entry, not the closer-by-priority one of
	// another kind.
	if e["base_instructions"] != "five-five instructions" || e["tool_mode"] != nil || e["shell_type"] != "shell_command" {
		t.Errorf("gpt-5.4 is not based on gpt-5.5's entry: %v", e)
	}
	if e["display_name"] != "GPT-5.4" || e["context_window"] != float64(272000) || e["max_context_window"] != float64(272000) {
		t.Errorf("the catalog's facts are not in the entry: %v", e)
	}
	if e["upgrade"] != nil || e["availability_nux"] != nil {
		t.Errorf("gpt-5.5's upgrade notice was carried over: %v", e)
	}
	var efforts []string
	for _, l := range e["supported_reasoning_levels"].([]any) {
		efforts = append(efforts, l.(map[string]any)["effort"].(string))
	}
	// "max" is not an effort Codex's configuration accepts.
	if strings.Join(efforts, ",") != "none,low,medium,high,xhigh" || e["default_reasoning_level"] != "medium" {
		t.Errorf("efforts %v (default %v)", efforts, e["default_reasoning_level"])
	}
	// Codex's own entries are kept as they were.
	if got["gpt-5.5"]["display_name"] != "GPT-5.5" || got["gpt-5.5"]["upgrade"] == nil {
		t.Errorf("gpt-5.5's own entry changed: %v", got["gpt-5.5"])
	}
}

func TestCodexModelsKnownModelLeftToCodex(t *testing.T) {
	out, added, err := codexModels([]byte(bundledCatalog), []ModelFacts{{ID: "gpt-5.5", InputWindow: 922000}}, allowed)
	if err != nil || out != nil || added != nil {
		t.Fatalf("a model Codex knows: got %d bytes, %v, %v; want nothing (its own metadata stays)", len(out), added, err)
	}
}

func TestCodexModelsNoEffortsNoDefault(t *testing.T) {
	out, _, err := codexModels([]byte(bundledCatalog), []ModelFacts{{ID: "gpt-5.4-mini"}}, allowed)
	if err != nil {
		t.Fatal(err)
	}
	e := entries(t, out)["gpt-5.4-mini"]
	if lv := e["supported_reasoning_levels"].([]any); len(lv) != 0 || e["default_reasoning_level"] != nil {
		t.Errorf("a model with no recorded efforts got %v (default %v)", lv, e["default_reasoning_level"])
	}
	if e["display_name"] != "gpt-5.4-mini" || e["context_window"] != float64(272000) {
		t.Errorf("no name or window in the catalog: the ID and the template's window: %v", e)
	}
}

func TestCodexModelsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bundled string
		allowed []string
	}{
		{"not JSON", `{"models":[`, allowed},
		{"entry without slug", `{"models":[{"display_name":"x"}]}`, allowed},
		{"no allowed template", bundledCatalog, []string{"gpt-5.4"}},
		{"over the limit", `{"models":[],"pad":"` + strings.Repeat("x", MaxAgentCatalogBytes) + `"}`, allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := codexModels([]byte(tc.bundled), []ModelFacts{facts54}, tc.allowed)
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("err = %v, want ErrBadValue", err)
			}
		})
	}
}

// TestCodexConfigNamesModelCatalog: a Codex launch given its own catalog
// and a model it lacks writes the catalog beside config.toml (0600) and
// points model_catalog_json at it; a relaunch for a model Codex knows
// removes the key again.
func TestCodexConfigNamesModelCatalog(t *testing.T) {
	p, _ := Lookup(Codex)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	install := t.TempDir()
	entry := filepath.Join(install, filepath.FromSlash(p.Entry))
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := specFor(p, credCase{"platform-proxy", KindPlatformProxy, ""}, testProxy, true, dir, install)
	spec.Cwd = t.TempDir()
	spec.Model, spec.Models, spec.AgentModels, spec.AllowedModels = "gpt-5.4", []ModelFacts{facts54}, []byte(bundledCatalog), allowed
	l, err := Build(Codex, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Prepare(); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home", ".codex")
	cfg := readTOML(t, filepath.Join(home, "config.toml"))
	catPath := filepath.Join(home, codexModelsFile)
	if cfg["model_catalog_json"] != catPath {
		t.Fatalf("model_catalog_json = %v, want %s", cfg["model_catalog_json"], catPath)
	}
	st, err := os.Stat(catPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("catalog file: %v, %v", st, err)
	}
	data, _ := os.ReadFile(catPath)
	if entries(t, data)["gpt-5.4"] == nil {
		t.Fatal("the catalog file has no gpt-5.4")
	}

	spec.Model, spec.Models = "gpt-5.5", []ModelFacts{{ID: "gpt-5.5"}}
	l, err = Build(Codex, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Prepare(); err != nil {
		t.Fatal(err)
	}
	if v, ok := readTOML(t, filepath.Join(home, "config.toml"))["model_catalog_json"]; ok {
		t.Fatalf("model_catalog_json = %v kept for a model Codex knows", v)
	}
}

func TestModelCatalogCommand(t *testing.T) {
	p, _ := Lookup(Codex)
	path, args, ok := p.ModelCatalogCommand(LaunchSpec{InstallDir: "/opt/agents", Node: "/usr/bin/node"})
	if !ok || path != "/usr/bin/node" || strings.Join(args, " ") != "/opt/agents/node_modules/@openai/codex/bin/codex.js debug models --bundled" {
		t.Fatalf("got %q %q %v", path, args, ok)
	}
	if _, _, ok := p.ModelCatalogCommand(LaunchSpec{Command: []string{"/bin/agent"}}); ok {
		t.Error("a configured command has no known catalog command")
	}
	z, _ := Lookup(CodexZed)
	if _, _, ok := z.ModelCatalogCommand(LaunchSpec{InstallDir: "/opt/agents"}); ok {
		t.Error("Zed's codex-acp prints no catalog")
	}
}

func readTOML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := toml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func FuzzCodexModels(f *testing.F) {
	f.Add([]byte(bundledCatalog), "gpt-5.4")
	f.Add([]byte(`{"models":[{"slug":"gpt-5.5","supported_in_api":true}]}`), "gpt-5.5-x")
	f.Add([]byte(`{"models":null}`), "")
	f.Fuzz(func(t *testing.T, bundled []byte, id string) {
		out, added, err := codexModels(bundled, []ModelFacts{{ID: id, InputWindow: 1000, ReasoningEfforts: []string{"low"}}}, allowed)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("an error that is not ErrBadValue: %v", err)
			}
			return
		}
		if len(added) == 0 {
			if out != nil {
				t.Fatal("output with nothing added")
			}
			return
		}
		if added[0] != id || !json.Valid(out) {
			t.Fatalf("added %v for %q, valid output %v", added, id, json.Valid(out))
		}
	})
}
