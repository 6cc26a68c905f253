package acp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
)

// ClientName is our clientInfo name.
const ClientName = "agentbroker"

// Initialize sends initialize: our clientInfo and capabilities (fs when
// ConnOptions.WorkDir is set; never terminal). It fails with
// ErrProtocolVersion unless the agent answers protocol version 1.
func (c *Conn) Initialize(ctx context.Context) (*InitializeResponse, error) {
	version := c.opts.ClientVersion
	if version == "" {
		version = "devel"
	}
	fsOn := c.opts.WorkDir != ""
	req := InitializeRequest{
		ProtocolVersion: ProtocolVersion,
		ClientCapabilities: ClientCapabilities{
			FS: FileSystemCapability{ReadTextFile: fsOn, WriteTextFile: fsOn},
		},
		ClientInfo: &Implementation{Name: ClientName, Version: version},
	}
	var resp InitializeResponse
	if err := c.call(ctx, MethodInitialize, req, &resp); err != nil {
		return nil, err
	}
	if resp.ProtocolVersion != ProtocolVersion {
		return nil, fmt.Errorf("%w: the agent speaks %d, we speak %d", ErrProtocolVersion, resp.ProtocolVersion, ProtocolVersion)
	}
	c.mu.Lock()
	c.init = &resp
	c.mu.Unlock()
	agent := ""
	if resp.AgentInfo != nil {
		agent = resp.AgentInfo.Name + " " + resp.AgentInfo.Version
	}
	c.log.Info("acp: initialized", "agent", agent, "loadSession", resp.AgentCapabilities.LoadSession,
		"mcpHTTP", resp.AgentCapabilities.McpCapabilities.HTTP, "authMethods", len(resp.AuthMethods))
	return &resp, nil
}

// Initialized returns the agent's answer to initialize (nil before).
func (c *Conn) Initialized() *InitializeResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.init
}

// Authenticate sends authenticate with an advertised method ID.
func (c *Conn) Authenticate(ctx context.Context, methodID string) error {
	var resp AuthenticateResponse
	return c.call(ctx, MethodAuthenticate, AuthenticateRequest{MethodID: methodID}, &resp)
}

// NewSession sends session/new and records the session (its cwd confines
// fs requests).
func (c *Conn) NewSession(ctx context.Context, req NewSessionRequest) (*NewSessionResponse, error) {
	if req.McpServers == nil {
		req.McpServers = []McpServer{}
	}
	var resp NewSessionResponse
	if err := c.call(ctx, MethodSessionNew, req, &resp); err != nil {
		return nil, err
	}
	if resp.SessionID == "" {
		return nil, fmt.Errorf("acp: %s: the agent returned no sessionId", MethodSessionNew)
	}
	c.addSession(resp.SessionID, req.Cwd, resp.ConfigOptions)
	return &resp, nil
}

// LoadSession sends session/load and records the session. The agent
// replays the session's history as session/update notifications before
// it answers; they have all been delivered to OnUpdate when it returns.
func (c *Conn) LoadSession(ctx context.Context, req LoadSessionRequest) (*LoadSessionResponse, error) {
	if req.McpServers == nil {
		req.McpServers = []McpServer{}
	}
	// Register first: the replayed updates arrive before the answer.
	_, known := c.session(req.SessionID)
	c.addSession(req.SessionID, req.Cwd, nil)
	var resp LoadSessionResponse
	if err := c.call(ctx, MethodSessionLoad, req, &resp); err != nil {
		if !known {
			c.mu.Lock()
			if s, ok := c.sessions[req.SessionID]; ok {
				s.close()
				delete(c.sessions, req.SessionID)
			}
			c.mu.Unlock()
		}
		return nil, err
	}
	c.addSession(req.SessionID, req.Cwd, resp.ConfigOptions)
	// As Prompt does: the replayed history reaches OnUpdate before
	// LoadSession returns, so that what the caller records next (the
	// session ready) comes after it.
	c.waitDelivered(ctx)
	return &resp, nil
}

// MCPConfig describes our MCP server for Handshake.
type MCPConfig struct {
	Name  string // server name, e.g. "agentbroker"
	URL   string // e.g. http://127.0.0.1:7420/mcp
	Token string // the session's MCP token (never logged)
	// BridgeCommand runs `<BridgeCommand> mcp-bridge` for agents without
	// HTTP MCP: the broker's own executable (os.Executable).
	BridgeCommand string
}

// AuthChooser picks an authentication method among those the agent
// advertises; "" or an error means none.
type AuthChooser func(methods []AuthMethod) (methodID string, err error)

