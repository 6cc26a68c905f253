package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Mux is where Mount puts the routes (*http.ServeMux and the broker's
// internal/server.Server satisfy it).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// MaxRequestBody bounds the body of every session API request.
const MaxRequestBody = 1 << 20

// Mount adds the session API to mux (see doc.go for the routes).
func (m *Manager) Mount(mux Mux) {
	admin := m.opts.Tokens.Middleware(tokens.AudienceAdmin, tokens.ScopeAdmin)
	mux.Handle("POST /v1/sessions", admin(http.HandlerFunc(m.handleCreate)))
	mux.Handle("GET /v1/sessions", admin(http.HandlerFunc(m.handleList)))
	mux.Handle("GET /v1/sessions/watch", http.HandlerFunc(m.handleWatch))
	mux.Handle("POST /v1/sessions/{id}/render", m.sessionAuth(tokens.ScopeSessionView, m.handleRender))
	mux.Handle("GET /v1/usage", admin(http.HandlerFunc(m.handleUsage)))
	mux.Handle("POST /v1/tasks/{task}/runs", admin(http.HandlerFunc(m.handleRunTask)))
	mux.Handle("GET /v1/tasks/{task}/runs", admin(http.HandlerFunc(m.handleRuns)))
	mux.Handle("POST /v1/projects/{project}/tasks/{task}/runs", admin(http.HandlerFunc(m.handleRunTask)))
	mux.Handle("GET /v1/projects/{project}/tasks/{task}/runs", admin(http.HandlerFunc(m.handleRuns)))
	mux.Handle("GET /v1/sessions/{id}", m.sessionAuth(tokens.ScopeSessionView, m.handleGet))
	mux.Handle("DELETE /v1/sessions/{id}", admin(http.HandlerFunc(m.handleStop)))
	mux.Handle("POST /v1/sessions/{id}/prompt", m.sessionAuth(tokens.ScopeSessionControl, m.handlePrompt))
	mux.Handle("POST /v1/sessions/{id}/cancel", m.sessionAuth(tokens.ScopeSessionControl, m.handleCancel))
	mux.Handle("POST /v1/sessions/{id}/permissions/{rid}", m.sessionAuth(tokens.ScopeSessionControl, m.handlePermission))
	mux.Handle("GET /v1/sessions/{id}/events", ViewerHandler(ViewerOptions{
		Tokens: m.opts.Tokens, Logs: m, Control: m, PublicURL: m.opts.PublicURL, AllowedOrigins: m.opts.AllowedOrigins,
		Logger: m.log,
	}))
}

// sessionAuth admits an admin token, or a viewer token of the session in
// the path holding scope.
func (m *Manager) sessionAuth(scope tokens.Scope, next func(http.ResponseWriter, *http.Request, tokens.Claims)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, ref := authorizeSession(r, m.opts.Tokens, r.PathValue("id"), scope, false)
		if ref != nil {
			ref.Write(w)
			return
		}
		next(w, r.WithContext(markForwarded(r)), g.claims)
	})
}

// CredentialRequest is how a request gives an agent's credential.
type CredentialRequest struct {
	Kind    string `json:"kind"`
	Secret  string `json:"secret,omitempty"`
	BaseURL string `json:"base_url,omitempty"`
	// ViaProxy routes an api-key credential through the broker's
	// inference proxy (Spec.ViaProxy).
	ViaProxy bool `json:"via_proxy,omitempty"`
}

func (c CredentialRequest) credential() profile.Credential {
	return profile.Credential{Kind: profile.CredentialKind(c.Kind), Secret: profile.NewSecret(c.Secret), BaseURL: c.BaseURL}
}

