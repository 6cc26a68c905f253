package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// ModelFacts are the catalog's facts about a model a session's agent will
// use, for agents whose configuration carries them (Codex's model catalog).
type ModelFacts struct {
	ID          string
	DisplayName string
	// InputWindow is how many tokens of input the agent should plan for:
	// the model's input limit, capped below a long-context price tier.
	InputWindow int64
	// ReasoningEfforts are the efforts the model accepts, as the catalog
	// records them (none, minimal, low, medium, high, xhigh, max).
	ReasoningEfforts []string
}

// MaxAgentCatalogBytes bounds the agent's own model catalog as read from it
// (Codex 0.166's is 745 kB).
const MaxAgentCatalogBytes = 16 << 20

// codexModelsFile is where the broker writes Codex's model catalog, in
// CODEX_HOME, when the session's model is missing from Codex's own.
const codexModelsFile = "agentbroker-models.json"

// codexModels returns the model catalog Codex should read
// (model_catalog_json): its own bundled one, as `codex debug models
// --bundled` prints it, plus an entry for each model in facts that it
// lacks. It returns nil and no names when Codex knows them all: its own
// metadata is tuned for it and stays in force.
//
// model_catalog_json replaces Codex's catalog, so the bundled entries are
// all kept. A new entry is a copy of a bundled entry (Codex's instructions
// and tool settings: Codex requires base instructions, and the broker ships
// none of its own), with the catalog's facts in place of the template's:
// slug, name, input window and reasoning efforts. The template is one of
// the catalog's own models the agent may use (allowed), the one whose slug
// shares the longest prefix with the model's ID: Codex's entries for models
// the catalog leaves out may be of another kind altogether (Codex 0.166's
// gpt-5.6 entries send no tools but a code mode of their own).
func codexModels(bundled []byte, facts []ModelFacts, allowed []string) ([]byte, []string, error) {
	if len(bundled) > MaxAgentCatalogBytes {
		return nil, nil, fmt.Errorf("%w: the agent's model catalog is %d bytes, over %d", ErrBadValue, len(bundled), MaxAgentCatalogBytes)
	}
	var cat struct {
		Models []map[string]json.RawMessage `json:"models"`
	}
	if err := json.Unmarshal(bundled, &cat); err != nil {
		return nil, nil, fmt.Errorf("%w: the agent's model catalog: %v", ErrBadValue, err)
	}
	slugs := make([]string, len(cat.Models))
	for i, m := range cat.Models {
		if err := json.Unmarshal(m["slug"], &slugs[i]); err != nil || slugs[i] == "" {
			return nil, nil, fmt.Errorf("%w: the agent's model catalog: entry %d has no slug", ErrBadValue, i)
		}
	}
	var added []string
	for _, f := range facts {
		if f.ID == "" || slices.Contains(slugs, f.ID) || slices.Contains(added, f.ID) {
			continue
		}
		t := codexTemplate(cat.Models, slugs, allowed, f.ID)
		if t < 0 {
			return nil, nil, fmt.Errorf("%w: the agent's model catalog has no entry for a model of the catalog to base %s on", ErrBadValue, f.ID)
		}
		entry, err := codexEntry(cat.Models[t], f)
		if err != nil {
			return nil, nil, err
		}
		cat.Models = append(cat.Models, entry)
		added = append(added, f.ID)
	}
	if len(added) == 0 {
		return nil, nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cat); err != nil {
		return nil, nil, fmt.Errorf("render the model catalog: %w", err)
	}
	return buf.Bytes(), added, nil
}

// codexTemplate picks the entry a new model is based on: one for an
// allowed model, served in the API, whose slug shares the longest prefix
// with id; among equals, the one Codex lists first by its priority. -1 when
// there is none.
func codexTemplate(models []map[string]json.RawMessage, slugs, allowed []string, id string) int {
	best, bestLen, bestPrio := -1, -1, 0
	for i, m := range models {
		var inAPI bool
		if !slices.Contains(allowed, slugs[i]) || json.Unmarshal(m["supported_in_api"], &inAPI) != nil || !inAPI {
			continue
		}
		var prio int
		_ = json.Unmarshal(m["priority"], &prio)
		n := commonPrefix(slugs[i], id)
		if n > bestLen || (n == bestLen && prio < bestPrio) {
			best, bestLen, bestPrio = i, n, prio
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// codexEfforts are the reasoning efforts Codex's configuration accepts.
var codexEfforts = []string{"none", "minimal", "low", "medium", "high", "xhigh"}

func codexEntry(template map[string]json.RawMessage, f ModelFacts) (map[string]json.RawMessage, error) {
	e := make(map[string]json.RawMessage, len(template))
	for k, v := range template {
		e[k] = v
	}
	var levels []map[string]string
	for _, eff := range f.ReasoningEfforts {
		if slices.Contains(codexEfforts, eff) {
			levels = append(levels, map[string]string{"effort": eff, "description": "Reasoning effort " + eff})
		}
	}
	def := "medium"
	if len(levels) > 0 && !slices.ContainsFunc(levels, func(l map[string]string) bool { return l["effort"] == def }) {
		def = levels[len(levels)/2]["effort"]
	}
	name := f.DisplayName
	if name == "" {
		name = f.ID
	}
	set := map[string]any{
		"slug":                       f.ID,
		"display_name":               name,
		"description":                name + " (limits from agentbroker's catalog)",
		"supported_reasoning_levels": levels,
		"default_reasoning_level":    def,
		"upgrade":                    nil,
		"availability_nux":           nil,
		"auto_compact_token_limit":   nil,
		"visibility":                 "list",
	}
	if len(levels) == 0 {
		// The catalog records no efforts: the model takes none, and Codex
		// must not send one.
		set["supported_reasoning_levels"] = []any{}
		set["default_reasoning_level"] = nil
	}
	if f.InputWindow > 0 {
		set["context_window"] = f.InputWindow
		set["max_context_window"] = f.InputWindow
	}
	for k, v := range set {
		data, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		e[k] = data
	}
	return e, nil
}
