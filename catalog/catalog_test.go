package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// The agents the broker launches; each must have a policy.
var launchedAgents = []string{"claude-code", "codex", "amp", "gemini", "opencode", "copilot", "qwen"}

func TestEmbeddedIsValid(t *testing.T) {
	t.Parallel()
	for _, p := range Check(nil) {
		t.Errorf("embedded catalog: %s", p)
	}
	if _, err := Load(nil); err != nil {
		t.Fatalf("Load(nil): %v", err)
	}
	_ = Embedded() // must not panic
	if len(embeddedJSON) > MaxFileSize {
		t.Errorf("embedded catalog is %d bytes, over MaxFileSize", len(embeddedJSON))
	}
}

func TestEveryLaunchedAgentHasAPolicy(t *testing.T) {
	t.Parallel()
	c := Embedded()
	want := map[string]Endpoint{"claude-code": EndpointMessages, "codex": EndpointResponses, "amp": EndpointMessages,
		"gemini": EndpointGenerateContent, "opencode": EndpointChat, "copilot": EndpointChat, "qwen": EndpointChat}
	for _, agent := range launchedAgents {
		p, err := c.Policy(agent)
		if err != nil {
			t.Fatalf("Policy(%q): %v", agent, err)
		}
		if p.API != want[agent] {
			t.Errorf("%s speaks %s, want %s", agent, p.API, want[agent])
		}
	}
	if got := c.Agents(); !slices.Equal(got, []string{"amp", "claude-code", "codex", "copilot", "gemini", "opencode", "qwen"}) {
		t.Errorf("Agents() = %v", got)
	}
}

// TestPickerPassesProxy is the SAM lesson: every model a picker shows is a
// model the proxy routes, on the agent's own endpoint.
func TestPickerPassesProxy(t *testing.T) {
	t.Parallel()
	c := Embedded()
	for _, agent := range c.Agents() {
		entries, err := c.ForUI(agent)
		if err != nil {
			t.Fatalf("ForUI(%q): %v", agent, err)
		}
		if len(entries) == 0 {
			t.Errorf("%s: empty picker", agent)
		}
		defaults := 0
		for _, e := range entries {
			r, err := c.Resolve(agent, e.ID)
			if err != nil {
				t.Errorf("%s: picker offers %q but Resolve refuses it: %v", agent, e.ID, err)
				continue
			}
			if err := r.CheckEndpoint(r.Endpoint); err != nil {
				t.Errorf("%s: %q: CheckEndpoint(%s): %v", agent, e.ID, r.Endpoint, err)
			}
			if e.Status == StatusRetired {
				t.Errorf("%s: picker offers retired %q", agent, e.ID)
			}
			if e.Default {
				defaults++
				if e.Status != StatusActive {
					t.Errorf("%s: default %q is %s", agent, e.ID, e.Status)
				}
			}
		}
		if defaults != 1 {
			t.Errorf("%s: %d defaults in the picker, want exactly 1", agent, defaults)
		}
		if len(entries) > 0 && !entries[0].Default {
			t.Errorf("%s: the default is not first", agent)
		}
	}
}

// TestEveryAllowedModelResolves: the policy's allowed list and Resolve agree.
func TestEveryAllowedModelResolves(t *testing.T) {
	t.Parallel()
	c := Embedded()
	for _, agent := range c.Agents() {
		p, _ := c.Policy(agent)
		for _, id := range p.Allowed {
			m, _ := c.Lookup(id)
			if m.Lifecycle.Status == StatusRetired {
				continue
			}
			for _, wire := range append([]string{id}, m.Aliases...) {
				r, err := c.Resolve(agent, wire)
				if err != nil {
					t.Errorf("%s: allowed %q: %v", agent, wire, err)
					continue
				}
				if r.Model.ID != id || r.Alias != (wire != id) || r.Endpoint != p.API {
					t.Errorf("%s: Resolve(%q) = %+v", agent, wire, r)
				}
			}
		}
	}
}

