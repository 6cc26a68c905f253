package acp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sourcegraph/jsonrpc2"
)

// PermissionPolicy decides how session/request_permission is answered.
// Options are always chosen by kind, never by optionId.
type PermissionPolicy string

const (
	// PolicyAsk hands every request to the Asker; no answer within
	// AskTimeout rejects.
	PolicyAsk PermissionPolicy = "ask"
	// PolicyAllowProjectTools allows calls to our own MCP server's tools
	// (ConnOptions.MCPServerName) and asks for the rest.
	PolicyAllowProjectTools PermissionPolicy = "allow-project-tools"
	// PolicyAllowAll allows everything.
	PolicyAllowAll PermissionPolicy = "allow-all"
)

// ParsePermissionPolicy checks a policy name.
func ParsePermissionPolicy(s string) (PermissionPolicy, error) {
	switch p := PermissionPolicy(s); p {
	case PolicyAsk, PolicyAllowProjectTools, PolicyAllowAll:
		return p, nil
	}
	return "", fmt.Errorf("acp: unknown permission policy %q (want ask, allow-project-tools or allow-all)", s)
}

// ToolRecognizer recognises, in one agent's permission request, a call to
// a tool of our own MCP server (named server). updates is the tool call as
// the session's tool_call updates described it before the request (zero
// when they did not); the request's own tool call is in req. It must not
// rely on free text the model chose (a shell command's title).
type ToolRecognizer func(server string, req RequestPermissionRequest, updates ToolCall) bool

// PermissionRequest is what an Asker is shown.
type PermissionRequest struct {
	// Request is the request as the agent sent it (its Options are the
	// answers to choose from).
	Request RequestPermissionRequest
	// ToolCall is the tool call as far as the session's updates and the
	// request describe it (Codex sends only an ID and a kind in the
	// request; its tool_call update named the tool).
	ToolCall ToolCall
	// ProjectTool reports a call to our own MCP server's tool.
	ProjectTool bool
}

// Asker asks whoever is watching. It returns the optionId they chose
// (one of req.Request.Options); an error, an unknown ID or the end of ctx
// (AskTimeout, session/cancel, the connection ending) rejects the request.
type Asker interface {
	AskPermission(ctx context.Context, req PermissionRequest) (optionID string, err error)
}

// AskerFunc is a function Asker.
type AskerFunc func(ctx context.Context, req PermissionRequest) (string, error)

// AskPermission calls f.
func (f AskerFunc) AskPermission(ctx context.Context, req PermissionRequest) (string, error) {
	return f(ctx, req)
}

// PermissionDecision is how a permission request was answered.
type PermissionDecision struct {
	SessionID string
	ToolCall  ToolCall
	Outcome   RequestPermissionOutcome
	Kind      PermissionOptionKind // kind of the selected option ("" when cancelled)
	Reason    string               // e.g. "policy allow-all", "asked", "ask timed out", "session cancelled"
}

// pendingPermission is a permission request waiting for its answer.
type pendingPermission struct {
	req         RequestPermissionRequest
	fromUpdates ToolCall      // the tool call as the updates described it
	cancelled   chan struct{} // closed by Cancel
}

// receivePermission runs on the read goroutine: it registers the request
// with its session (so that a Cancel from now on answers it "cancelled")
// and decides it on a goroutine.
func (c *Conn) receivePermission(id jsonrpc2.ID, params json.RawMessage) {
	var req RequestPermissionRequest
	if err := json.Unmarshal(params, &req); err != nil {
		c.spawn(func() { c.replyErr(id, fmt.Errorf("%w: session/request_permission: %v", ErrInvalidParams, err)) })
		return
	}
	p := &pendingPermission{req: req, cancelled: make(chan struct{})}
	tc, alreadyCancelled := c.registerPermission(p)
	if !c.spawn(func() {
		defer c.unregisterPermission(p)
		var resp RequestPermissionResponse
		var d PermissionDecision
		if alreadyCancelled {
			d = decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeCancelled}, "", "session cancelled")
		} else {
			d = c.decide(p, tc)
		}
		resp.Outcome = d.Outcome
		c.log.Info("acp: permission answered", "session", req.SessionID, "toolCall", req.ToolCall.ToolCallID,
			"outcome", d.Outcome.Outcome, "kind", d.Kind, "reason", d.Reason)
		if c.opts.OnPermission != nil {
			c.opts.OnPermission(d)
		}
		c.reply(id, resp, nil)
	}) {
		c.unregisterPermission(p)
	}
}

func decided(req RequestPermissionRequest, tc ToolCall, o RequestPermissionOutcome, k PermissionOptionKind, why string) PermissionDecision {
	return PermissionDecision{SessionID: req.SessionID, ToolCall: tc, Outcome: o, Kind: k, Reason: why}
}

