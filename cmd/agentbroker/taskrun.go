package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentbroker/agentbroker/sessions"
	"github.com/agentbroker/agentbroker/store"
)

// The task run commands talk to a running broker, like the session ones.

// taskRunCommands are `task run`, `task runs` and `task show`.
func taskRunCommands() []*command {
	var req sessions.RunRequest
	var project string
	var detach, jsonOut bool
	// path is the task's runs route; a project given by name is resolved.
	path := func(ctx context.Context, a *apiClient, task string) (string, error) {
		if project == "" {
			return "/v1/tasks/" + url.PathEscape(task) + "/runs", nil
		}
		id, err := a.projectID(ctx, project)
		if err != nil {
			return "", err
		}
		return "/v1/projects/" + url.PathEscape(id) + "/tasks/" + url.PathEscape(task) + "/runs", nil
	}
	oneTask := func(e *env, name string, args []string) (string, error) {
		if len(args) != 1 {
			return "", usageError(e, "usage: agentbroker task "+name+" TASK")
		}
		return args[0], nil
	}
	// taskRuns reads the task named by args and its runs.
	taskRuns := func(ctx context.Context, c *config, e *env, name string, args []string) (sessions.TaskRunsResponse, error) {
		var tr sessions.TaskRunsResponse
		task, err := oneTask(e, name, args)
		if err != nil {
			return tr, err
		}
		a, err := newAPIClient(c)
		if err != nil {
			return tr, err
		}
		p, err := path(ctx, a, task)
		if err != nil {
			return tr, err
		}
		err = a.call(ctx, "GET", p, nil, &tr)
		return tr, err
	}
	return []*command{
		{
			name: "run",
			args: "TASK",
			summary: "run a task: start a session bound to it, whose agent works on it; waits for the run to end " +
				"and exits non-zero unless the task was completed (a credential's secret comes from " + credentialSecretEnv + ")",
			flags: func(fs *flag.FlagSet, c *config) {
				brokerFlags(fs, c)
				fs.StringVar(&project, "project", "", "the task's project, ID or name (default: found from the task)")
				fs.StringVar(&req.Agent, "agent", "", "profile: claude-code, codex, codex-zed, amp or custom (required)")
				fs.StringVar(&req.Model, "model", "", "model ID (see catalog list --agent A)")
				fs.StringVar(&req.Credential.Kind, "credential", "platform-proxy", "none, api-key, oauth-token or platform-proxy")
				fs.BoolVar(&req.Credential.ViaProxy, "via-proxy", false, "with --credential api-key: route the model calls through the broker's proxy")
				fs.StringVar(&req.Cwd, "cwd", "", "the agent's working directory (default: the project's repository path)")
				fs.StringVar(&req.PermissionPolicy, "policy", "allow-project-tools", "ask, allow-project-tools or allow-all")
				fs.BoolVar(&detach, "detach", false, "print the run's session ID and return at once")
			},
			run: func(ctx context.Context, c *config, e *env, args []string) error {
				task, err := oneTask(e, "run", args)
				if err != nil {
					return err
				}
				req.Credential.Secret = e.getenv(credentialSecretEnv)
				a, err := newAPIClient(c)
				if err != nil {
					return err
				}
				p, err := path(ctx, a, task)
				if err != nil {
					return err
				}
				var out sessions.RunResponse
				if err := a.call(ctx, "POST", p, req, &out); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, out.Session.ID)
				fmt.Fprintf(e.stderr, "task %s: run %s started (agent %s, model %s); watch it with: agentbroker session attach %s\n",
					task, out.Session.ID, out.Run.Agent, orDash(out.Run.Model), out.Session.ID)
				if detach {
					return nil
				}
				tr, run, err := waitRun(ctx, a, p, out.Session.ID)
				if err != nil {
					return err
				}
				printRun(e.stdout, tr, run)
				if run.State != store.RunCompleted {
					return fmt.Errorf("run %s %s: %s", run.Session, run.State, run.Reason)
				}
				return nil
			},
		},
		{
			name:    "runs",
			args:    "TASK",
			summary: "list a task's runs: agent, model, state, duration, cost",
			flags: func(fs *flag.FlagSet, c *config) {
				brokerFlags(fs, c)
				fs.StringVar(&project, "project", "", "the task's project, ID or name (default: found from the task)")
				jsonFlag(fs, &jsonOut)
			},
			run: func(ctx context.Context, c *config, e *env, args []string) error {
				tr, err := taskRuns(ctx, c, e, "runs", args)
				if err != nil {
					return err
				}
				if jsonOut {
					if tr.Runs == nil {
						tr.Runs = []sessions.Run{}
					}
					return printJSON(e.stdout, map[string]any{"runs": tr.Runs})
				}
				return printRuns(e.stdout, tr.Runs)
			},
		},
		{
			name:    "show",
			args:    "TASK",
			summary: "show a task: status, notes, output, cost, and its runs",
			flags: func(fs *flag.FlagSet, c *config) {
				brokerFlags(fs, c)
				fs.StringVar(&project, "project", "", "the task's project, ID or name (default: found from the task)")
				jsonFlag(fs, &jsonOut)
			},
			run: func(ctx context.Context, c *config, e *env, args []string) error {
				tr, err := taskRuns(ctx, c, e, "show", args)
				if err != nil {
					return err
				}
				if jsonOut {
					if tr.Runs == nil {
						tr.Runs = []sessions.Run{}
					}
					return printJSON(e.stdout, tr)
				}
				t := tr.Task
				fmt.Fprintf(e.stdout, "task     %s (project %s)\ntitle    %s\nstatus   %s\ncost     %s USD (%d model calls)\n",
					t.ID, t.Project, oneLine(t.Title, 200), t.Status, tr.Usage.CostUSD, tr.Usage.Calls)
				if t.Notes != "" {
					fmt.Fprintf(e.stdout, "notes    %s\n", indent(t.Notes))
				}
				if t.OutputSummary != "" {
					fmt.Fprintf(e.stdout, "output   %s\n", indent(t.OutputSummary))
				}
				fmt.Fprintln(e.stdout)
				return printRuns(e.stdout, tr.Runs)
			},
		},
	}
}

