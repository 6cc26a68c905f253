package sessions

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/catalog"
)

// The facts an agent's configuration gets: the input window stops below a
// long-context price tier (Codex's own metadata says 272,000 for GPT-5.5,
// whose tier starts there), else it is the input limit, else the context.
func TestModelFacts(t *testing.T) {
	models := catalog.Embedded()
	for _, tc := range []struct {
		agent, model string
		window       int64
	}{
		{"codex", "gpt-5.5", 272000},      // context 1.05M, input 922k, tier above 272k
		{"codex", "gpt-5.4-mini", 272000}, // input limit, no tier
		{"codex", "o3", 200000},           // context only
	} {
		facts := modelFacts(models, tc.agent, tc.model)
		if len(facts) == 0 || facts[0].ID != tc.model || facts[0].InputWindow != tc.window || len(facts[0].ReasoningEfforts) == 0 {
			t.Errorf("%s: %+v, want window %d", tc.model, facts, tc.window)
		}
	}
	// The side models come after the session's model.
	facts := modelFacts(models, "claude-code", "claude-sonnet-4-6")
	p, _ := models.Policy("claude-code")
	if len(p.SideModels) == 0 || len(facts) != 1+len(p.SideModels) || facts[1].ID != p.SideModels[0].ID {
		t.Errorf("claude-code facts %+v, side models %+v", facts, p.SideModels)
	}
	if modelFacts(models, "", "x") != nil || modelFacts(models, "codex", "") != nil {
		t.Error("facts without an agent or a model")
	}
}

// The agent's own catalog is read once per installed program, by a command
// that sees none of the broker's environment and writes only in a scratch
// directory that is gone afterwards; a failure says what the command said.
func TestAgentCatalogRead(t *testing.T) {
	t.Setenv("AGENTBROKER_TEST_SECRET", "s3cret-in-broker-env")
	install := t.TempDir()
	root := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	script := filepath.Join(install, "dump")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho call >>"+calls+"\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(`touch "$HOME/scratch"; printf '{"models":[],"env":"%s","args":"%s"}' "$(env | tr '\n' ' ')" "$*"` + "\n")
	p := profile.Profile{Name: "test", ModelCatalog: []string{"dump", "debug", "models"}}
	spec := profile.LaunchSpec{InstallDir: install}
	var a agentCatalogs
	ctx := context.Background()
	out, err := a.read(ctx, p, spec, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"args":"debug models"`) || strings.Contains(string(out), "s3cret") {
		t.Fatalf("output %s: want the arguments and none of the broker's environment", out)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("scratch left behind: %v", ents)
	}
	again, err := a.read(ctx, p, spec, root, nil)
	if err != nil || string(again) != string(out) {
		t.Fatalf("second read: %s, %v", again, err)
	}
	if data, _ := os.ReadFile(calls); strings.Count(string(data), "call") != 1 {
		t.Fatalf("the command ran %d times for one program", strings.Count(string(data), "call"))
	}

	// A changed program is read again; its failure is an error with its
	// words, and is remembered too.
	write("echo 'no such command: debug' >&2; exit 3\n")
	_, err = a.read(ctx, p, spec, root, nil)
	if err == nil || !strings.Contains(err.Error(), "no such command: debug") {
		t.Fatalf("failing command: %v", err)
	}

	// Output over the limit is refused.
	write("head -c " + strconv.Itoa(profile.MaxAgentCatalogBytes+10) + " /dev/zero\n")
	var b agentCatalogs
	if _, err := b.read(ctx, p, spec, root, nil); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("oversized catalog: %v", err)
	}

	// A profile without a catalog command reads nothing.
	if out, err := b.read(ctx, profile.Profile{Name: "x"}, spec, root, nil); out != nil || err != nil {
		t.Fatalf("no command: %s %v", out, err)
	}
}
