package catalog

import (
	"errors"
	"testing"
)

func FuzzResolve(f *testing.F) {
	for _, s := range [][2]string{
		{"claude-code", "claude-opus-4-8"}, {"codex", "gpt-5.5-2026-04-23"}, {"amp", "claude-opus-4-6"},
		{"codex", "codex-mini-latest"}, {"claude-code", "claude-3-opus-20240229"}, {"codex", "o3"},
		{"amp", "claude-opus-4-6-20260205"}, {"", ""}, {"codex", "gpt-5.5\x00"}, {"nobody", "o3"},
	} {
		f.Add(s[0], s[1])
	}
	c := Embedded()
	f.Fuzz(func(t *testing.T, agent, wireID string) {
		r, err := c.Resolve(agent, wireID)
		if err != nil {
			if !errors.Is(err, ErrUnknownAgent) && !errors.Is(err, ErrUnknownModel) && !errors.Is(err, ErrRetired) &&
				!errors.Is(err, ErrModelNotAllowed) && !errors.Is(err, ErrWrongEndpoint) {
				t.Fatalf("Resolve(%q, %q): error without a sentinel: %v", agent, wireID, err)
			}
			if r != (Resolved{}) {
				t.Fatalf("Resolve(%q, %q) failed but returned %+v", agent, wireID, r)
			}
			return
		}
		p, perr := c.Policy(agent)
		m, ok := c.Lookup(wireID)
		switch {
		case perr != nil || !ok || m != r.Model:
			t.Fatalf("Resolve(%q, %q) = %+v for an unknown agent or model", agent, wireID, r)
		case r.Model.Lifecycle.Status == StatusRetired:
			t.Fatalf("Resolve(%q, %q) accepted a retired model", agent, wireID)
		case r.Endpoint != p.API || r.CheckEndpoint(p.API) != nil:
			t.Fatalf("Resolve(%q, %q) = %+v: endpoint does not check out", agent, wireID, r)
		case r.Alias != (wireID != r.Model.ID) || r.WireID != wireID:
			t.Fatalf("Resolve(%q, %q) = %+v: alias or wire ID wrong", agent, wireID, r)
		}
		if got, err := DetectProvider(wireID); err != nil || got != r.Model.Provider {
			t.Fatalf("resolved %q, but DetectProvider says %q, %v", wireID, got, err)
		}
	})
}

func FuzzDetectProvider(f *testing.F) {
	for _, s := range []string{"o3", "o3-pro", "o4-mini", "omni-moderation-latest", "omni", "ox", "o", "",
		"gpt-5.5", "codex-mini-latest", "chatgpt-4o-latest", "claude-opus-4-6", "anthropic.claude-opus-4-6-v1",
		"claude-opus-4-6@default", "llama-3", "o3-", "gpt--5"} {
		f.Add(s)
	}
	byWire := Embedded().byWire
	f.Fuzz(func(t *testing.T, id string) {
		got, err := DetectProvider(id)
		again, err2 := DetectProvider(id)
		if got != again || (err == nil) != (err2 == nil) {
			t.Fatalf("DetectProvider(%q) is not deterministic", id)
		}
		if err != nil {
			if !errors.Is(err, ErrUnknownProvider) || got != "" {
				t.Fatalf("DetectProvider(%q) = %q, %v", id, got, err)
			}
		} else if got != ProviderAnthropic && got != ProviderOpenAI {
			t.Fatalf("DetectProvider(%q) = %q", id, got)
		}
		if m, ok := byWire[id]; ok && (err != nil || got != m.Provider) {
			t.Fatalf("DetectProvider(%q) = %q, %v; the catalog says %q", id, got, err, m.Provider)
		}
	})
}

func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		`{"schema_version": 1}`,
		`{"schema_version": 1, "agents": [` + ampJSON + `]}`,
		`{"schema_version": 1, "models": [` + o3JSON + `]}`,
		`{"schema_version": 1, "models": [{"id": "o3", "id": "o3"}]}`,
		`{"schema_version": 1} trailing`,
		`{"schema_version": 1, "models": [{"limits": {"context": 1.5}}]}`,
		`[`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data)
		problems := Check(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCatalog) {
				t.Fatalf("Load error without ErrInvalidCatalog: %v", err)
			}
			if len(problems) == 0 {
				t.Fatalf("Load refused (%v) what Check accepts", err)
			}
			return
		}
		if len(problems) > 0 {
			t.Fatalf("Load accepted what Check refuses: %v", problems)
		}
		// A loaded catalog keeps the UI ⊆ proxy promise.
		for _, agent := range c.Agents() {
			entries, err := c.ForUI(agent)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if _, err := c.Resolve(agent, e.ID); err != nil {
					t.Fatalf("%s: picker offers %q but Resolve says %v", agent, e.ID, err)
				}
			}
		}
		if len(c.Hash()) != 64 {
			t.Fatalf("Hash() = %q", c.Hash())
		}
	})
}
