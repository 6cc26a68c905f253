package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/agentbroker/agentbroker/store"
)

// maxImportFile bounds what project import reads of any one file.
const maxImportFile = 1 << 20

func openStore(ctx context.Context, c *config, e *env) (brokerStore, error) {
	log, err := c.logger(e.stderr)
	if err != nil {
		return nil, err
	}
	st, _, err := openBrokerStore(ctx, c, log)
	return st, err
}

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// textArg is a flag whose value is given inline or, with @path, read from
// a file (as curl does), so long markdown need not sit on a command line.
func textArg(v string) (string, error) {
	if !strings.HasPrefix(v, "@") {
		return v, nil
	}
	b, err := readLimited(v[1:], maxImportFile)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func projectCommand() *command {
	var p store.Project
	return &command{
		name:    "project",
		summary: "create, import and list projects",
		children: []*command{
			{
				name:    "create",
				summary: "create a project and print its ID",
				flags: func(fs *flag.FlagSet, c *config) {
					storeFlags(fs, c)
					fs.StringVar(&p.Name, "name", "", "project name (required)")
					fs.StringVar(&p.Description, "description", "", "what the project is")
					fs.StringVar(&p.RepoPath, "repo-path", "", "path of a checkout on this machine")
					fs.StringVar(&p.RepoURL, "repo-url", "", "repository URL")
					fs.StringVar(&p.DefaultBranch, "branch", "", "default branch")
					fs.StringVar(&p.Instructions, "instructions", "", "rules for agents (markdown); @FILE reads a file")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "project create takes flags only")
					}
					var err error
					if p.Instructions, err = textArg(p.Instructions); err != nil {
						return err
					}
					if p.RepoPath != "" {
						// Sessions start there: the directory meant, not a
						// path relative to wherever the broker runs.
						if p.RepoPath, err = filepath.Abs(p.RepoPath); err != nil {
							return fmt.Errorf("--repo-path: %w", err)
						}
					}
					return createProject(ctx, c, e, p)
				},
			},
			{
				name:    "import",
				args:    "DIR",
				summary: "create a project from a directory: its name, README's first paragraph, AGENTS.md/CLAUDE.md as instructions",
				flags:   storeFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker project import DIR")
					}
					p, err := importProject(args[0])
					if err != nil {
						return err
					}
					return createProject(ctx, c, e, p)
				},
			},
			{
				name:    "list",
				summary: "list projects",
				flags:   storeFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					st, err := openStore(ctx, c, e)
					if err != nil {
						return err
					}
					defer st.Close()
					ps, err := st.ListProjects(ctx)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tDESCRIPTION")
					for _, p := range ps {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", p.ID, p.Name, oneLine(p.Description, 60))
					}
					return tw.Flush()
				},
			},
		},
	}
}

func createProject(ctx context.Context, c *config, e *env, p store.Project) error {
	st, err := openStore(ctx, c, e)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err = st.CreateProject(ctx, p)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, p.ID)
	return nil
}

// importProject reads what a directory says about itself.
func importProject(dir string) (store.Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return store.Project{}, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return store.Project{}, fmt.Errorf("project import: %w", err)
	}
	if !fi.IsDir() {
		return store.Project{}, fmt.Errorf("project import: %s is not a directory", abs)
	}
	p := store.Project{Name: filepath.Base(abs), RepoPath: abs}
	for _, name := range []string{"README.md", "README.markdown", "README.rst", "README.txt", "README"} {
		b, err := readLimited(filepath.Join(abs, name), maxImportFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return store.Project{}, fmt.Errorf("project import: %w", err)
		}
		p.Description = firstParagraph(string(b))
		break
	}
	var parts []string
	for _, name := range []string{"AGENTS.md", "CLAUDE.md"} {
		b, err := readLimited(filepath.Join(abs, name), maxImportFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return store.Project{}, fmt.Errorf("project import: %w", err)
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			parts = append(parts, s)
		}
	}
	p.Instructions = strings.Join(parts, "\n\n")
	p.RepoURL, p.DefaultBranch = gitInfo(abs)
	return p, nil
}

