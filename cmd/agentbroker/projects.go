package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentbroker/agentbroker/internal/adminapi"
	"github.com/agentbroker/agentbroker/sessions"
	"github.com/agentbroker/agentbroker/store"
)

// maxImportFile bounds what project import reads of any one file.
const maxImportFile = 1 << 20

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
	var p adminapi.ProjectPatch
	var jsonOut bool
	str := func(fs *flag.FlagSet, dst **string, name, usage string) {
		fs.Func(name, usage, func(v string) error { *dst = &v; return nil })
	}
	patchFlags := func(fs *flag.FlagSet, c *config) {
		brokerFlags(fs, c)
		str(fs, &p.Name, "name", "project name (required to create; what the CLI also takes for its ID)")
		str(fs, &p.Description, "description", "what the project is")
		str(fs, &p.RepoPath, "repo-path", "path of a checkout on this machine")
		str(fs, &p.RepoURL, "repo-url", "repository URL")
		str(fs, &p.DefaultBranch, "branch", "default branch")
		str(fs, &p.Instructions, "instructions", "rules for agents (markdown); @FILE reads a file")
	}
	// prepare reads @FILE and makes --repo-path absolute: sessions start
	// there, so it must be the directory meant, not one relative to the
	// broker's working directory.
	prepare := func() error {
		if p.Instructions != nil {
			v, err := textArg(*p.Instructions)
			if err != nil {
				return err
			}
			p.Instructions = &v
		}
		if p.RepoPath != nil && *p.RepoPath != "" {
			abs, err := filepath.Abs(*p.RepoPath)
			if err != nil {
				return fmt.Errorf("--repo-path: %w", err)
			}
			p.RepoPath = &abs
		}
		return nil
	}
	return &command{
		name:    "project",
		summary: "create, import, update, show and list projects",
		children: []*command{
			{
				name:    "create",
				summary: "create a project and print its ID",
				flags:   patchFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "project create takes flags only")
					}
					if p.Name == nil || *p.Name == "" {
						return usageError(e, "project create needs --name")
					}
					if err := prepare(); err != nil {
						return err
					}
					return createProject(ctx, c, e, p)
				},
			},
			{
				name:    "import",
				args:    "DIR",
				summary: "create a project from a directory: its name, README's first paragraph, AGENTS.md/CLAUDE.md as instructions",
				flags:   brokerFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker project import DIR")
					}
					imp, err := importProject(args[0])
					if err != nil {
						return err
					}
					return createProject(ctx, c, e, adminapi.ProjectPatch{Name: &imp.Name, Description: &imp.Description,
						RepoPath: &imp.RepoPath, RepoURL: &imp.RepoURL, DefaultBranch: &imp.DefaultBranch, Instructions: &imp.Instructions})
				},
			},
			{
				name:    "update",
				args:    "PROJECT",
				summary: "change a project's name, description, repository or instructions (only the flags given)",
				flags:   patchFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker project update PROJECT [--name N] [--instructions @FILE] …")
					}
					if err := prepare(); err != nil {
						return err
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					id, err := a.projectID(ctx, args[0])
					if err != nil {
						return err
					}
					var out adminapi.ProjectJSON
					if err := a.call(ctx, "PATCH", "/v1/projects/"+url.PathEscape(id), p, &out); err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, out.ID)
					return nil
				},
			},
			{
				name:    "show",
				args:    "PROJECT",
				summary: "show a project (by ID or name)",
				flags:   func(fs *flag.FlagSet, c *config) { brokerFlags(fs, c); jsonFlag(fs, &jsonOut) },
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker project show PROJECT")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					id, err := a.projectID(ctx, args[0])
					if err != nil {
						return err
					}
					var out adminapi.ProjectJSON
					if err := a.call(ctx, "GET", "/v1/projects/"+url.PathEscape(id), nil, &out); err != nil {
						return err
					}
					if jsonOut {
						return printJSON(e.stdout, out)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					for _, kv := range [][2]string{{"project", out.ID}, {"name", out.Name}, {"description", out.Description},
						{"repo path", out.RepoPath}, {"repo URL", out.RepoURL}, {"branch", out.DefaultBranch},
						{"created", out.CreatedAt.Local().Format(time.DateTime)}} {
						if kv[1] != "" {
							fmt.Fprintf(tw, "%s\t%s\n", kv[0], oneLine(kv[1], 200))
						}
					}
					tw.Flush()
					if out.Instructions != "" {
						fmt.Fprintf(e.stdout, "\ninstructions:\n%s\n", strings.TrimSpace(out.Instructions))
					}
					return nil
				},
			},
			{
				name:    "list",
				summary: "list projects",
				flags:   func(fs *flag.FlagSet, c *config) { brokerFlags(fs, c); jsonFlag(fs, &jsonOut) },
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "project list takes flags only")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					var out struct {
						Projects []adminapi.ProjectJSON `json:"projects"`
					}
					if err := a.call(ctx, "GET", "/v1/projects", nil, &out); err != nil {
						return err
					}
					if jsonOut {
						return printJSON(e.stdout, out)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tDESCRIPTION")
					for _, p := range out.Projects {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", p.ID, p.Name, oneLine(p.Description, 60))
					}
					return tw.Flush()
				},
			},
		},
	}
}