// TestRetiredRefusedEverywhere iterates every retired model and alias for
// every agent: the answer is ErrRetired naming an active replacement.
func TestRetiredRefusedEverywhere(t *testing.T) {
	t.Parallel()
	c := Embedded()
	retired := 0
	for _, m := range c.Models() {
		if m.Lifecycle.Status != StatusRetired {
			continue
		}
		retired++
		for _, agent := range c.Agents() {
			for _, wire := range append([]string{m.ID}, m.Aliases...) {
				_, err := c.Resolve(agent, wire)
				var re *RetiredError
				if !errors.Is(err, ErrRetired) || !errors.As(err, &re) {
					t.Errorf("Resolve(%q, %q) = %v, want ErrRetired", agent, wire, err)
					continue
				}
				if re.Model != wire {
					t.Errorf("RetiredError.Model = %q, want %q", re.Model, wire)
				}
				r, ok := c.Lookup(re.Replacement)
				if !ok || r.Lifecycle.Status != StatusActive {
					t.Errorf("%q: replacement %q is not an active model", wire, re.Replacement)
				}
				if !strings.Contains(err.Error(), `use "`+re.Replacement+`"`) {
					t.Errorf("error %q does not name the replacement", err)
				}
			}
		}
	}
	if retired == 0 {
		t.Fatal("no retired model in the catalog: the test proves nothing")
	}
}

func TestUnknownRefused(t *testing.T) {
	t.Parallel()
	c := Embedded()
	unknown := []string{
		"", "llama-3", "gemini-2.5", "o", "ox", "omni", "opus", "sonnet", "haiku",
		"claude-opus-4-6-20260205", // deliberately not an alias (models.md)
		"claude-opus-4-7-20260416", // LiteLLM only
		"claude-4-opus-20250514",   // LiteLLM's legacy ordering, not an Anthropic ID
		"claude-opus-5-5",          // offered by Claude Code, in no trusted source
		"gemini-3.5-flash-lite",    // offered by Gemini CLI 0.61.0, in no trusted source
		"gpt-5.6", "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna", "gpt-6-astra",
		"anthropic.claude-opus-4-6-v1", "claude-opus-4-6@default",
		"CLAUDE-OPUS-4-6", " claude-opus-4-6", "claude-opus-4-6 ", "claude-opus-4-*",
		"claude-opus-4", "gpt-5.5-2026-04-24",
	}
	for _, agent := range c.Agents() {
		for _, id := range unknown {
			if _, err := c.Resolve(agent, id); !errors.Is(err, ErrUnknownModel) {
				t.Errorf("Resolve(%q, %q) = %v, want ErrUnknownModel", agent, id, err)
			}
		}
	}
}

