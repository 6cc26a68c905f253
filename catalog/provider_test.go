package catalog

import (
	"strings"
	"testing"
)

// TestProviderTable: every row is complete and distinct (name, prefix, key
// variable, API styles, ID prefixes), ProviderOf finds the row serving each
// API style, and every model's provider is a row that serves its endpoints.
func TestProviderTable(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	unique := func(kind, v string, p Provider) {
		if prev, ok := seen[kind+":"+v]; ok {
			t.Errorf("%s %q of %s is also %s's", kind, v, p, prev)
		}
		seen[kind+":"+v] = string(p)
	}
	for _, p := range Providers() {
		if p.Name == "" || len(p.APIs) == 0 || p.AuthHeader == "" || p.ErrorShape == "" || p.Usage == "" || p.KeyEnv == "" ||
			!strings.HasPrefix(p.DefaultUpstream, "https://") || len(p.IDPrefixes) == 0 {
			t.Errorf("incomplete row %+v", p)
		}
		if !strings.HasPrefix(p.PathPrefix, "/proxy/") || !strings.HasPrefix(p.AgentBasePath, p.PathPrefix) {
			t.Errorf("%s: prefix %q, agents' base path %q", p.Name, p.PathPrefix, p.AgentBasePath)
		}
		unique("name", string(p.Name), p.Name)
		unique("prefix", p.PathPrefix, p.Name)
		unique("key variable", p.KeyEnv, p.Name)
		for _, ep := range p.APIs {
			unique("API", string(ep), p.Name)
			if got, ok := ProviderOf(ep); !ok || got != p.Name {
				t.Errorf("ProviderOf(%s) = %s, %v; want %s", ep, got, ok, p.Name)
			}
		}
		for _, id := range p.IDPrefixes {
			unique("ID prefix", id, p.Name)
		}
		if q, ok := LookupProvider(p.Name); !ok || q.PathPrefix != p.PathPrefix {
			t.Errorf("LookupProvider(%s) = %+v, %v", p.Name, q, ok)
		}
	}
	if _, ok := ProviderOf("bogus"); ok {
		t.Error("ProviderOf(bogus) found a provider")
	}
	for _, m := range Embedded().Models() {
		p, ok := LookupProvider(m.Provider)
		if !ok {
			t.Errorf("%s: provider %s not in the table", m.ID, m.Provider)
			continue
		}
		for _, ep := range m.Endpoints {
			if !p.Serves(ep) {
				t.Errorf("%s: endpoint %s not served by %s", m.ID, ep, p.Name)
			}
		}
	}
	// The slices handed out are copies.
	Providers()[0].APIs[0] = "mutated"
	if Providers()[0].APIs[0] == "mutated" {
		t.Error("Providers shares the table's slices")
	}
}