func createProject(ctx context.Context, c *config, e *env, p adminapi.ProjectPatch) error {
	a, err := newAPIClient(c)
	if err != nil {
		return err
	}
	var out adminapi.ProjectJSON
	if err := a.call(ctx, "POST", "/v1/projects", p, &out); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, out.ID)
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

// taskProject is the project of a task: --project (an ID or a name) when
// given, else the one the broker finds the task in.
func taskProject(ctx context.Context, a *apiClient, project, task string) (string, error) {
	if project != "" {
		return a.projectID(ctx, project)
	}
	var tr sessions.TaskRunsResponse
	if err := a.call(ctx, "GET", "/v1/tasks/"+url.PathEscape(task)+"/runs", nil, &tr); err != nil {
		return "", err
	}
	return tr.Task.Project, nil
}

func taskCommand() *command {
	var t adminapi.TaskPatch
	var project, status string
	var limit int
	var jsonOut bool
	str := func(fs *flag.FlagSet, dst **string, name, usage string) {
		fs.Func(name, usage, func(v string) error { *dst = &v; return nil })
	}
	statuses := "draft, queued, in_progress, completed, failed or cancelled"
	patchFlags := func(fs *flag.FlagSet, c *config) {
		str(fs, &t.Title, "title", "task title")
		str(fs, &t.Description, "description", "what to do; @FILE reads a file")
		fs.Func("status", statuses, func(v string) error { st := store.TaskStatus(v); t.Status = &st; return nil })
		str(fs, &t.Notes, "notes", "notes on the task; @FILE reads a file")
		str(fs, &t.BudgetUSD, "budget", "the most the task's runs may cost together, in USD (e.g. 5.00; 0 removes it)")
	}
	readFiles := func() error {
		for _, p := range []**string{&t.Description, &t.Notes} {
			if *p != nil {
				v, err := textArg(**p)
				if err != nil {
					return err
				}
				*p = &v
			}
		}
		return nil
	}
	return &command{
		name:    "task",
		summary: "add, update, list, show and run a project's tasks",
		children: append([]*command{
			{
				name:    "add",
				summary: "add a task and print its ID",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&project, "project", "", "project ID or name (required)")
					patchFlags(fs, c)
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "task add takes flags only")
					}
					if project == "" || t.Title == nil {
						return usageError(e, "task add needs --project and --title")
					}
					if err := readFiles(); err != nil {
						return err
					}
					if t.Status == nil {
						st := store.TaskQueued
						t.Status = &st
					}
					a, id, err := projectClient(ctx, c, project)
					if err != nil {
						return err
					}
					var out adminapi.TaskJSON
					if err := a.call(ctx, "POST", "/v1/projects/"+url.PathEscape(id)+"/tasks", t, &out); err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, out.ID)
					return nil
				},
			},
			{
				name:    "update",
				args:    "TASK",
				summary: "change a task's status, title, description, notes or budget (only the flags given)",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&project, "project", "", "the task's project, ID or name (default: found from the task)")
					patchFlags(fs, c)
					jsonFlag(fs, &jsonOut)
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker task update TASK [--status S] [--title T] …")
					}
					if err := readFiles(); err != nil {
						return err
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					pid, err := taskProject(ctx, a, project, args[0])
					if err != nil {
						return err
					}
					var out adminapi.TaskJSON
					if err := a.call(ctx, "PATCH", "/v1/projects/"+url.PathEscape(pid)+"/tasks/"+url.PathEscape(args[0]), t, &out); err != nil {
						return err
					}
					if jsonOut {
						return printJSON(e.stdout, out)
					}
					fmt.Fprintf(e.stdout, "task %s is %s: %s\n", out.ID, out.Status, oneLine(out.Title, 70))
					return nil
				},
			},
			{
				name:    "list",
				summary: "list a project's tasks",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&project, "project", "", "project ID or name (required)")
					fs.StringVar(&status, "status", "", "only tasks with this status: "+statuses)
					fs.IntVar(&limit, "limit", 100, "at most this many (1 to 1000)")
					jsonFlag(fs, &jsonOut)
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "task list takes flags only")
					}
					if project == "" {
						return usageError(e, "task list needs --project")
					}
					a, id, err := projectClient(ctx, c, project)
					if err != nil {
						return err
					}
					q := url.Values{"limit": {fmt.Sprint(limit)}}
					if status != "" {
						q.Set("status", status)
					}
					var out struct {
						Tasks []adminapi.TaskJSON `json:"tasks"`
					}
					if err := a.call(ctx, "GET", "/v1/projects/"+url.PathEscape(id)+"/tasks?"+q.Encode(), nil, &out); err != nil {
						return err
					}
					if jsonOut {
						return printJSON(e.stdout, out)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tSTATUS\tTITLE")
					for _, t := range out.Tasks {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, t.Status, oneLine(t.Title, 70))
					}
					return tw.Flush()
				},
			},
		}, taskRunCommands()...),
	}
}