func TestDetectProviderMatchesCatalog(t *testing.T) {
	t.Parallel()
	c := Embedded()
	for _, m := range c.Models() {
		for _, id := range append([]string{m.ID}, m.Aliases...) {
			got, err := DetectProvider(id)
			if err != nil || got != m.Provider {
				t.Errorf("DetectProvider(%q) = %q, %v; the catalog says %q", id, got, err, m.Provider)
			}
		}
	}
	// The IDs the SAM journal and models.md name must be in the catalog,
	// so that the loop above covers them.
	for _, id := range []string{"o3", "o3-mini", "o3-pro", "o4-mini", "gpt-5.5", "gpt-5.4", "codex-mini-latest",
		"gpt-5.3-codex", "chatgpt-4o-latest", "claude-opus-4-6", "claude-3-opus-20240229"} {
		if _, ok := c.Lookup(id); !ok {
			t.Errorf("%q is not in the catalog", id)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	c := Embedded()
	tests := []struct {
		agent, id string
		want      error
		text      string
	}{
		{"claude-code", "claude-3-opus-20240229", ErrRetired, `model "claude-3-opus-20240229" is retired; use "claude-opus-4-8"`},
		{"codex", "claude-3-5-haiku-latest", ErrRetired, `model "claude-3-5-haiku-latest" is retired; use "claude-haiku-4-5"`},
		{"codex", "codex-mini-latest", ErrRetired, `model "codex-mini-latest" is retired; use "gpt-5.4-mini"`},
		{"codex", "o1-mini", ErrRetired, `use "o4-mini"`},
		{"nobody", "gpt-5.5", ErrUnknownAgent, `unknown agent "nobody"`},
		{"codex", "llama-3", ErrUnknownModel, `unknown model "llama-3"`},
		{"claude-code", "gpt-5.5", ErrModelNotAllowed, `agent "claude-code" may not use "gpt-5.5"`},
		{"codex", "claude-opus-4-8", ErrModelNotAllowed, `agent "codex" may not use "claude-opus-4-8"`},
		{"amp", "claude-opus-4-8", ErrModelNotAllowed, `agent "amp" may not use`},
		{"codex", "gpt-5.5-pro", ErrModelNotAllowed, ""},
	}
	for _, tt := range tests {
		_, err := c.Resolve(tt.agent, tt.id)
		if !errors.Is(err, tt.want) {
			t.Errorf("Resolve(%q, %q) = %v, want %v", tt.agent, tt.id, err, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.text) {
			t.Errorf("Resolve(%q, %q) error %q does not contain %q", tt.agent, tt.id, err, tt.text)
		}
	}
}

func TestResolveAliasAndAmp(t *testing.T) {
	t.Parallel()
	c := Embedded()
	r, err := c.Resolve("amp", "claude-opus-4-6")
	if err != nil || r.Alias || r.Model.ID != "claude-opus-4-6" || r.Endpoint != EndpointMessages {
		t.Errorf("amp claude-opus-4-6: %+v, %v", r, err)
	}
	r, err = c.Resolve("claude-code", "claude-haiku-4-5-20251001")
	if err != nil || !r.Alias || r.Model.ID != "claude-haiku-4-5" {
		t.Errorf("dated alias: %+v, %v", r, err)
	}
	r, err = c.Resolve("codex", "gpt-5.5-2026-04-23")
	if err != nil || !r.Alias || r.Model.ID != "gpt-5.5" || r.Model.Provider != ProviderOpenAI {
		t.Errorf("gpt-5.5 dated alias: %+v, %v", r, err)
	}
}

func TestCheckEndpoint(t *testing.T) {
	t.Parallel()
	c := Embedded()
	tests := []struct {
		agent, id string
		ep        Endpoint
		ok        bool
	}{
		{"codex", "gpt-5.5", EndpointResponses, true},
		{"codex", "gpt-5.5", EndpointChat, false},       // the model serves chat, the agent does not speak it
		{"codex", "gpt-5.3-codex", EndpointChat, false}, // responses-only model
		{"codex", "gpt-5.5", EndpointMessages, false},   // not an OpenAI API
		{"claude-code", "claude-opus-4-8", EndpointMessages, true},
		{"claude-code", "claude-opus-4-8", EndpointResponses, false},
		{"amp", "claude-haiku-4-5", EndpointMessages, true},
		{"amp", "claude-haiku-4-5", "", false},
	}
	for _, tt := range tests {
		r, err := c.Resolve(tt.agent, tt.id)
		if err != nil {
			t.Fatalf("Resolve(%q, %q): %v", tt.agent, tt.id, err)
		}
		err = r.CheckEndpoint(tt.ep)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrWrongEndpoint)) {
			t.Errorf("%s %s CheckEndpoint(%q) = %v, want ok=%v", tt.agent, tt.id, tt.ep, err, tt.ok)
		}
	}
	if err := (Resolved{}).CheckEndpoint(EndpointMessages); !errors.Is(err, ErrWrongEndpoint) {
		t.Errorf("zero Resolved: %v", err)
	}
}

// TestDeprecatedAndPreview uses an override, as the embedded data has no
// deprecated model today (every deprecation announced before 2026-11 is
// past its shutdown date).
func TestDeprecatedAndPreview(t *testing.T) {
	t.Parallel()
	override := []byte(`{"schema_version": 1, "models": [
	  {"id": "claude-sonnet-4-6", "provider": "anthropic", "lab": "anthropic", "display_name": "Claude Sonnet 4.6",
	   "family": "claude-sonnet", "limits": {"context": 1000000, "max_output": 64000},
	   "prices": {"input": 3000000, "output": 15000000, "cache_read": 300000, "cache_write_5m": 3750000, "cache_write_1h": 6000000},
	   "endpoints": ["messages"],
	   "lifecycle": {"status": "deprecated", "released": "2026-02-17", "deprecated": "2026-11-01", "shutdown": "2027-02-01", "replacement": "claude-sonnet-5"},
	   "provenance": {"source": "test", "verified_on": "2026-11-29"}}]}`)
	c, err := Load(override)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve("claude-code", "claude-sonnet-4-6")
	if err != nil || !r.Deprecated || r.Replacement != "claude-sonnet-5" {
		t.Errorf("deprecated model: %+v, %v", r, err)
	}
	entries, _ := c.ForUI("claude-code")
	found := false
	for _, e := range entries {
		if e.ID == "claude-sonnet-4-6" {
			found = true
			if e.Status != StatusDeprecated || e.Replacement != "claude-sonnet-5" {
				t.Errorf("picker entry: %+v", e)
			}
		}
	}
	if !found {
		t.Error("deprecated selectable model missing from the picker")
	}
	r, err = c.Resolve("codex", "gpt-5.3-codex-spark")
	if err != nil || r.Model.Lifecycle.Status != StatusPreview || r.Deprecated {
		t.Errorf("preview model: %+v, %v", r, err)
	}
	if c.Hash() == Embedded().Hash() {
		t.Error("an override that changes a model must change the hash")
	}
}

func TestLoadOverride(t *testing.T) {
	t.Parallel()
	// A new model and a replaced policy.
	override := []byte(`{"schema_version": 1,
	  "models": [{"id": "gpt-5.5-pro", "provider": "openai", "lab": "openai", "display_name": "GPT-5.5 pro",
	    "family": "gpt-pro", "limits": {"context": 1050000, "max_input": 922000, "max_output": 128000},
	    "prices": {"input": 30000000, "output": 180000000, "tiers": [{"above_input_tokens": 272000, "input": 60000000, "output": 270000000}]},
	    "endpoints": ["responses"], "lifecycle": {"status": "active", "released": "2026-04-23"},
	    "provenance": {"source": "operator", "verified_on": "2026-11-29"}}],
	  "agents": [{"agent": "codex", "api": "responses", "default": "gpt-5.5-pro",
	    "selectable": ["gpt-5.5-pro", "gpt-5.5"], "allowed": ["gpt-5.5-pro", "gpt-5.5", "gpt-5.4-mini"]},
	    {"agent": "my-agent", "api": "chat", "default": "gpt-4.1", "selectable": ["gpt-4.1"], "allowed": ["gpt-4.1"]}]}`)
	c, err := Load(override)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve("codex", "gpt-5.5-pro"); err != nil {
		t.Errorf("replaced policy: %v", err)
	}
	if _, err := c.Resolve("codex", "gpt-5.4"); !errors.Is(err, ErrModelNotAllowed) {
		t.Errorf("the override replaces the whole policy: gpt-5.4 = %v", err)
	}
	if _, err := c.Resolve("my-agent", "gpt-4.1"); err != nil {
		t.Errorf("added agent: %v", err)
	}
	if len(c.Models()) != len(Embedded().Models()) {
		t.Errorf("replacing a model must not add one: %d vs %d", len(c.Models()), len(Embedded().Models()))
	}
	if _, err := Embedded().Resolve("codex", "gpt-5.4"); err != nil {
		t.Errorf("an override must not change the embedded catalog: %v", err)
	}
	again, _ := Load(override)
	if again.Hash() != c.Hash() {
		t.Error("the hash is not deterministic")
	}
	if len(c.Hash()) != 64 {
		t.Errorf("Hash() = %q, want 64 hex digits", c.Hash())
	}
	for _, in := range []string{`{"schema_version": 1}`, `{}`, ` {"models": [], "agents": null} `} {
		empty, err := Load([]byte(in))
		if err != nil || empty.Hash() != Embedded().Hash() {
			t.Errorf("Load(%s) must give the embedded catalog: %v", in, err)
		}
	}
}

func TestModelsOrderIsStable(t *testing.T) {
	t.Parallel()
	a, b := Embedded().Models(), Embedded().Models()
	if !slices.Equal(a, b) {
		t.Fatal("Models() order changes between calls")
	}
	c, _ := Load([]byte(`{"schema_version": 1}`))
	ids := func(ms []*Model) []string {
		var s []string
		for _, m := range ms {
			s = append(s, m.ID)
		}
		return s
	}
	if !slices.Equal(ids(a), ids(c.Models())) {
		t.Fatal("Models() order differs between loads")
	}
	if _, err := Embedded().Policy("nobody"); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("Policy(nobody) = %v", err)
	}
	if _, err := Embedded().ForUI("nobody"); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("ForUI(nobody) = %v", err)
	}
}

