package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/sessions"
)

// The session commands talk to a running broker over its HTTP API, with
// the admin token from the data directory (or --token-file).

// credentialSecretEnv holds an agent credential's secret for `session
// start --credential api-key|oauth-token`: never a flag.
const credentialSecretEnv = "AGENTBROKER_CREDENTIAL_SECRET"

type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// wsBase is the broker's URL with the WebSocket scheme.
func (a *apiClient) wsBase() (string, error) {
	u, err := url.Parse(a.base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("broker URL %q: want http or https", a.base)
	}
	return u.String(), nil
}

func brokerFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "the broker's data directory (its URL and admin token are there)")
	fs.StringVar(&c.BrokerURL, "url", c.BrokerURL, "the running broker's URL (default: the one it wrote in <data-dir>/"+BrokerURLFile+")")
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "the admin token file (default <data-dir>/admin-token)")
}

func newAPIClient(c *config) (*apiClient, error) {
	base, err := c.brokerURL()
	if err != nil {
		return nil, err
	}
	path := c.TokenFile
	if path == "" {
		path = filepath.Join(c.DataDir, AdminTokenFile)
	}
	tok, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin token (is the broker running with this --data-dir?): %w", err)
	}
	return &apiClient{base: base, token: tok, http: &http.Client{}}, nil
}