func knowledgeCommand() *command {
	var k adminapi.KnowledgePatch
	var title, body, project string
	var tags stringsFlag
	var limit int
	var jsonOut bool
	return &command{
		name:    "knowledge",
		summary: "add to and list a project's knowledge",
		children: []*command{
			{
				name:    "add",
				summary: "add a knowledge entry and print its ID",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&project, "project", "", "project ID or name (required)")
					fs.StringVar(&title, "title", "", "title (required)")
					fs.StringVar(&body, "body", "", "the entry (markdown; required); @FILE reads a file")
					fs.Var(&tags, "tag", "a tag (repeat for more)")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "knowledge add takes flags only")
					}
					if project == "" {
						return usageError(e, "knowledge add needs --project")
					}
					b, err := textArg(body)
					if err != nil {
						return err
					}
					tg := []string(tags)
					k = adminapi.KnowledgePatch{Title: &title, Body: &b, Tags: &tg}
					a, id, err := projectClient(ctx, c, project)
					if err != nil {
						return err
					}
					var out adminapi.KnowledgeJSON
					if err := a.call(ctx, "POST", "/v1/projects/"+url.PathEscape(id)+"/knowledge", k, &out); err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, out.ID)
					return nil
				},
			},
			{
				name:    "list",
				summary: "list a project's knowledge entries",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&project, "project", "", "project ID or name (required)")
					fs.IntVar(&limit, "limit", 100, "at most this many (1 to 1000)")
					jsonFlag(fs, &jsonOut)
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "knowledge list takes flags only")
					}
					if project == "" {
						return usageError(e, "knowledge list needs --project")
					}
					a, id, err := projectClient(ctx, c, project)
					if err != nil {
						return err
					}
					var out struct {
						Knowledge []adminapi.KnowledgeJSON `json:"knowledge"`
					}
					q := url.Values{"limit": {fmt.Sprint(limit)}}
					if err := a.call(ctx, "GET", "/v1/projects/"+url.PathEscape(id)+"/knowledge?"+q.Encode(), nil, &out); err != nil {
						return err
					}
					if jsonOut {
						return printJSON(e.stdout, out)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tTITLE\tTAGS\tUPDATED")
					for _, k := range out.Knowledge {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, oneLine(k.Title, 60), oneLine(strings.Join(k.Tags, ","), 40),
							k.UpdatedAt.Local().Format(time.DateTime))
					}
					return tw.Flush()
				},
			},
		},
	}
}