// TestResolveRefusesOffAPIModel: validation keeps such a policy out of any
// loaded catalog, so build one without validation to prove Resolve's own
// defence.
func TestResolveRefusesOffAPIModel(t *testing.T) {
	t.Parallel()
	f := embeddedFile(t)
	p := f.policy(t, "codex")
	p.Allowed = append(p.Allowed, "claude-opus-4-8")
	if problems := validate(f, nil); len(problems) == 0 {
		t.Fatal("the validator accepted a responses agent allowed a messages-only model")
	}
	c, err := build(f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve("codex", "claude-opus-4-8")
	if !errors.Is(err, ErrWrongEndpoint) {
		t.Fatalf("Resolve = %v, want ErrWrongEndpoint", err)
	}
	if !strings.Contains(err.Error(), `model "claude-opus-4-8" serves messages, not the responses API agent "codex" speaks`) {
		t.Errorf("unclear message: %v", err)
	}
}

func TestErrorsQuoteLongIDsShort(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10_000)
	for _, err := range []error{
		func() error { _, err := Embedded().Resolve("codex", long); return err }(),
		func() error { _, err := Embedded().Resolve(long, "o3"); return err }(),
	} {
		if err == nil || len(err.Error()) > 300 {
			t.Errorf("error of %d bytes for a 10,000-byte ID", len(err.Error()))
		}
	}
}

