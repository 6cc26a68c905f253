package main

import (
	"testing"

	"github.com/agentbroker/agentbroker/acp/profile"
)

// TestAgentSetFromProfiles: serve offers every profile the broker installs
// (from the profile table, not a list of its own), and amp and custom only
// when their commands are configured; the console lists the same set.
func TestAgentSetFromProfiles(t *testing.T) {
	c := defaultConfig(func(string) string { return "" })
	c.DataDir = t.TempDir()
	agents := c.agentConfigs()
	for _, p := range profile.All() {
		_, ok := agents[p.Name]
		if ok != p.Installable() {
			t.Errorf("%s: offered %v, installable %v", p.Name, ok, p.Installable())
		}
	}
	c.AmpCommand, c.CustomAgent = "amp-acp", "refagent"
	agents = c.agentConfigs()
	listed := consoleAgents(agents)
	if len(listed) != len(agents) {
		t.Errorf("console lists %d agents, serve configures %d", len(listed), len(agents))
	}
	for _, a := range listed {
		if a.Title == "" {
			t.Errorf("console agent %s has no title", a.Name)
		}
	}
}
