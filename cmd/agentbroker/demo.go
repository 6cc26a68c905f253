package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/internal/adminapi"
	"github.com/agentbroker/agentbroker/internal/refagent"
	"github.com/agentbroker/agentbroker/sessions"
)

// refagentCommand runs our reference ACP agent on stdio: the demo's agent,
// and anyone's who wants an agent that needs no network and no key.
func refagentCommand() *command {
	return &command{
		name:    "refagent",
		stdio:   true,
		summary: "run the reference ACP agent on stdio (for the demo and tests; no model, no network)",
		run: func(ctx context.Context, _ *config, e *env, args []string) error {
			if len(args) > 0 {
				return usageError(e, "refagent takes no arguments")
			}
			opts := refagent.OptionsFromEnv(e.getenv)
			opts.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
			err := refagent.Run(ctx, e.stdin, e.stdout, opts)
			if err != nil && ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
}

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run a broker, a demo project and a session with the reference agent, and show it live",
		flags: func(fs *flag.FlagSet, c *config) {
			fs.StringVar(&c.DataDir, "data-dir", "", "keep the demo's data here (default: a temporary directory, removed at the end)")
			fs.StringVar(&c.LogLevel, "log-level", "warn", "the broker's log level (its log goes to stderr)")
		},
		run: func(ctx context.Context, c *config, e *env, args []string) error {
			if len(args) > 0 {
				return usageError(e, "demo takes flags only")
			}
			return demo(ctx, c, e)
		},
	}
}

// demoMarker is a value that exists only in the demo task: if the agent's
// reply carries it, the agent read the task through our MCP tool.
const demoMarker = "the launch code is TANGERINE-42"

// demoAgentCopy copies the broker's binary into the demo's scratch
// directory, which it opens for search (0711) so that the agent user can
// run it.
func demoAgentCopy(self, scratch string) (string, error) {
	if err := os.Chmod(scratch, 0o711); err != nil {
		return "", err
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	path := filepath.Join(scratch, "agentbroker")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", err
	}
	return path, dst.Close()
}