// TestResolveSession binds a session to its model: the chosen model (or an
// alias of it) and the agent's side models pass, another model the agent
// may use is refused with ErrNotSessionModel, and no binding is Resolve.
func TestResolveSession(t *testing.T) {
	t.Parallel()
	c := Embedded()
	tests := []struct {
		agent, chosen, wire string
		wantErr             error
	}{
		{"claude-code", "claude-sonnet-4-6", "claude-sonnet-4-6", nil},
		{"claude-code", "claude-sonnet-4-6", "claude-haiku-4-5", nil},          // the side model
		{"claude-code", "claude-sonnet-4-6", "claude-haiku-4-5-20251001", nil}, // its alias
		{"claude-code", "claude-sonnet-4-6", "claude-opus-4-8", ErrNotSessionModel},
		{"claude-code", "claude-haiku-4-5", "claude-haiku-4-5", nil},
		{"claude-code", "claude-sonnet-4-6", "claude-opus-5-5", ErrUnknownModel},
		{"codex", "gpt-5.4", "gpt-5.4", nil},
		{"codex", "gpt-5.4", "gpt-5.4-mini", ErrNotSessionModel},
		{"codex", "gpt-5.4", "gpt-5.6-luna", ErrUnknownModel},
		{"codex", "", "gpt-5.4-mini", nil}, // no binding: the agent's allowlist
		{"amp", "claude-opus-4-6", "claude-haiku-4-5", nil},
	}
	for _, tt := range tests {
		_, err := c.ResolveSession(tt.agent, tt.chosen, tt.wire)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("ResolveSession(%q, %q, %q) = %v, want %v", tt.agent, tt.chosen, tt.wire, err, tt.wantErr)
		}
	}
}

// TestSideModels: what a session will also use, for the picker and
// session start; never the chosen model itself.
func TestSideModels(t *testing.T) {
	t.Parallel()
	c := Embedded()
	got, err := c.SideModels("claude-code", "claude-opus-4-8")
	if err != nil || len(got) != 1 || got[0].ID != "claude-haiku-4-5" || got[0].Use == "" {
		t.Fatalf("SideModels(claude-code, opus) = %v, %v; want claude-haiku-4-5 with its use", got, err)
	}
	if got, _ := c.SideModels("claude-code", "claude-haiku-4-5"); len(got) != 0 {
		t.Errorf("a haiku session's side models = %v, want none (it is the chosen one)", got)
	}
	entries, err := c.ForUI("claude-code")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want := 1
		if e.ID == "claude-haiku-4-5" {
			want = 0
		}
		if len(e.SideModels) != want {
			t.Errorf("picker entry %s side models = %v, want %d", e.ID, e.SideModels, want)
		}
	}
}