// HandshakeOptions configure Handshake.
type HandshakeOptions struct {
	// Cwd is the session's working directory (absolute). "": ConnOptions.WorkDir.
	Cwd string
	// MCP is our MCP server; its entry is built by NewMCPServerEntry from
	// the agent's capabilities. Nil: none.
	MCP *MCPConfig
	// MCPServers are further entries, sent after ours.
	MCPServers []McpServer
	// ResumeSessionID, when set and the agent advertises loadSession,
	// loads that session instead of creating one.
	ResumeSessionID string
	// ChooseAuth is asked when the agent answers "authentication
	// required"; then session/new (or load) is tried once more. Nil:
	// Handshake fails with ErrNoAuthMethod.
	ChooseAuth AuthChooser
}

// Session is the result of a handshake.
type Session struct {
	ID            string
	Loaded        bool // session/load was used
	Authenticated string
	Init          *InitializeResponse
	// MCPServer is our entry as sent. It holds the token: it redacts in
	// String and LogValue, and is not JSON-encoded with the Session.
	MCPServer     *McpServer `json:"-"`
	Modes         *SessionModeState
	ConfigOptions []ConfigOption
	Models        json.RawMessage // the agent's unstable "models" member
}

// Handshake runs initialize, session/new (or session/load when resuming
// and the agent can) with our MCP server entry, and authenticate plus one
// retry when the agent asks for authentication.
func (c *Conn) Handshake(ctx context.Context, o HandshakeOptions) (*Session, error) {
	cwd := o.Cwd
	if cwd == "" {
		cwd = c.opts.WorkDir
	}
	if !filepath.IsAbs(cwd) {
		return nil, fmt.Errorf("acp: handshake: cwd %q is not absolute", cwd)
	}
	init, err := c.Initialize(ctx)
	if err != nil {
		return nil, err
	}
	sess := &Session{Init: init}
	servers := []McpServer{}
	if o.MCP != nil {
		e, err := NewMCPServerEntry(init.AgentCapabilities, o.MCP.Name, o.MCP.URL, o.MCP.Token, o.MCP.BridgeCommand)
		if err != nil {
			return nil, fmt.Errorf("acp: handshake: %w", err)
		}
		sess.MCPServer = &e
		servers = append(servers, e)
	}
	servers = append(servers, o.MCPServers...)

	load := o.ResumeSessionID != "" && init.AgentCapabilities.LoadSession
	if o.ResumeSessionID != "" && !load {
		c.log.Warn("acp: the agent cannot load sessions; starting a new one", "resume", o.ResumeSessionID)
	}
	open := func() error {
		if load {
			r, err := c.LoadSession(ctx, LoadSessionRequest{SessionID: o.ResumeSessionID, Cwd: cwd, McpServers: servers})
			if err != nil {
				return err
			}
			sess.ID, sess.Loaded, sess.Modes, sess.ConfigOptions, sess.Models = o.ResumeSessionID, true, r.Modes, r.ConfigOptions, r.Models
			return nil
		}
		r, err := c.NewSession(ctx, NewSessionRequest{Cwd: cwd, McpServers: servers})
		if err != nil {
			return err
		}
		sess.ID, sess.Modes, sess.ConfigOptions, sess.Models = r.SessionID, r.Modes, r.ConfigOptions, r.Models
		return nil
	}
	err = open()
	if errors.Is(err, ErrAuthRequired) {
		method, cerr := c.chooseAuth(o.ChooseAuth, init.AuthMethods)
		if cerr != nil {
			return nil, fmt.Errorf("%w: %w (after: %w)", ErrNoAuthMethod, cerr, err)
		}
		c.log.Info("acp: authenticating", "method", method)
		if err := c.Authenticate(ctx, method); err != nil {
			return nil, err
		}
		sess.Authenticated = method
		err = open()
	}
	if err != nil {
		return nil, err
	}
	attrs := []any{"session", sess.ID, "loaded", sess.Loaded, "cwd", cwd}
	if sess.MCPServer != nil {
		attrs = append(attrs, "mcp", *sess.MCPServer)
	}
	c.log.Info("acp: session ready", attrs...)
	return sess, nil
}

func (c *Conn) chooseAuth(choose AuthChooser, methods []AuthMethod) (string, error) {
	if choose == nil {
		return "", errors.New("no chooser configured")
	}
	id, err := choose(methods)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", errors.New("the chooser chose none")
	}
	if !slices.ContainsFunc(methods, func(m AuthMethod) bool { return m.ID == id }) {
		return "", fmt.Errorf("method %q is not one the agent advertised", id)
	}
	return id, nil
}

// Prompt runs a prompt turn and returns why it stopped. The turn's
// updates have reached OnUpdate when it returns. When ctx ends first,
// Prompt sends session/cancel and waits up to CancelGrace for the agent's
// answer: it then returns the agent's stop reason (normally "cancelled")
// with ctx's cause as the error. If the connection ends, the error names
// why (e.g. ErrPeerClosed: the agent exited).
func (c *Conn) Prompt(ctx context.Context, sessionID string, prompt []ContentBlock) (StopReason, error) {
	resp, err := c.Turn(ctx, PromptRequest{SessionID: sessionID, Prompt: prompt})
	if resp == nil {
		return "", err
	}
	return resp.StopReason, err
}