// firstParagraph returns the README's first paragraph of prose: headings,
// badges, HTML and blank lines before it are skipped, and its lines are
// joined with spaces.
func firstParagraph(readme string) string {
	var para []string
	sc := bufio.NewScanner(strings.NewReader(readme))
	sc.Buffer(make([]byte, 0, 64<<10), maxImportFile)
	inFence := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") || strings.HasPrefix(line, "~~~") {
			if len(para) > 0 {
				break
			}
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		skip := line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[![") ||
			strings.HasPrefix(line, "![") || strings.HasPrefix(line, "<") ||
			strings.HasPrefix(line, "===") || strings.HasPrefix(line, "---")
		if skip {
			if len(para) > 0 {
				break
			}
			continue
		}
		para = append(para, line)
	}
	return strings.Join(para, " ")
}

// gitInfo reads the origin URL and the checked-out branch from .git,
// without running git. Either may be empty.
func gitInfo(dir string) (url, branch string) {
	if b, err := readLimited(filepath.Join(dir, ".git", "HEAD"), 4096); err == nil {
		if ref, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "ref: refs/heads/"); ok {
			branch = ref
		}
	}
	b, err := readLimited(filepath.Join(dir, ".git", "config"), maxImportFile)
	if err != nil {
		return "", branch
	}
	inOrigin := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inOrigin = line == `[remote "origin"]`
			continue
		}
		if k, v, ok := strings.Cut(line, "="); inOrigin && ok && strings.TrimSpace(k) == "url" {
			url = strings.TrimSpace(v)
		}
	}
	return url, branch
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func taskCommand() *command {
	var t store.Task
	var status string
	var limit int
	return &command{
		name:    "task",
		summary: "add, list, show and run a project's tasks",
		children: append([]*command{
			{
				name:    "add",
				summary: "add a task and print its ID",
				flags: func(fs *flag.FlagSet, c *config) {
					storeFlags(fs, c)
					fs.StringVar(&t.ProjectID, "project", "", "project ID (required)")
					fs.StringVar(&t.Title, "title", "", "task title (required)")
					fs.StringVar(&t.Description, "description", "", "what to do; @FILE reads a file")
					fs.StringVar(&status, "status", string(store.TaskQueued), "draft, queued, in_progress, completed, failed or cancelled")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "task add takes flags only")
					}
					var err error
					if t.Description, err = textArg(t.Description); err != nil {
						return err
					}
					t.Status = store.TaskStatus(status)
					st, err := openStore(ctx, c, e)
					if err != nil {
						return err
					}
					defer st.Close()
					t, err = st.CreateTask(ctx, t)
					if err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, t.ID)
					return nil
				},
			},
			{
				name:    "list",
				summary: "list a project's tasks",
				flags: func(fs *flag.FlagSet, c *config) {
					storeFlags(fs, c)
					fs.StringVar(&t.ProjectID, "project", "", "project ID (required)")
					fs.StringVar(&status, "status", "", "only tasks with this status")
					fs.IntVar(&limit, "limit", 100, "at most this many")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "task list takes flags only")
					}
					st, err := openStore(ctx, c, e)
					if err != nil {
						return err
					}
					defer st.Close()
					ts, err := st.ListTasks(ctx, t.ProjectID, store.TaskFilter{Status: store.TaskStatus(status), Limit: limit})
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tSTATUS\tTITLE")
					for _, t := range ts {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, t.Status, oneLine(t.Title, 70))
					}
					return tw.Flush()
				},
			},
		}, taskRunCommands()...),
	}
}

func knowledgeCommand() *command {
	var k store.Knowledge
	var tags stringsFlag
	return &command{
		name:    "knowledge",
		summary: "add to a project's knowledge",
		children: []*command{
			{
				name:    "add",
				summary: "add a knowledge entry and print its ID",
				flags: func(fs *flag.FlagSet, c *config) {
					storeFlags(fs, c)
					fs.StringVar(&k.ProjectID, "project", "", "project ID (required)")
					fs.StringVar(&k.Title, "title", "", "title (required)")
					fs.StringVar(&k.Body, "body", "", "the entry (markdown; required); @FILE reads a file")
					fs.Var(&tags, "tag", "a tag (repeat for more)")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "knowledge add takes flags only")
					}
					var err error
					if k.Body, err = textArg(k.Body); err != nil {
						return err
					}
					k.Tags = tags
					st, err := openStore(ctx, c, e)
					if err != nil {
						return err
					}
					defer st.Close()
					k, err = st.AddKnowledge(ctx, k)
					if err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, k.ID)
					return nil
				},
			},
		},
	}
}