// call sends a JSON request and decodes a JSON answer; an error status
// becomes an error carrying the API's description.
func (a *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("broker at %s: %w", a.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error, e.Description)
		}
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func sessionCommand() *command {
	var req sessions.CreateRequest
	var state, project string
	var after int64
	var jsonOut bool
	return &command{
		name:    "session",
		summary: "start, prompt, watch, list and stop agent sessions on a running broker",
		children: []*command{
			{
				name:    "start",
				summary: "start a session; prints its ID (a credential's secret comes from " + credentialSecretEnv + ")",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&req.Project, "project", "", "project ID or name (required)")
					fs.StringVar(&req.Agent, "agent", "", "profile: claude-code, codex, codex-zed, amp or custom (required)")
					fs.StringVar(&req.Model, "model", "", "model ID (see catalog list --agent A)")
					fs.StringVar(&req.Credential.Kind, "credential", "platform-proxy", "none, api-key, oauth-token or platform-proxy")
					fs.BoolVar(&req.Credential.ViaProxy, "via-proxy", false, "with --credential api-key: route the model calls through the broker's proxy with that key (catalog enforced, usage counted)")
					fs.StringVar(&req.Cwd, "cwd", "", "the agent's working directory (default: the project's repository path)")
					fs.StringVar(&req.PermissionPolicy, "policy", "allow-project-tools", "ask, allow-project-tools or allow-all")
					fs.StringVar(&req.Prompt, "prompt", "", "a first prompt")
					fs.StringVar(&req.Title, "title", "", "a title for the session")
					fs.StringVar(&req.Task, "task", "", "the project's task the session works on (its cost counts against the task)")
					fs.Func("budget", "the most the session's model calls may cost, in USD (e.g. 5.00); the proxy refuses calls past it", func(v string) error {
						req.BudgetUSD = sessions.USD(v)
						return nil
					})
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "session start takes flags only")
					}
					req.Credential.Secret = e.getenv(credentialSecretEnv)
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					if req.Project, err = a.projectID(ctx, req.Project); err != nil {
						return err
					}
					var out sessions.CreateResponse
					if err := a.call(ctx, "POST", "/v1/sessions", req, &out); err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, out.Session.ID)
					fmt.Fprintf(e.stderr, "session %s is %s; watch it with: agentbroker session attach %s\n",
						out.Session.ID, out.Session.State, out.Session.ID)
					if out.Session.Model != "" {
						fmt.Fprintf(e.stderr, "model %s%s\n", out.Session.Model, sideModelsText(out.Session.SideModels))
					}
					if out.Session.MCP != nil && out.Session.MCP.Status != "" && out.Session.MCP.Status != "connected" {
						fmt.Fprintf(e.stderr, "warning: the agent's MCP connection is %s\n", out.Session.MCP.Status)
					}
					if out.FirstPromptError != "" {
						return fmt.Errorf("first prompt: %s", out.FirstPromptError)
					}
					return nil
				},
			},
			{
				name:    "prompt",
				args:    "ID TEXT",
				summary: "send a prompt, wait for the turn to end, and print the reply (text that starts with - goes after --); Ctrl-C cancels the turn",
				flags:   brokerFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) < 2 {
						return usageError(e, "usage: agentbroker session prompt ID TEXT")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					var out sessions.TurnResult
					err = a.call(ctx, "POST", "/v1/sessions/"+url.PathEscape(args[0])+"/prompt",
						sessions.PromptRequest{Text: strings.Join(args[1:], " "), Wait: true}, &out)
					if err != nil && ctx.Err() != nil {
						// Ctrl-C: the turn is cancelled too, not left running
						// unwatched.
						cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
						defer cancel()
						if cerr := a.call(cctx, "POST", "/v1/sessions/"+url.PathEscape(args[0])+"/cancel", nil, nil); cerr == nil {
							fmt.Fprintf(e.stderr, "interrupted: the turn was cancelled\n")
						}
						return err
					}
					if err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, out.Reply)
					if out.Failed || out.Error != "" {
						return fmt.Errorf("turn %d failed: %s", out.Turn, out.Error)
					}
					fmt.Fprintf(e.stderr, "(turn %d: %s)\n", out.Turn, out.StopReason)
					return nil
				},
			},
			{
				name:    "list",
				summary: "list sessions",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.StringVar(&project, "project", "", "only this project's sessions (ID or name)")
					fs.StringVar(&state, "state", "", "only sessions in this state")
					jsonFlag(fs, &jsonOut)
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "session list takes flags only")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					q := url.Values{}
					if project != "" {
						id, err := a.projectID(ctx, project)
						if err != nil {
							return err
						}
						q.Set("project", id)
					}
					if state != "" {
						q.Set("state", state)
					}
					var out struct {
						Sessions []sessions.Info `json:"sessions"`
					}
					if err := a.call(ctx, "GET", "/v1/sessions?"+q.Encode(), nil, &out); err != nil {
						return err
					}
					if jsonOut {
						if out.Sessions == nil {
							out.Sessions = []sessions.Info{}
						}
						return printJSON(e.stdout, out)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tPROJECT\tAGENT\tMODEL\tSTATE\tCOST USD\tBUDGET USD\tCREATED")
					for _, s := range out.Sessions {
						cost, budget := "-", "-"
						if s.Usage != nil {
							cost = s.Usage.CostUSD
						}
						if s.BudgetUSD != "" {
							budget = s.BudgetUSD
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Project, s.Agent, s.Model, s.State,
							cost, budget, s.CreatedAt.Local().Format(time.DateTime))
					}
					return tw.Flush()
				},
			},
			{
				name:    "show",
				args:    "ID",
				summary: "show a session: state, agent, model, turn, pending permissions, cost",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					jsonFlag(fs, &jsonOut)
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker session show ID")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					var info sessions.Info
					if err := a.call(ctx, "GET", "/v1/sessions/"+url.PathEscape(args[0]), nil, &info); err != nil {
						return err
					}
					if jsonOut {
						return printJSON(e.stdout, info)
					}
					printSession(e.stdout, info)
					return nil
				},
			},
			{
				name:    "cancel",
				args:    "ID",
				summary: "cancel the turn a session is in; the session stays, ready for the next prompt",
				flags:   brokerFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker session cancel ID")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					if err := a.call(ctx, "POST", "/v1/sessions/"+url.PathEscape(args[0])+"/cancel", nil, nil); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "session %s: turn cancelled\n", args[0])
					return nil
				},
			},
			{
				name:    "stop",
				args:    "ID",
				summary: "stop a session: cancel, shut the agent down, revoke its tokens",
				flags:   brokerFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker session stop ID")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					var out sessions.Info
					if err := a.call(ctx, "DELETE", "/v1/sessions/"+url.PathEscape(args[0]), nil, &out); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "session %s %s\n", out.ID, out.State)
					return nil
				},
			},
			{
				name:    "events",
				args:    "ID",
				summary: "print a session's event log so far, one JSON object a line (the broker's own record)",
				flags:   brokerFlags,
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker session events ID")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					var info sessions.Info
					if err := a.call(ctx, "GET", "/v1/sessions/"+url.PathEscape(args[0]), nil, &info); err != nil {
						return err
					}
					return dumpEvents(ctx, a, args[0], info.LastEventSeq, e.stdout)
				},
			},
			{
				name:    "attach",
				args:    "ID",
				summary: "watch a session live: its text, tool calls and permission questions (answered here)",
				flags: func(fs *flag.FlagSet, c *config) {
					brokerFlags(fs, c)
					fs.Int64Var(&after, "after", 0, "replay from after this event sequence number")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					if len(args) != 1 {
						return usageError(e, "usage: agentbroker session attach ID")
					}
					a, err := newAPIClient(c)
					if err != nil {
						return err
					}
					return attach(ctx, a, args[0], after, e)
				},
			},
		},
	}
}