// budgetOf parses a request's budget_usd (zero when absent), or answers
// 400 and reports false.
func budgetOf(w http.ResponseWriter, v USD) (catalog.Amount, bool) {
	if v == "" {
		return 0, true
	}
	b, err := catalog.ParseUSD(string(v))
	if err != nil || b <= 0 {
		server.WriteError(w, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("budget_usd %q: want a positive decimal dollar amount such as \"5.00\"", truncateUTF8(string(v), 64)))
		return 0, false
	}
	return b, true
}

// CreateRequest is the body of POST /v1/sessions.
type CreateRequest struct {
	Project          string            `json:"project"`
	Agent            string            `json:"agent"`
	Model            string            `json:"model,omitempty"`
	Credential       CredentialRequest `json:"credential"`
	Cwd              string            `json:"cwd,omitempty"`
	PermissionPolicy string            `json:"permission_policy,omitempty"`
	Prompt           string            `json:"prompt,omitempty"`
	Title            string            `json:"title,omitempty"`
	// Task is a task of the project the session works on (Spec.Task).
	Task string `json:"task,omitempty"`
	// BudgetUSD is the session's budget in decimal dollars ("5.00"; a
	// JSON string, or a number written the same way): Spec.Budget.
	BudgetUSD USD `json:"budget_usd,omitempty"`
}

// USD is a decimal dollar amount on the wire: a JSON string ("5.00") or a
// number (5.00), read exactly (catalog.ParseUSD), never through a float.
type USD string

// UnmarshalJSON takes a string or a number's literal text.
func (u *USD) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	*u = USD(s)
	return nil
}

// CreateResponse is the answer to POST /v1/sessions (201).
type CreateResponse struct {
	Session              Info      `json:"session"`
	ViewerToken          string    `json:"viewer_token"`
	ViewerTokenExpiresAt time.Time `json:"viewer_token_expires_at"`
	EventsPath           string    `json:"events_path"`
	FirstPromptError     string    `json:"first_prompt_error,omitempty"`
}

// PromptRequest is the body of POST /v1/sessions/{id}/prompt.
type PromptRequest struct {
	Text string `json:"text"`
	// Wait blocks until the turn ends (also ?wait=true).
	Wait bool `json:"wait,omitempty"`
}

// PermissionAnswer is the body of POST /v1/sessions/{id}/permissions/{rid}.
type PermissionAnswer struct {
	OptionID string `json:"option_id"`
}

func (m *Manager) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if !decode(w, r, &req) {
		return
	}
	c, _ := tokens.ClaimsFrom(r.Context())
	spec := Spec{
		Project: req.Project, Agent: profile.Name(req.Agent), Model: req.Model, Cwd: req.Cwd,
		Policy: acp.PermissionPolicy(req.PermissionPolicy), Prompt: req.Prompt, Title: req.Title,
		CreatedBy:  c.Subject,
		Credential: req.Credential.credential(), ViaProxy: req.Credential.ViaProxy,
		Task: req.Task,
	}
	var ok bool
	if spec.Budget, ok = budgetOf(w, req.BudgetUSD); !ok {
		return
	}
	req.Credential.Secret = ""
	created, err := m.Create(r.Context(), spec)
	if errors.Is(err, ErrStartFailed) {
		server.WriteJSON(w, http.StatusBadGateway, map[string]any{
			"error": "agent_start_failed", "error_description": err.Error(), "session": created.Session})
		return
	}
	if err != nil {
		m.writeErr(w, err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, CreateResponse{
		Session: created.Session, ViewerToken: created.ViewerToken, ViewerTokenExpiresAt: created.ViewerExpiresAt,
		EventsPath: "/v1/sessions/" + created.Session.ID + "/events", FirstPromptError: created.FirstPromptError,
	})
}

func (m *Manager) handleList(w http.ResponseWriter, r *http.Request) {
	list, err := m.List(r.Context(), r.URL.Query().Get("project"))
	if err != nil {
		m.writeErr(w, err)
		return
	}
	if state := r.URL.Query().Get("state"); state != "" {
		kept := list[:0]
		for _, in := range list {
			if string(in.State) == state {
				kept = append(kept, in)
			}
		}
		list = kept
	}
	if list == nil {
		list = []Info{}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"sessions": list})
}