// demo runs the whole path a person would: a broker on loopback, a
// project with instructions, tasks and knowledge, a session with the
// reference agent, a prompt that makes it look a task up through MCP, and
// the session live on the terminal. It fails unless the tool was called
// and its result reached the reply.
func demo(ctx context.Context, c *config, e *env) error {
	// A scratch directory for what the agent may touch: its session's
	// directory and its workspace, apart from the data directory. When the
	// broker runs as root the agent runs as another user, who must reach
	// them and the agent's program, so the program is copied there.
	scratch, err := os.MkdirTemp("", "agentbroker-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	if c.DataDir == "" {
		c.DataDir = filepath.Join(scratch, "data")
	}
	if c.SessionsDir == "" {
		c.SessionsDir = filepath.Join(scratch, "sessions")
	}
	agentUser, err := agentUser(c.AgentUser)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cwd := filepath.Join(scratch, "workspace")
	if err := os.Mkdir(cwd, 0o700); err != nil {
		return err
	}
	if agentUser != nil {
		if self, err = demoAgentCopy(self, scratch); err != nil {
			return err
		}
		if err := os.Chown(cwd, agentUser.UID, agentUser.GID); err != nil {
			return err
		}
	}
	c.Listen = "127.0.0.1:0"
	c.CustomAgent = self + " refagent"
	ready := make(chan string, 1)
	c.onReady = func(u string) { ready <- u }
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- serve(serveCtx, c, e) }()
	defer func() {
		stopServe()
		<-served
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-served:
		return fmt.Errorf("demo: the broker did not start: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("demo: the broker did not start in 30s")
	}
	c.BrokerURL = base
	a, err := newAPIClient(c)
	if err != nil {
		return err
	}
	out := e.stdout
	fmt.Fprintf(out, "broker on %s, data in %s\n", base, c.DataDir)

	// The project an agent will work on.
	var p adminapi.ProjectJSON
	if err := a.call(ctx, "POST", "/v1/projects", map[string]string{
		"name":         "demo-rocket",
		"description":  "A small rocket, to show agentbroker end to end.",
		"instructions": "Look tasks up with the project tools before you answer. Quote what you find.",
	}, &p); err != nil {
		return err
	}
	var task adminapi.TaskJSON
	if err := a.call(ctx, "POST", "/v1/projects/"+p.ID+"/tasks", map[string]string{
		"title": "Prepare the launch", "description": "Check the fuel, then " + demoMarker + ".", "status": "queued",
	}, &task); err != nil {
		return err
	}
	if err := a.call(ctx, "POST", "/v1/projects/"+p.ID+"/tasks", map[string]string{
		"title": "Paint the fins", "status": "draft",
	}, nil); err != nil {
		return err
	}
	if err := a.call(ctx, "POST", "/v1/projects/"+p.ID+"/knowledge", map[string]any{
		"title": "Fuel", "body": "The rocket burns kerosene and liquid oxygen.", "tags": []string{"fuel"},
	}, nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "project %s with 2 tasks and 1 knowledge entry\n", p.ID)

	var created sessions.CreateResponse
	if err := a.call(ctx, "POST", "/v1/sessions", sessions.CreateRequest{
		Project: p.ID, Agent: "custom", Cwd: cwd, PermissionPolicy: "allow-project-tools", Title: "demo",
	}, &created); err != nil {
		return err
	}
	id := created.Session.ID
	fmt.Fprintf(out, "session %s started with the reference agent\n\n", id)

	// Watch it as a person would, while it works.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() {
		watched <- attach(watchCtx, a, id, 0, &env{stdin: strings.NewReader(""), stdout: out, stderr: io.Discard, getenv: e.getenv})
	}()

	var turn sessions.TurnResult
	prompt := fmt.Sprintf(`call get_task with {"id":%q}`, task.ID)
	promptErr := a.call(ctx, "POST", "/v1/sessions/"+url.PathEscape(id)+"/prompt", sessions.PromptRequest{Text: prompt, Wait: true}, &turn)

	var info sessions.Info
	stopErr := a.call(ctx, "DELETE", "/v1/sessions/"+url.PathEscape(id), nil, &info)
	select {
	case <-watched:
	case <-time.After(10 * time.Second):
		stopWatch()
		<-watched
	}
	stopWatch()

	// What the broker itself recorded: the MCP call, and the reply.
	calls, eventsErr := mcpCalls(ctx, a, id)
	if err := demoVerdict(promptErr, eventsErr, calls, turn.Reply, stopErr); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nOK: the agent called get_task through MCP (%d call), its reply quotes the task, and the session is %s.\n", calls, info.State)
	return nil
}

// mcpCalls counts the session's successful MCP tool calls, from its event
// log as the broker recorded it.
func mcpCalls(ctx context.Context, a *apiClient, id string) (int, error) {
	frames, err := readEvents(ctx, a, id, math.MaxInt64) // the session has ended
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range frames {
		if f.Type == "tool_call_mcp" && strings.Contains(string(f.Data), `"outcome":"ok"`) &&
			strings.Contains(string(f.Data), `"get_task"`) {
			n++
		}
	}
	return n, nil
}

// demoVerdict decides the demo's outcome from what the broker recorded: it
// fails unless the prompt ran, the event log shows a successful get_task
// call, the reply carries the task's value, and the session stopped.
func demoVerdict(promptErr, eventsErr error, calls int, reply string, stopErr error) error {
	switch {
	case promptErr != nil:
		return fmt.Errorf("demo: the prompt failed: %w", promptErr)
	case eventsErr != nil:
		return fmt.Errorf("demo: reading the session's events: %w", eventsErr)
	case calls == 0:
		return errors.New("demo: FAILED: the agent never called the MCP tool")
	case !strings.Contains(reply, demoMarker):
		return fmt.Errorf("demo: FAILED: the reply does not carry the task's content: %q", reply)
	case stopErr != nil:
		return fmt.Errorf("demo: stopping the session: %w", stopErr)
	}
	return nil
}