// decide applies the policy.
func (c *Conn) decide(p *pendingPermission, tc ToolCall) PermissionDecision {
	req := p.req
	server := c.opts.MCPServerName
	project := server != "" && (isProjectTool(server, tc, nil) || isProjectTool(server, req.ToolCall, req.Meta) ||
		(c.opts.ProjectTool != nil && c.opts.ProjectTool(server, req, p.fromUpdates)))
	switch {
	case c.opts.Permissions == PolicyAllowAll:
		return allow(req, tc, "policy allow-all")
	case c.opts.Permissions == PolicyAllowProjectTools && project:
		return allow(req, tc, "policy allow-project-tools: our MCP tool")
	}
	if c.opts.Asker == nil {
		return reject(req, tc, "nobody to ask")
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.AskTimeout)
	defer cancel()
	type answer struct {
		id  string
		err error
	}
	ch := make(chan answer, 1)
	go func() { // ends with ctx: cancel runs before decide returns
		id, err := c.opts.Asker.AskPermission(ctx, PermissionRequest{Request: req, ToolCall: tc, ProjectTool: project})
		ch <- answer{id, err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			if errors.Is(a.err, context.DeadlineExceeded) {
				return reject(req, tc, "ask timed out")
			}
			return reject(req, tc, "asker: "+a.err.Error())
		}
		i := slices.IndexFunc(req.Options, func(o PermissionOption) bool { return o.OptionID == a.id })
		if i < 0 {
			return reject(req, tc, fmt.Sprintf("asker chose unknown option %q", a.id))
		}
		o := req.Options[i]
		return decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeSelected, OptionID: o.OptionID}, o.Kind, "asked")
	case <-p.cancelled:
		cancel()
		<-ch
		return decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeCancelled}, "", "session cancelled")
	case <-ctx.Done():
		cancel()
		<-ch
		if c.ctx.Err() != nil {
			return decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeCancelled}, "", "connection ended")
		}
		return reject(req, tc, fmt.Sprintf("ask timed out after %v", c.opts.AskTimeout))
	}
}

// allow picks allow_once, else allow_always; with no allow option at all
// it rejects (the agent offered no way to allow). Two options of the kind
// it would pick are not told apart by their order (Qwen Code's auto mode
// offers two allow_once, one of which also switches its mode): it rejects.
func allow(req RequestPermissionRequest, tc ToolCall, why string) PermissionDecision {
	o, ok, ambiguous := pickKind(req.Options, AllowOnce, AllowAlways)
	switch {
	case ok:
		return decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeSelected, OptionID: o.OptionID}, o.Kind, why)
	case ambiguous != "":
		return reject(req, tc, fmt.Sprintf("%s; more than one %s option, not chosen by their order", why, ambiguous))
	}
	return reject(req, tc, why+"; no allow option offered")
}

// reject picks reject_once, else reject_always, else answers cancelled
// (also when two options of the kind it would pick leave it unsure).
func reject(req RequestPermissionRequest, tc ToolCall, why string) PermissionDecision {
	o, ok, ambiguous := pickKind(req.Options, RejectOnce, RejectAlways)
	switch {
	case ok:
		return decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeSelected, OptionID: o.OptionID}, o.Kind, why)
	case ambiguous != "":
		return decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeCancelled}, "",
			fmt.Sprintf("%s; more than one %s option, not chosen by their order", why, ambiguous))
	}
	return decided(req, tc, RequestPermissionOutcome{Outcome: OutcomeCancelled}, "", why+"; no reject option offered")
}

// pickKind returns the option of the first kind present, when exactly one
// option has that kind; when several do, none is picked and ambiguous
// names the kind: options of one kind are never chosen by their order.
func pickKind(opts []PermissionOption, kinds ...PermissionOptionKind) (o PermissionOption, ok bool, ambiguous PermissionOptionKind) {
	for _, k := range kinds {
		n := 0
		for _, opt := range opts {
			if opt.Kind == k {
				o, n = opt, n+1
			}
		}
		switch {
		case n == 1:
			return o, true, ""
		case n > 1:
			return PermissionOption{}, false, k
		}
	}
	return PermissionOption{}, false, ""
}

// ChooseOption returns the option the policy would pick for allowing
// (allow_once, else allow_always) or rejecting (reject_once, else
// reject_always); ok is false when no option of those kinds exists, or
// when two options share the kind it would pick.
func ChooseOption(opts []PermissionOption, allow bool) (PermissionOption, bool) {
	kinds := []PermissionOptionKind{RejectOnce, RejectAlways}
	if allow {
		kinds = []PermissionOptionKind{AllowOnce, AllowAlways}
	}
	o, ok, _ := pickKind(opts, kinds...)
	return o, ok
}

// isProjectTool recognises a call to a tool of the MCP server named
// server, as the agents describe it:
//   - Claude (claude-agent-acp): _meta.claudeCode.toolName or
//     _meta.claudeCode.mcpServer.name, or a title/name "mcp__<server>__<tool>"
//     with kind "other";
//   - Codex (codex-acp): rawInput {"server": <server>, "tool": <tool>} on
//     the tool_call (its title is "mcp.<server>.<tool>"); Zed's codex-acp
//     also sends rawInput.server_name with
//     request._meta.codex_approval_kind "mcp_tool_call" in the request.
//
// Free text alone (a title of another kind) does not count: a shell
// command's title is chosen by the model.
func isProjectTool(server string, tc ToolCall, reqMeta json.RawMessage) bool {
	prefix := "mcp__" + server + "__"
	var meta struct {
		Claude struct {
			ToolName  string `json:"toolName"`
			MCPServer struct {
				Name string `json:"name"`
			} `json:"mcpServer"`
		} `json:"claudeCode"`
	}
	if json.Unmarshal(tc.Meta, &meta) == nil {
		if strings.HasPrefix(meta.Claude.ToolName, prefix) || meta.Claude.MCPServer.Name == server {
			return true
		}
	}
	if tc.Kind == "" || tc.Kind == ToolKindOther {
		var name string
		_ = json.Unmarshal(tc.Extra["name"], &name)
		if strings.HasPrefix(tc.Title, prefix) || strings.HasPrefix(name, prefix) {
			return true
		}
	}
	var in struct {
		Server     string `json:"server"`
		Tool       string `json:"tool"`
		ServerName string `json:"server_name"`
		Request    struct {
			Meta struct {
				Kind string `json:"codex_approval_kind"`
			} `json:"_meta"`
		} `json:"request"`
	}
	if json.Unmarshal(tc.RawInput, &in) == nil {
		if in.Server == server && in.Tool != "" {
			return true
		}
		if in.ServerName == server && in.Request.Meta.Kind == "mcp_tool_call" {
			return true
		}
	}
	return false
}