func (m *Manager) handleGet(w http.ResponseWriter, r *http.Request, _ tokens.Claims) {
	in, err := m.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		m.writeErr(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, in)
}

func (m *Manager) handleStop(w http.ResponseWriter, r *http.Request) {
	// The stop goes on if the client leaves: it must finish.
	in, err := m.Stop(context.WithoutCancel(markForwarded(r)), r.PathValue("id"))
	if err != nil {
		m.writeErr(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, in)
}

func (m *Manager) handlePrompt(w http.ResponseWriter, r *http.Request, c tokens.Claims) {
	var req PromptRequest
	if !decode(w, r, &req) {
		return
	}
	if q := r.URL.Query().Get("wait"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			server.WriteError(w, http.StatusBadRequest, "invalid_request", "wait must be true or false")
			return
		}
		req.Wait = b
	}
	res, err := m.Prompt(r.Context(), r.PathValue("id"), req.Text, req.Wait, who(c))
	if err != nil {
		m.writeErr(w, err)
		return
	}
	code := http.StatusOK
	if res.Running {
		code = http.StatusAccepted
	}
	server.WriteJSON(w, code, res)
}

func (m *Manager) handleCancel(w http.ResponseWriter, r *http.Request, c tokens.Claims) {
	if err := m.Cancel(r.Context(), r.PathValue("id"), who(c)); err != nil {
		m.writeErr(w, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "cancelling"})
}

func (m *Manager) handlePermission(w http.ResponseWriter, r *http.Request, c tokens.Claims) {
	var req PermissionAnswer
	if !decode(w, r, &req) {
		return
	}
	rid := r.PathValue("rid")
	if err := m.AnswerPermission(r.Context(), r.PathValue("id"), rid, req.OptionID, who(c)); err != nil {
		m.writeErr(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"request_id": rid, "option_id": req.OptionID})
}

func who(c tokens.Claims) string {
	return fmt.Sprintf("%s (%s token %s)", c.Subject, c.Audience, c.ID)
}

// decode reads a JSON body (bounded, strict: server.DecodeJSON); it
// answers 400 or 413 itself.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return server.DecodeJSON(w, r, MaxRequestBody, v)
}

// writeErr is where the package's errors become HTTP statuses.
func (m *Manager) writeErr(w http.ResponseWriter, err error) {
	type mapping struct {
		target error
		code   int
		kind   string
	}
	for _, e := range []mapping{
		{ErrModelRefused, http.StatusBadRequest, "model_refused"},
		{ErrInvalidRequest, http.StatusBadRequest, "invalid_request"},
		{store.ErrInvalid, http.StatusBadRequest, "invalid_request"},
		{ErrInvalidOption, http.StatusBadRequest, "invalid_option"},
		{ErrNoSuchPermission, http.StatusNotFound, "not_found"},
		{store.ErrNotFound, http.StatusNotFound, "not_found"},
		{ErrBusy, http.StatusConflict, "busy"},
		{ErrNoTurn, http.StatusConflict, "no_turn"},
		{ErrEnded, http.StatusConflict, "session_ended"},
		{ErrOwnedElsewhere, http.StatusConflict, "owned_elsewhere"},
		{ErrClosed, http.StatusServiceUnavailable, "unavailable"},
		{store.ErrNoSpace, http.StatusInsufficientStorage, "insufficient_storage"},
		{store.ErrReadOnly, http.StatusServiceUnavailable, "store_read_only"},
	} {
		if errors.Is(err, e.target) {
			server.WriteError(w, e.code, e.kind, err.Error())
			return
		}
	}
	m.log.Warn("sessions: request failed", "err", err)
	server.WriteError(w, http.StatusInternalServerError, "internal", "the request failed; see the broker's log")
}
