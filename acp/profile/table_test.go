package profile

import (
	"testing"
)

// TestProfileTable: every profile carries what the broker derives from it
// (its title, its config writer, its credential kinds; an installable one
// its package and entry point), and names unique.
func TestProfileTable(t *testing.T) {
	seen := map[Name]bool{}
	for _, p := range All() {
		if seen[p.Name] {
			t.Errorf("profile %s listed twice", p.Name)
		}
		seen[p.Name] = true
		if p.Title == "" {
			t.Errorf("%s: no title", p.Name)
		}
		if p.configure == nil {
			t.Errorf("%s: no config writer", p.Name)
		}
		if len(p.Credentials) == 0 {
			t.Errorf("%s: accepts no credential kind", p.Name)
		}
		if p.Installable() && p.Entry == "" {
			t.Errorf("%s: installable without an entry point", p.Name)
		}
		if !p.Installable() && !p.NeedsCommand {
			t.Errorf("%s: neither installable nor started by a command", p.Name)
		}
		if p.Accepts(KindOAuthToken) != (p.checkOAuth != nil || p.Name == ClaudeCode) {
			t.Errorf("%s: an oauth-token profile other than Claude Code's plain token must say how to check it", p.Name)
		}
	}
}