// Turn is Prompt with the full request and answer (usage, _meta).
func (c *Conn) Turn(ctx context.Context, req PromptRequest) (*PromptResponse, error) {
	const method = MethodSessionPrompt
	if err := c.Err(); err != nil {
		return nil, fmt.Errorf("acp: %s: %w", method, err)
	}
	c.beginTurn(req.SessionID)
	w, err := c.rpc.DispatchCall(context.WithoutCancel(ctx), method, req)
	if err != nil {
		return nil, c.callErr(method, err)
	}
	var resp PromptResponse
	err = w.Wait(ctx, &resp)
	if err != nil && ctx.Err() != nil && c.Err() == nil {
		// The caller gave up: cancel the turn, give the agent a moment.
		cause := context.Cause(ctx)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CancelGrace)
		defer cancel()
		if cerr := c.Cancel(wctx, req.SessionID); cerr != nil {
			c.log.Debug("acp: cancel after the caller gave up", "err", cerr)
		}
		if err := w.Wait(wctx, &resp); err != nil {
			return nil, fmt.Errorf("acp: %s: %w (no answer to session/cancel within %v)", method, cause, c.opts.CancelGrace)
		}
		c.waitDelivered(wctx)
		return &resp, fmt.Errorf("acp: %s: %w", method, cause)
	}
	if err != nil {
		// The updates the agent sent before it failed or went away are
		// still delivered before the caller hears why the turn ended —
		// unless the subscriber itself is what is stuck.
		if !errors.Is(c.Err(), ErrSubscriberTooSlow) {
			c.waitDelivered(ctx)
		}
		return nil, c.callErr(method, err)
	}
	c.waitDelivered(ctx)
	return &resp, nil
}

// Cancel sends session/cancel, then answers every pending permission
// request of the session "cancelled" (and any that arrives before the
// next turn). The agent then ends the turn with stopReason "cancelled".
func (c *Conn) Cancel(ctx context.Context, sessionID string) error {
	err := c.notify(ctx, MethodSessionCancel, CancelNotification{SessionID: sessionID})
	if n := c.cancelPermissions(sessionID); n > 0 {
		c.log.Info("acp: cancelled pending permission requests", "session", sessionID, "count", n)
	}
	return err
}

// SetMode sends session/set_mode.
func (c *Conn) SetMode(ctx context.Context, sessionID, modeID string) error {
	var resp SetSessionModeResponse
	return c.call(ctx, MethodSessionSetMode, SetSessionModeRequest{SessionID: sessionID, ModeID: modeID}, &resp)
}

// SetConfigOption sends session/set_config_option. A model option
// (category "model", or ID "model" when the category is not known) is
// checked first with ConnOptions.Models.Resolve(ConnOptions.Agent, value):
// a model the catalog refuses is refused here, and nothing is sent.
func (c *Conn) SetConfigOption(ctx context.Context, sessionID, configID, value string) (*SetSessionConfigOptionResponse, error) {
	if c.isModelOption(sessionID, configID) {
		if err := c.checkModel(value); err != nil {
			return nil, err
		}
	}
	var resp SetSessionConfigOptionResponse
	req := SetSessionConfigOptionRequest{SessionID: sessionID, ConfigID: configID, Value: value}
	if err := c.call(ctx, MethodSessionSetConfig, req, &resp); err != nil {
		return nil, err
	}
	if resp.ConfigOptions != nil {
		c.mu.Lock()
		if s, ok := c.sessions[sessionID]; ok {
			s.configOptions = resp.ConfigOptions
		}
		c.mu.Unlock()
	}
	return &resp, nil
}

// SetModel sets the session's model option (the config option of category
// "model", else ID "model") after the catalog check.
func (c *Conn) SetModel(ctx context.Context, sessionID, model string) (*SetSessionConfigOptionResponse, error) {
	id := "model"
	for _, o := range c.ConfigOptions(sessionID) {
		if o.Category == ConfigCategoryModel {
			id = o.ID
			break
		}
	}
	if err := c.checkModel(model); err != nil {
		return nil, err
	}
	return c.SetConfigOption(ctx, sessionID, id, model)
}

func (c *Conn) isModelOption(sessionID, configID string) bool {
	for _, o := range c.ConfigOptions(sessionID) {
		if o.ID == configID {
			return o.Category == ConfigCategoryModel
		}
	}
	return configID == "model"
}

func (c *Conn) checkModel(model string) error {
	if c.opts.Agent == "" {
		return fmt.Errorf("acp: set model %q: %w", model, ErrNoModelCheck)
	}
	if _, err := c.opts.Models.Resolve(c.opts.Agent, model); err != nil {
		return fmt.Errorf("acp: set model %q for %s: %w", model, c.opts.Agent, err)
	}
	return nil
}