// attach follows a session's events over the WebSocket and renders them;
// a permission question is answered by typing the number of an option.
// It reconnects from the last sequence number it saw when the connection
// drops, and returns when the session's log ends.
func attach(ctx context.Context, a *apiClient, id string, after int64, e *env) error {
	wsBase, err := a.wsBase()
	if err != nil {
		return err
	}
	r := newRenderer(e.stdout)
	answers := make(chan string)
	go func() { // lines typed at the terminal
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			select {
			case answers <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	for attempt := 0; ; attempt++ {
		endpoint := fmt.Sprintf("%s/v1/sessions/%s/events?after=%d", wsBase, url.PathEscape(id), after)
		conn, resp, err := websocket.DefaultDialer.DialContext(ctx, endpoint, http.Header{"Authorization": {"Bearer " + a.token}})
		if err != nil {
			if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 {
				return fmt.Errorf("attach %s: %s", id, resp.Status)
			}
			if attempt >= 5 || ctx.Err() != nil {
				return fmt.Errorf("attach %s: %w", id, err)
			}
			time.Sleep(time.Duration(attempt+1) * 300 * time.Millisecond)
			continue
		}
		attempt = 0
		last, err := follow(ctx, conn, r, answers)
		if last > after {
			after = last
		}
		conn.Close()
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce) && ce.Code == sessions.CloseSessionEnded:
			r.line("— the session's log has ended")
			return nil
		case ctx.Err() != nil:
			return nil
		}
		r.line(fmt.Sprintf("— connection lost (%v); resuming after event %d", err, after))
	}
}

// follow renders frames until the connection ends, returning the last seq.
func follow(ctx context.Context, conn *websocket.Conn, r *renderer, answers <-chan string) (int64, error) {
	frames := make(chan sessions.Frame)
	errc := make(chan error, 1)
	go func() {
		for {
			var f sessions.Frame
			if err := conn.ReadJSON(&f); err != nil {
				errc <- err
				return
			}
			frames <- f
		}
	}()
	var last int64
	var pending *permissionQuestion
	spinner := time.NewTicker(120 * time.Millisecond)
	defer spinner.Stop()
	for {
		select {
		case <-spinner.C:
			r.tick()
		case <-ctx.Done():
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return last, ctx.Err()
		case err := <-errc:
			return last, err
		case f := <-frames:
			if f.Seq > 0 {
				last = f.Seq
			}
			if q := r.frame(f); q != nil {
				pending = q
			}
		case line := <-answers:
			if pending == nil {
				continue
			}
			opt, ok := pending.pick(line)
			if !ok {
				r.line("type the number of an option")
				continue
			}
			conn.WriteJSON(sessions.ClientMessage{Type: "permission", RequestID: pending.id, OptionID: opt})
			pending = nil
		}
	}
}

// readEvents reads a session's events 1..upTo over the events WebSocket,
// or until the broker says the log has ended, whichever comes first.
func readEvents(ctx context.Context, a *apiClient, id string, upTo int64) ([]sessions.Frame, error) {
	wsBase, err := a.wsBase()
	if err != nil {
		return nil, err
	}
	endpoint := fmt.Sprintf("%s/v1/sessions/%s/events?after=0", wsBase, url.PathEscape(id))
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, endpoint, http.Header{"Authorization": {"Bearer " + a.token}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var frames []sessions.Frame
	for seq := int64(0); seq < upTo; {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var f sessions.Frame
		if err := conn.ReadJSON(&f); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == sessions.CloseSessionEnded {
				return frames, nil
			}
			return frames, err
		}
		if f.Seq > 0 {
			seq = f.Seq
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// dumpEvents writes a session's events 1..upTo as JSON lines.
func dumpEvents(ctx context.Context, a *apiClient, id string, upTo int64, w io.Writer) error {
	frames, err := readEvents(ctx, a, id, upTo)
	enc := json.NewEncoder(w)
	for _, f := range frames {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return err
}

// printSession prints one session as `session show` does.
func printSession(w io.Writer, s sessions.Info) {
	cost, budget := "-", "-"
	if s.Usage != nil {
		cost = s.Usage.CostUSD
	}
	if s.BudgetUSD != "" {
		budget = s.BudgetUSD
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"session", s.ID}, {"title", s.Title}, {"project", s.Project}, {"task", s.Task}, {"agent", s.Agent},
		{"model", s.Model}, {"state", string(s.State)}, {"turn", fmt.Sprint(s.Turn)}, {"cwd", s.Cwd},
		{"policy", s.PermissionPolicy}, {"credential", s.Credential}, {"sandbox", s.Sandbox},
		{"cost USD", cost}, {"budget USD", budget}, {"created", s.CreatedAt.Local().Format(time.DateTime)},
		{"last error", s.LastError},
	} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", kv[0], oneLine(kv[1], 200))
		}
	}
	for _, p := range s.Pending {
		fmt.Fprintf(tw, "pending permission\t%s (%s); answer it in: agentbroker session attach %s\n", p.RequestID, oneLine(p.ToolCall.Title, 100), s.ID)
	}
	tw.Flush()
}

// sideModelsText says which side models a session also uses, or "".
func sideModelsText(sms []catalog.SideModel) string {
	if len(sms) == 0 {
		return ""
	}
	parts := make([]string, len(sms))
	for i, sm := range sms {
		parts[i] = sm.ID + " (" + sm.Use + ")"
	}
	return "; the agent may also use " + strings.Join(parts, ", ")
}
