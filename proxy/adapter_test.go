package proxy

import (
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/catalog"
)

// TestEveryProviderHasAnAdapter: each row of the catalog's provider table
// has one adapter, mounted at the row's prefix, whose routes cover every
// API style the row lists; and the base URL agents get is under it.
func TestEveryProviderHasAnAdapter(t *testing.T) {
	for _, p := range catalog.Providers() {
		a, ok := adapterFor(p.Name)
		if !ok {
			t.Errorf("provider %s has no proxy adapter", p.Name)
			continue
		}
		if a.prefix != p.PathPrefix {
			t.Errorf("provider %s: adapter prefix %q, table %q", p.Name, a.prefix, p.PathPrefix)
		}
		for _, ep := range p.APIs {
			found := false
			for _, rt := range a.routes {
				found = found || rt.endpoint == ep
			}
			if !found {
				t.Errorf("provider %s lists API %s, which no route of its adapter serves", p.Name, ep)
			}
		}
		if base := BaseURL("http://127.0.0.1:1/", p.Name); !strings.HasPrefix(base, "http://127.0.0.1:1"+p.PathPrefix) {
			t.Errorf("provider %s: agents' base URL %q is not under the prefix %s", p.Name, base, p.PathPrefix)
		}
	}
	if len(adapters) != len(catalog.Providers()) {
		t.Errorf("%d adapters for %d providers", len(adapters), len(catalog.Providers()))
	}
}
