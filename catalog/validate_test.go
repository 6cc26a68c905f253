package catalog

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// embeddedFile returns a fresh, mutable copy of the embedded catalog file.
func embeddedFile(t *testing.T) *file {
	t.Helper()
	f, problems := decode(embeddedJSON, sourceEmbedded)
	if len(problems) > 0 {
		t.Fatalf("decode embedded: %v", problems)
	}
	return f
}

func (f *file) model(t *testing.T, id string) *Model {
	t.Helper()
	i := slices.IndexFunc(f.Models, func(m Model) bool { return m.ID == id })
	if i < 0 {
		t.Fatalf("no model %q", id)
	}
	return &f.Models[i]
}

func (f *file) policy(t *testing.T, agent string) *Policy {
	t.Helper()
	i := slices.IndexFunc(f.Agents, func(p Policy) bool { return p.Agent == agent })
	if i < 0 {
		t.Fatalf("no agent %q", agent)
	}
	return &f.Agents[i]
}

// want describes the problem a broken catalog must produce.
type want struct {
	model, agent, field, text string
}

func (w want) matches(p Problem) bool {
	return p.Model == w.model && p.Agent == w.agent && p.Field == w.field && strings.Contains(p.Message, w.text)
}

// TestValidatorCatchesEachBreakage feeds the validator deliberately broken
// copies of the embedded catalog, one rule at a time, and expects that
// rule's problem. If a check is deleted or weakened, its row fails.
func TestValidatorCatchesEachBreakage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(t *testing.T, f *file)
		want    want
	}{
		// UI ⊆ proxy, and the policy rules.
		{"selectable not allowed", func(t *testing.T, f *file) {
			p := f.policy(t, "codex")
			p.Selectable = append(p.Selectable, "gpt-5.5-pro")
		}, want{agent: "codex", field: "selectable[5]", text: "selectable but not allowed"}},
		{"retired selectable", func(t *testing.T, f *file) {
			p := f.policy(t, "claude-code")
			p.Allowed = append(p.Allowed, "claude-3-opus-20240229")
			p.Selectable = append(p.Selectable, "claude-3-opus-20240229")
		}, want{agent: "claude-code", field: "selectable[7]", text: "retired and may not be offered"}},
		{"side model not allowed", func(t *testing.T, f *file) {
			p := f.policy(t, "codex")
			p.SideModels = append(p.SideModels, SideModel{ID: "gpt-5.5-pro", Use: "reviews"})
		}, want{agent: "codex", field: "side_models[0].id", text: "side model but not allowed"}},
		{"side model without a use", func(t *testing.T, f *file) {
			f.policy(t, "claude-code").SideModels[0].Use = " "
		}, want{agent: "claude-code", field: "side_models[0].use", text: "say what the agent uses"}},
		{"default not selectable", func(t *testing.T, f *file) {
			f.policy(t, "codex").Default = "gpt-5.4-nano"
		}, want{agent: "codex", field: "default", text: "not selectable"}},
		{"no default", func(t *testing.T, f *file) {
			f.policy(t, "amp").Default = ""
		}, want{agent: "amp", field: "default", text: "exactly one default"}},
		{"default unknown", func(t *testing.T, f *file) {
			f.policy(t, "amp").Default = "claude-opus-9"
		}, want{agent: "amp", field: "default", text: "not a model in the catalog"}},
		{"default preview", func(t *testing.T, f *file) {
			p := f.policy(t, "codex")
			p.Selectable = append(p.Selectable, "gpt-5.3-codex-spark")
			p.Default = "gpt-5.3-codex-spark"
		}, want{agent: "codex", field: "default", text: "is preview; the default must be active"}},
		{"default deprecated", func(t *testing.T, f *file) {
			m := f.model(t, "claude-opus-4-6")
			m.Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2026-02-05", Replacement: "claude-opus-4-8"}
		}, want{agent: "amp", field: "default", text: "is deprecated; the default must be active"}},
		{"allowed unknown", func(t *testing.T, f *file) {
			p := f.policy(t, "amp")
			p.Allowed = append(p.Allowed, "claude-opus-4-6-20260205")
		}, want{agent: "amp", field: "allowed[2]", text: "not a model in the catalog"}},
		{"allowed names an alias", func(t *testing.T, f *file) {
			p := f.policy(t, "amp")
			p.Allowed = append(p.Allowed, "claude-haiku-4-5-20251001")
		}, want{agent: "amp", field: "allowed[2]", text: `an alias; list the canonical id "claude-haiku-4-5"`}},
		{"allowed twice", func(t *testing.T, f *file) {
			p := f.policy(t, "amp")
			p.Allowed = append(p.Allowed, "claude-haiku-4-5")
		}, want{agent: "amp", field: "allowed[2]", text: "listed twice"}},
		{"agent given a model off its API", func(t *testing.T, f *file) {
			p := f.policy(t, "codex")
			p.Allowed = append(p.Allowed, "claude-opus-4-8")
		}, want{agent: "codex", field: "allowed[13]", text: "does not serve the responses API"}},
		{"chat-only model for a responses agent", func(t *testing.T, f *file) {
			m := f.model(t, "gpt-5.4-nano")
			m.Endpoints = []Endpoint{EndpointChat}
		}, want{agent: "codex", field: "allowed[3]", text: "does not serve the responses API"}},
		{"unknown API style", func(t *testing.T, f *file) {
			f.policy(t, "amp").API = "completions"
		}, want{agent: "amp", field: "api", text: "not an API style"}},
		{"duplicate agent", func(t *testing.T, f *file) {
			f.Agents = append(f.Agents, *f.policy(t, "amp"))
		}, want{agent: "amp", field: "agent", text: "two policies"}},
		{"bad agent name", func(t *testing.T, f *file) {
			f.policy(t, "amp").Agent = "Amp Code"
		}, want{agent: "Amp Code", field: "agent", text: "not a valid agent name"}},
		{"nothing selectable", func(t *testing.T, f *file) {
			f.policy(t, "amp").Selectable = nil
		}, want{agent: "amp", field: "selectable", text: "at least one selectable"}},
		{"nothing allowed", func(t *testing.T, f *file) {
			f.policy(t, "amp").Allowed = nil
		}, want{agent: "amp", field: "allowed", text: "at least one model"}},

		// IDs and aliases unique across the catalog.
		{"duplicate id", func(t *testing.T, f *file) {
			f.Models = append(f.Models, *f.model(t, "o3"))
		}, want{model: "o3", field: "id", text: "two models have this id"}},
		{"alias is another model's id", func(t *testing.T, f *file) {
			m := f.model(t, "claude-opus-4-7")
			m.Aliases = append(m.Aliases, "claude-opus-4-6")
		}, want{model: "claude-opus-4-7", field: "aliases[0]", text: "the id of another model"}},
		{"alias shared by two models", func(t *testing.T, f *file) {
			m := f.model(t, "gpt-5.4")
			m.Aliases = append(m.Aliases, "gpt-5.5-2026-04-23")
		}, want{model: "gpt-5.4", field: "aliases[1]", text: `already an alias of "gpt-5.5"`}},
		{"alias repeats own id", func(t *testing.T, f *file) {
			m := f.model(t, "o3")
			m.Aliases = append(m.Aliases, "o3")
		}, want{model: "o3", field: "aliases[1]", text: "repeat the model's own id"}},
		{"alias is a pattern", func(t *testing.T, f *file) {
			m := f.model(t, "o3")
			m.Aliases = append(m.Aliases, "o3-*")
		}, want{model: "o3", field: "aliases[1]", text: "not a valid model ID"}},

		// DetectProvider equals the declared provider.
		{"provider contradicts the ID", func(t *testing.T, f *file) {
			f.model(t, "o4-mini").Provider = ProviderAnthropic
		}, want{model: "o4-mini", field: "id", text: "classifies \"o4-mini\" as openai, but the model's provider is anthropic"}},
		{"alias of no known shape", func(t *testing.T, f *file) {
			m := f.model(t, "claude-opus-4-8")
			m.Aliases = append(m.Aliases, "opus")
		}, want{model: "claude-opus-4-8", field: "aliases[0]", text: "DetectProvider does not recognise"}},
		{"unroutable provider", func(t *testing.T, f *file) {
			f.model(t, "o3").Provider = "bedrock"
		}, want{model: "o3", field: "provider", text: "not a provider the proxy can route to"}},

		// Dated IDs against release dates (models.md's o3-deep-research lesson).
		{"o3-deep-research as models.dev dates it", func(t *testing.T, f *file) {
			f.model(t, "o3-deep-research").Lifecycle.Released = "2024-06-26"
		}, want{model: "o3-deep-research", field: "aliases[0]", text: "365 days after the release date 2024-06-26"}},
		{"snapshot far older than release", func(t *testing.T, f *file) {
			m := f.model(t, "claude-haiku-4-5")
			m.Aliases = append(m.Aliases, "claude-haiku-4-5-20250101")
		}, want{model: "claude-haiku-4-5", field: "aliases[1]", text: "287 days before the release date"}},
		{"date suffix not a date", func(t *testing.T, f *file) {
			m := f.model(t, "claude-haiku-4-5")
			m.Aliases = append(m.Aliases, "claude-haiku-4-5-20251399")
		}, want{model: "claude-haiku-4-5", field: "aliases[1]", text: "not a valid date"}},

		// Prices (models.md: LiteLLM's copy errors).
		{"cache read above input", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.5").Prices.CacheRead = 6_000_000
		}, want{model: "gpt-5.5", field: "prices.cache_read", text: "above the input price"}},
		{"claude-3-opus 1h below 5m (LiteLLM)", func(t *testing.T, f *file) {
			f.model(t, "claude-3-opus-20240229").Prices.CacheWrite1h = 6_000_000
		}, want{model: "claude-3-opus-20240229", field: "prices.cache_write_1h", text: "below the 5-minute price"}},
		{"claude-3-haiku 1h 20x 5m (LiteLLM)", func(t *testing.T, f *file) {
			f.model(t, "claude-3-haiku-20240307").Prices.CacheWrite1h = 6_000_000
		}, want{model: "claude-3-haiku-20240307", field: "prices.cache_write_1h", text: "more than twice"}},
		{"1h without 5m", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.5").Prices.CacheWrite1h = 1_000_000
		}, want{model: "gpt-5.5", field: "prices.cache_write_1h", text: "needs a 5-minute one"}},
		{"negative price", func(t *testing.T, f *file) {
			f.model(t, "o3").Prices.Output = -1
		}, want{model: "o3", field: "prices.output", text: "negative"}},
		{"price in the wrong unit", func(t *testing.T, f *file) {
			f.model(t, "o3").Prices.Output = 8_000_000_000_000 // pico-USD typed as micro
		}, want{model: "o3", field: "prices.output", text: "implausible"}},
		{"missing price", func(t *testing.T, f *file) {
			f.model(t, "o3").Prices.Input = 0
		}, want{model: "o3", field: "prices.input", text: "required"}},
		{"tiers not ascending", func(t *testing.T, f *file) {
			m := f.model(t, "gpt-5.5")
			m.Prices.Tiers = append(m.Prices.Tiers, PriceTier{AboveInputTokens: 200_000, Input: 20_000_000, Output: 90_000_000, CacheRead: 2_000_000})
		}, want{model: "gpt-5.5", field: "prices.tiers[1].above_input_tokens", text: "tiers ascend"}},
		{"tier cheaper than base", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.4").Prices.Tiers[0].Output = 10_000_000
		}, want{model: "gpt-5.4", field: "prices.tiers[0].output", text: "never lowers a price"}},
		{"tier drops the cache price", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.4").Prices.Tiers[0].CacheRead = 0
		}, want{model: "gpt-5.4", field: "prices.tiers[0].cache_read", text: "never lowers a price"}},
		{"tier beyond the window", func(t *testing.T, f *file) {
			m := f.model(t, "claude-sonnet-4-5")
			m.Prices.Tiers = []PriceTier{{AboveInputTokens: 200_000, Input: 6_000_000, Output: 22_500_000, CacheRead: 600_000, CacheWrite5m: 7_500_000, CacheWrite1h: 12_000_000}}
		}, want{model: "claude-sonnet-4-5", field: "prices.tiers[0].above_input_tokens", text: "could never apply"}},
		{"tier at zero", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.4").Prices.Tiers[0].AboveInputTokens = 0
		}, want{model: "gpt-5.4", field: "prices.tiers[0].above_input_tokens", text: "positive"}},
		{"tier cache read above tier input", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.4").Prices.Tiers[0].CacheRead = 9_000_000
		}, want{model: "gpt-5.4", field: "prices.tiers[0].cache_read", text: "above the input price"}},

		// Limits.
		{"max output above context", func(t *testing.T, f *file) {
			f.model(t, "o3").Limits.MaxOutput = 300_000
		}, want{model: "o3", field: "limits.max_output", text: "above the context window"}},
		{"max input above context", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.4-mini").Limits.MaxInput = 1_050_000 // LiteLLM's figure on models.dev's window
		}, want{model: "gpt-5.4-mini", field: "limits.max_input", text: "above the context window"}},
		{"negative limit", func(t *testing.T, f *file) {
			f.model(t, "o3").Limits.MaxInput = -5
		}, want{model: "o3", field: "limits.max_input", text: "negative"}},
		{"missing window", func(t *testing.T, f *file) {
			f.model(t, "o3").Limits.Context = 0
		}, want{model: "o3", field: "limits.context", text: "required"}},
		{"implausible window", func(t *testing.T, f *file) {
			f.model(t, "o3").Limits.Context = 200_000_000_000
		}, want{model: "o3", field: "limits.context", text: "implausible"}},

		// Endpoints and efforts.
		{"no endpoint", func(t *testing.T, f *file) {
			f.model(t, "o3").Endpoints = nil
		}, want{model: "o3", field: "endpoints", text: "at least one endpoint"}},
		{"unknown endpoint", func(t *testing.T, f *file) {
			f.model(t, "o3").Endpoints = []Endpoint{"responses", "completions"}
		}, want{model: "o3", field: "endpoints[1]", text: "unknown endpoint"}},
		{"endpoint twice", func(t *testing.T, f *file) {
			f.model(t, "o3").Endpoints = []Endpoint{"responses", "responses"}
		}, want{model: "o3", field: "endpoints[1]", text: "listed twice"}},
		{"anthropic serving responses", func(t *testing.T, f *file) {
			f.model(t, "claude-haiku-4-5").Endpoints = []Endpoint{"messages", "responses"}
		}, want{model: "claude-haiku-4-5", field: "endpoints[1]", text: "does not serve the responses API"}},
		{"unknown effort", func(t *testing.T, f *file) {
			f.model(t, "o3").ReasoningEfforts = []string{"low", "extreme"}
		}, want{model: "o3", field: "reasoning_efforts[1]", text: "unknown effort"}},
		{"effort twice", func(t *testing.T, f *file) {
			f.model(t, "o3").ReasoningEfforts = []string{"low", "low"}
		}, want{model: "o3", field: "reasoning_efforts[1]", text: "listed twice"}},

		// Lifecycle and replacements.
		{"deprecated without replacement", func(t *testing.T, f *file) {
			f.model(t, "o3").Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2025-04-16"}
		}, want{model: "o3", field: "lifecycle.replacement", text: "must name its replacement"}},
		{"deprecated replaced by a deprecated model", func(t *testing.T, f *file) {
			f.model(t, "o4-mini").Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2025-04-16", Replacement: "o3"}
			f.model(t, "o3").Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2025-04-16", Replacement: "gpt-5.5"}
		}, want{model: "o4-mini", field: "lifecycle.replacement", text: `must be active, and "o3" is deprecated`}},
		{"deprecated replaced by a preview model", func(t *testing.T, f *file) {
			f.model(t, "gpt-5.2").Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2025-12-11", Replacement: "gpt-5.3-codex-spark"}
		}, want{model: "gpt-5.2", field: "lifecycle.replacement", text: "ends at a preview model"}},
		{"replacement cycle", func(t *testing.T, f *file) {
			f.model(t, "o4-mini").Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2025-04-16", Replacement: "o3"}
			f.model(t, "o3").Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2025-04-16", Replacement: "o4-mini"}
		}, want{model: "o3", field: "lifecycle.replacement", text: "o3 → o4-mini → o3 is a cycle"}},
		{"retired replaced by a retired model", func(t *testing.T, f *file) {
			f.model(t, "claude-3-opus-20240229").Lifecycle.Replacement = "claude-opus-4-1"
		}, want{model: "claude-3-opus-20240229", field: "lifecycle.replacement", text: "must not be retired"}},
		{"retired chain through a deprecated model", func(t *testing.T, f *file) {
			f.model(t, "claude-opus-4-8").Lifecycle = Lifecycle{Status: StatusDeprecated, Released: "2026-05-28", Replacement: "claude-opus-4-1"}
		}, want{model: "claude-3-opus-20240229", field: "lifecycle.replacement", text: "claude-3-opus-20240229 → claude-opus-4-8 → claude-opus-4-1"}},
		{"replacement unknown", func(t *testing.T, f *file) {
			f.model(t, "codex-mini-latest").Lifecycle.Replacement = "gpt-5-codex-mini"
		}, want{model: "codex-mini-latest", field: "lifecycle.replacement", text: "not a model in the catalog"}},
		{"replacement is an alias", func(t *testing.T, f *file) {
			f.model(t, "o1").Lifecycle.Replacement = "o3-2025-04-16"
		}, want{model: "o1", field: "lifecycle.replacement", text: `an alias; name the canonical id "o3"`}},
		{"replaces itself", func(t *testing.T, f *file) {
			f.model(t, "o1").Lifecycle.Replacement = "o1"
		}, want{model: "o1", field: "lifecycle.replacement", text: "cannot replace itself"}},
		{"active with a replacement", func(t *testing.T, f *file) {
			f.model(t, "o3").Lifecycle.Replacement = "gpt-5.5"
		}, want{model: "o3", field: "lifecycle.replacement", text: "only deprecated and retired"}},
		{"active with a shutdown date", func(t *testing.T, f *file) {
			f.model(t, "o3").Lifecycle.Shutdown = "2027-01-01"
		}, want{model: "o3", field: "lifecycle.status", text: "mark it deprecated"}},
		{"deprecated past its shutdown", func(t *testing.T, f *file) {
			f.model(t, "claude-opus-4-1").Lifecycle.Status = StatusDeprecated
		}, want{model: "claude-opus-4-1", field: "lifecycle.status", text: "mark it retired"}},
		{"unknown status", func(t *testing.T, f *file) {
			f.model(t, "o3").Lifecycle.Status = "legacy"
		}, want{model: "o3", field: "lifecycle.status", text: "not a status"}},
		{"missing release date", func(t *testing.T, f *file) {
			f.model(t, "o3").Lifecycle.Released = ""
		}, want{model: "o3", field: "lifecycle.released", text: "required"}},
		{"malformed date", func(t *testing.T, f *file) {
			f.model(t, "o3").Lifecycle.Released = "2025-4-16"
		}, want{model: "o3", field: "lifecycle.released", text: "not a date"}},
		{"shutdown before deprecation", func(t *testing.T, f *file) {
			f.model(t, "claude-opus-4-0").Lifecycle.Shutdown = "2026-04-01"
		}, want{model: "claude-opus-4-0", field: "lifecycle.shutdown", text: "before the deprecation date"}},
		{"deprecated before release", func(t *testing.T, f *file) {
			f.model(t, "claude-opus-4-0").Lifecycle.Deprecated = "2025-01-01"
		}, want{model: "claude-opus-4-0", field: "lifecycle.deprecated", text: "before the release date"}},

		// Provenance and names.
		{"no source", func(t *testing.T, f *file) {
			f.model(t, "o3").Provenance.Source = " "
		}, want{model: "o3", field: "provenance.source", text: "required"}},
		{"no verified_on", func(t *testing.T, f *file) {
			f.model(t, "o3").Provenance.VerifiedOn = ""
		}, want{model: "o3", field: "provenance.verified_on", text: "required"}},
		{"verified_on not a date", func(t *testing.T, f *file) {
			f.model(t, "o3").Provenance.VerifiedOn = "yesterday"
		}, want{model: "o3", field: "provenance.verified_on", text: "not a date"}},
		{"verified before release", func(t *testing.T, f *file) {
			f.model(t, "o3").Provenance.VerifiedOn = "2025-01-01"
		}, want{model: "o3", field: "provenance.verified_on", text: "before the release date"}},
		{"no lab", func(t *testing.T, f *file) {
			f.model(t, "o3").Lab = ""
		}, want{model: "o3", field: "lab", text: "required"}},
		{"no display name", func(t *testing.T, f *file) {
			f.model(t, "o3").DisplayName = ""
		}, want{model: "o3", field: "display_name", text: "required"}},
		{"no family", func(t *testing.T, f *file) {
			f.model(t, "o3").Family = ""
		}, want{model: "o3", field: "family", text: "required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := embeddedFile(t)
			tt.breakIt(t, f)
			problems := validate(f, nil)
			if !slices.ContainsFunc(problems, tt.want.matches) {
				t.Errorf("no problem %+v among:\n%s", tt.want, render(problems))
			}
		})
	}
}