// waitRun polls the task's runs until the run has ended.
func waitRun(ctx context.Context, a *apiClient, path, session string) (sessions.TaskRunsResponse, sessions.Run, error) {
	for {
		var tr sessions.TaskRunsResponse
		if err := a.call(ctx, "GET", path, nil, &tr); err != nil {
			return tr, sessions.Run{}, err
		}
		for _, r := range tr.Runs {
			if r.Session == session && r.State.Final() {
				return tr, r, nil
			}
		}
		select {
		case <-ctx.Done():
			return tr, sessions.Run{}, errors.Join(fmt.Errorf("run %s still running", session), context.Cause(ctx))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printRun(w io.Writer, tr sessions.TaskRunsResponse, r sessions.Run) {
	fmt.Fprintf(w, "run %s %s after %s: %s\n", r.Session, r.State, duration(r.DurationMS), r.Reason)
	fmt.Fprintf(w, "task %s is %s; the run cost %s USD (%d model calls)\n", tr.Task.ID, tr.Task.Status, r.Usage.CostUSD, r.Usage.Calls)
	if r.Notes != "" {
		fmt.Fprintf(w, "notes: %s\n", indent(r.Notes))
	}
	if r.Reply != "" {
		fmt.Fprintf(w, "reply: %s\n", indent(r.Reply))
	}
}

func printRuns(w io.Writer, runs []sessions.Run) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tAGENT\tMODEL\tSTATE\tDURATION\tCOST USD\tCALLS\tSTARTED\tREASON")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Session, r.Agent, orDash(r.Model), r.State,
			duration(r.DurationMS), r.Usage.CostUSD, r.Usage.Calls, r.StartedAt.Local().Format(time.DateTime), oneLine(r.Reason, 80))
	}
	return tw.Flush()
}

func duration(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n         ")
}
