package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/store/sqlite"
)

func TestFirstParagraph(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain", "One line.\nSecond line.\n\nNext paragraph.", "One line. Second line."},
		{"heading and badges", "# Title\n\n[![ci](x)](y)\n![logo](l.png)\n\nThe tool does X.\n\n## Install", "The tool does X."},
		{"setext heading", "Title\n=====\n\nBody text here.\n", "Title"},
		{"html first", "<p align=center><img src=x></p>\n\nHello world.", "Hello world."},
		{"code fence first", "```sh\nmake\n```\n\nAfter the fence.", "After the fence."},
		{"empty", "", ""},
		{"only headings", "# A\n## B\n", ""},
	}
	for _, tt := range tests {
		if got := firstParagraph(tt.in); got != tt.want {
			t.Errorf("%s: firstParagraph = %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestProjectImport(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "widget-factory")
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Widget factory\n\nMakes widgets\nout of thin air.\n\n## Usage\n")
	write("AGENTS.md", "Run make test before you commit.\n")
	write("CLAUDE.md", "Never push to main.\n")
	write(".git/HEAD", "ref: refs/heads/trunk\n")
	write(".git/config", "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://example.com/w.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n")

	p, err := importProject(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "widget-factory" || p.Description != "Makes widgets out of thin air." || p.RepoPath != dir ||
		p.RepoURL != "https://example.com/w.git" || p.DefaultBranch != "trunk" {
		t.Fatalf("imported %+v", p)
	}
	if !strings.Contains(p.Instructions, "make test") || !strings.Contains(p.Instructions, "Never push") {
		t.Fatalf("instructions = %q; want AGENTS.md and CLAUDE.md", p.Instructions)
	}

	// Through the CLI, into a running broker, and listed.
	dataDir := filepath.Join(t.TempDir(), "data")
	startBroker(t, dataDir)
	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir}
	id, _, err := runCLI(t, env, "", "project", "import", dir)
	if err != nil || !strings.HasPrefix(id, "prj_") {
		t.Fatalf("project import = %q, %v", id, err)
	}
	id = strings.TrimSpace(id)
	out, _, err := runCLI(t, env, "", "project", "list")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "widget-factory") {
		t.Fatalf("project list = %v\n%s", err, out)
	}

	// Tasks and knowledge.
	tid, _, err := runCLI(t, env, "", "task", "add", "--project", id, "--title", "Paint widgets", "--description", "blue")
	if err != nil {
		t.Fatalf("task add: %v", err)
	}
	out, _, err = runCLI(t, env, "", "task", "list", "--project", id)
	if err != nil || !strings.Contains(out, strings.TrimSpace(tid)) || !strings.Contains(out, "queued") {
		t.Fatalf("task list = %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, env, "", "task", "add", "--project", id, "--title", "x", "--status", "done-ish"); err == nil {
		t.Fatalf("task add with an unknown status succeeded")
	}
	if _, _, err := runCLI(t, env, "", "task", "add", "--project", "prj_nope", "--title", "x"); err == nil {
		t.Fatalf("task add to a missing project succeeded")
	}
	body := filepath.Join(t.TempDir(), "body.md")
	os.WriteFile(body, []byte("Widgets are blue on Tuesdays."), 0o600)
	if _, _, err := runCLI(t, env, "", "knowledge", "add", "--project", id, "--title", "Colours", "--body", "@"+body, "--tag", "paint", "--tag", "rules"); err != nil {
		t.Fatalf("knowledge add: %v", err)
	}

	if _, err := importProject(filepath.Join(dir, "README.md")); err == nil {
		t.Fatalf("import of a file succeeded")
	}
}

// TestProjectCreateRepoPath: the CLI stores --repo-path as the absolute
// directory meant (the API refuses relative ones; sessions start there).
func TestProjectCreateRepoPath(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	startBroker(t, dataDir)
	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir}
	out, _, err := runCLI(t, env, "", "project", "create", "--name", "rel", "--repo-path", "testdata/../x")
	if err != nil {
		t.Fatalf("project create = %v", err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Options{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.GetProject(context.Background(), strings.TrimSpace(out))
	wd, _ := os.Getwd()
	if err != nil || p.RepoPath != filepath.Join(wd, "x") {
		t.Fatalf("repo_path stored as %q (%v); want %q", p.RepoPath, err, filepath.Join(wd, "x"))
	}
}