func render(problems []Problem) string {
	var b strings.Builder
	for _, p := range problems {
		b.WriteString("  " + p.String() + "\n")
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}

// TestCheckReportsEveryProblem: three unrelated breakages in one override
// give (at least) three problems, and Load's error lists them all.
func TestCheckReportsEveryProblem(t *testing.T) {
	t.Parallel()
	f := embeddedFile(t)
	over := file{SchemaVersion: 1}
	m := *f.model(t, "o3")
	m.Prices.CacheRead = m.Prices.Input + 1
	n := *f.model(t, "o4-mini")
	n.Limits.MaxOutput = n.Limits.Context + 1
	p := *f.policy(t, "amp")
	p.Default = "claude-sonnet-5"
	over.Models = []Model{m, n}
	over.Agents = []Policy{p}
	data, err := json.Marshal(over)
	if err != nil {
		t.Fatal(err)
	}
	problems := Check(data)
	for _, w := range []want{
		{model: "o3", field: "prices.cache_read", text: "above the input price"},
		{model: "o4-mini", field: "limits.max_output", text: "above the context window"},
		{agent: "amp", field: "default", text: "not selectable"},
	} {
		if !slices.ContainsFunc(problems, w.matches) {
			t.Errorf("missing %+v in:\n%s", w, render(problems))
		}
	}
	for _, p := range problems {
		if p.Source != sourceOverride {
			t.Errorf("problem %s should be located in the override", p)
		}
	}
	_, err = Load(data)
	if err == nil {
		t.Fatal("Load accepted a broken override")
	}
	for _, p := range problems {
		if !strings.Contains(err.Error(), p.String()) {
			t.Errorf("Load's error does not list %q", p)
		}
	}
}
