package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// agents install runs npm for the pinned package with progress shown, and
// agents list then says the profile is installed at its pinned version; a
// wrong version installed is not "installed". npm is a stand-in script that
// lays the package out as npm would (the real one runs in the examples).
func TestAgentsInstallAndList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	agentsDir := filepath.Join(dir, "agents")
	log := filepath.Join(dir, "npm.log")
	npm := filepath.Join(dir, "npm")
	script := `#!/bin/sh
echo "$@" >>` + log + `
# npm install --prefix DIR --no-audit --no-fund --loglevel=http PKG@VERSION
prefix=$3; pkg=$7; name=${pkg%@*}; version=${pkg##*@}
mkdir -p "$prefix/node_modules/$name"
printf '{"name":"%s","version":"%s"}' "$name" "${FAKE_VERSION:-$version}" >"$prefix/node_modules/$name/package.json"
echo "added 1 package"
`
	if err := os.WriteFile(npm, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": dir, "AGENTBROKER_DATA_DIR": filepath.Join(dir, "data")}

	out, _, err := runCLI(t, env, "", "agents", "list", "--agents-dir", agentsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"qwen", "@qwen-code/qwen-code", "0.24.4", "opencode-ai", "1.18.33", "@github/copilot", "1.0.102"} {
		if !strings.Contains(out, want) {
			t.Errorf("agents list lacks %q:\n%s", want, out)
		}
	}
	if line := lineOf(out, "qwen "); !strings.Contains(line, "no (missing node_modules/@qwen-code/qwen-code/cli.js)") {
		t.Errorf("qwen before install: %q", line)
	}

	// The stand-in npm writes package.json; the entry point is the package's.
	entry := filepath.Join(agentsDir, "node_modules/@qwen-code/qwen-code/cli.js")
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(entry, []byte("// cli\n"), 0o644)
	out, _, err = runCLI(t, env, "", "agents", "install", "--agents-dir", agentsDir, "--npm", npm, "qwen")
	if err != nil {
		t.Fatalf("agents install: %v\n%s", err, out)
	}
	if !strings.Contains(out, "[1/1] qwen: npm install @qwen-code/qwen-code@0.24.4 into "+agentsDir) ||
		!strings.Contains(out, "added 1 package") || !strings.Contains(out, "[1/1] qwen: installed in") {
		t.Errorf("install shows no progress:\n%s", out)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "install --prefix "+agentsDir+" --no-audit --no-fund --loglevel=http @qwen-code/qwen-code@0.24.4") {
		t.Errorf("npm ran as %q", b)
	}
	out, _, _ = runCLI(t, env, "", "agents", "list", "--agents-dir", agentsDir)
	if line := lineOf(out, "qwen "); !strings.HasSuffix(strings.TrimSpace(line), "yes") {
		t.Errorf("qwen after install: %q", line)
	}
	out, _, _ = runCLI(t, env, "", "agents", "list", "--agents-dir", agentsDir, "--json")
	var listed []agentInstall
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("agents list --json: %v\n%s", err, out)
	}
	byName := map[string]agentInstall{}
	for _, a := range listed {
		byName[a.Profile] = a
	}
	if q := byName["qwen"]; !q.Installed || q.Version != "0.24.4" || q.Package != "@qwen-code/qwen-code" {
		t.Errorf("agents list --json qwen = %+v", q)
	}
	if g := byName["gemini"]; g.Installed || g.Version != "0.61.0" || !strings.Contains(g.Why, "missing") {
		t.Errorf("agents list --json gemini = %+v", g)
	}
	if c := byName["custom"]; c.Installed || c.Package != "" {
		t.Errorf("agents list --json custom = %+v", c)
	}
	// Installed again: nothing to do.
	out, _, _ = runCLI(t, env, "", "agents", "install", "--agents-dir", agentsDir, "--npm", npm, "qwen")
	if !strings.Contains(out, "already installed") {
		t.Errorf("second install:\n%s", out)
	}

	// Another version in place is not the pinned one.
	os.WriteFile(filepath.Join(agentsDir, "node_modules/@qwen-code/qwen-code/package.json"), []byte(`{"version":"0.1.0"}`), 0o644)
	out, _, _ = runCLI(t, env, "", "agents", "list", "--agents-dir", agentsDir)
	if line := lineOf(out, "qwen "); !strings.Contains(line, "version 0.1.0 installed, 0.24.4 pinned") {
		t.Errorf("qwen at another version: %q", line)
	}

	// Unknown and command-configured profiles are refused.
	if _, stderr, err := runCLI(t, env, "", "agents", "install", "--agents-dir", agentsDir, "--npm", npm, "nonesuch"); err == nil ||
		!strings.Contains(stderr, "unknown agent profile") {
		t.Errorf("install nonesuch = %v, %s", err, stderr)
	}
	if _, stderr, err := runCLI(t, env, "", "agents", "install", "--agents-dir", agentsDir, "--npm", npm, "custom"); err == nil ||
		!strings.Contains(stderr, "nothing to install") {
		t.Errorf("install custom = %v, %s", err, stderr)
	}
}

func lineOf(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
