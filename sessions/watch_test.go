package sessions

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/tokens"
)

func (b *broker) dialWatch(t *testing.T, protocols []string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: wait}
	return d.Dial("ws"+strings.TrimPrefix(b.srv.URL, "http")+"/v1/sessions/watch", hdr)
}

func readWatch(t *testing.T, c *websocket.Conn) WatchFrame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	var f WatchFrame
	if err := c.ReadJSON(&f); err != nil {
		t.Fatalf("read the sessions list: %v", err)
	}
	if f.Type != "sessions" {
		t.Fatalf("frame type %q", f.Type)
	}
	return f
}

// TestWatchSessions: the watch pushes the list at once, then again when a
// session is created and when its state changes, without being asked;
// it takes the admin token as a subprotocol and refuses other tokens and
// foreign origins; a revoked token closes it.
func TestWatchSessions(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	viewer, _, err := b.svc.Mint(context.Background(), tokens.Grant{Subject: "v", Audience: tokens.AudienceViewer,
		Scopes: []tokens.Scope{tokens.ScopeSessionView}, Project: b.project.ID, Session: "ses_x"})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		protocols []string
		hdr       http.Header
		code      int
	}{
		"no token":       {[]string{WatchSubprotocol}, nil, http.StatusUnauthorized},
		"viewer token":   {[]string{WatchSubprotocol, "bearer." + viewer}, nil, http.StatusUnauthorized},
		"foreign origin": {[]string{WatchSubprotocol, "bearer." + b.admin}, http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
	} {
		conn, resp, err := b.dialWatch(t, c.protocols, c.hdr)
		if err == nil {
			conn.Close()
			t.Errorf("%s: the watch opened", name)
			continue
		}
		if resp == nil || (resp.StatusCode != c.code && !(c.code == http.StatusUnauthorized && resp.StatusCode == http.StatusForbidden)) {
			t.Errorf("%s: %v %v; want %d", name, resp, err, c.code)
		}
	}

	conn, resp, err := b.dialWatch(t, []string{WatchSubprotocol, "bearer." + b.admin}, nil)
	if err != nil {
		t.Fatalf("dial: %v %v", resp, err)
	}
	defer conn.Close()
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != WatchSubprotocol {
		t.Fatalf("subprotocol %q", p)
	}
	if f := readWatch(t, conn); len(f.Sessions) != 0 {
		t.Fatalf("first list: %+v", f.Sessions)
	}
	cr := b.create("ask", "")
	id := cr.Session.ID
	// Pushed, unasked: the new session, then its way to ready.
	var last WatchFrame
	for deadline := time.Now().Add(wait); ; {
		last = readWatch(t, conn)
		if len(last.Sessions) == 1 && last.Sessions[0].ID == id && last.Sessions[0].State == StateReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the list never showed %s ready: %+v", id, last.Sessions)
		}
	}
	if s := last.Sessions[0]; s.LastActivityAt.IsZero() || s.LastActivityAt.Before(s.CreatedAt) {
		t.Fatalf("last activity %v, created %v", s.LastActivityAt, s.CreatedAt)
	}
	if code := b.do("DELETE", "/v1/sessions/"+id, b.admin, nil, nil); code != http.StatusOK {
		t.Fatalf("stop: %d", code)
	}
	for deadline := time.Now().Add(wait); ; {
		last = readWatch(t, conn)
		if len(last.Sessions) == 1 && last.Sessions[0].State == StateStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the list never showed %s stopped: %+v", id, last.Sessions)
		}
	}

	// Revoking the admin token closes the watch.
	claims, ref := b.svc.Authorize(context.Background(), b.admin, tokens.Policy{Audience: tokens.AudienceAdmin})
	if ref != nil {
		t.Fatal(ref)
	}
	if err := b.svc.Revoke(context.Background(), claims.ID, claims.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != CloseTokenInvalid {
				t.Fatalf("after the revocation: %v; want close %d", err, CloseTokenInvalid)
			}
			break
		}
	}
}

// TestRenderMarkdown: a session's viewer gets its agent's Markdown as
// sanitized HTML; another session's viewer token is refused; the number
// of texts is bounded.
func TestRenderMarkdown(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	cr := b.create("ask", "")
	var out struct {
		HTML []string `json:"html"`
	}
	code := b.do("POST", "/v1/sessions/"+cr.Session.ID+"/render", cr.ViewerToken,
		RenderRequest{Markdown: []string{"# Title\n\n**bold**", `<img src=x onerror=alert(1)> [x](javascript:alert(1))`}}, &out)
	if code != http.StatusOK || len(out.HTML) != 2 {
		t.Fatalf("render = %d %+v", code, out)
	}
	if out.HTML[0] != "<h1>Title</h1>\n<p><strong>bold</strong></p>\n" {
		t.Errorf("markdown: %q", out.HTML[0])
	}
	if strings.Contains(out.HTML[1], "<img") || strings.Contains(out.HTML[1], "javascript:") {
		t.Errorf("not inert: %q", out.HTML[1])
	}
	other := b.create("ask", "")
	if code := b.do("POST", "/v1/sessions/"+cr.Session.ID+"/render", other.ViewerToken, RenderRequest{Markdown: []string{"x"}}, nil); code != http.StatusForbidden {
		t.Errorf("another session's viewer: %d", code)
	}
	if code := b.do("POST", "/v1/sessions/"+cr.Session.ID+"/render", b.admin, RenderRequest{Markdown: make([]string, MaxRenderTexts+1)}, nil); code != http.StatusBadRequest {
		t.Errorf("too many texts: %d", code)
	}
}

// TestFailedStartKeepsItsError: an agent that fails to start leaves its
// error on the session after it has ended (GET /v1/sessions/{id}), not
// only "agent failed to start".
func TestFailedStartKeepsItsError(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	entry := filepath.Join(b.dataDir, "not-installed", "node_modules", "@agentclientprotocol", "claude-agent-acp", "dist", "index.js")
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, []byte("process.exit(3)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Session Info `json:"session"`
	}
	b.do("POST", "/v1/sessions", b.admin, map[string]any{"project": b.project.ID, "agent": "claude-code",
		"model": "claude-sonnet-4-6", "credential": map[string]string{"kind": "platform-proxy"}}, &resp)
	if resp.Session.State != StateFailed || resp.Session.LastError == "" {
		t.Fatalf("create: %+v", resp.Session)
	}
	var got Info
	if code := b.do("GET", "/v1/sessions/"+resp.Session.ID, b.admin, nil, &got); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	if got.State != StateFailed || got.LastError != resp.Session.LastError {
		t.Fatalf("the ended session: state %s, last error %q; want %q", got.State, got.LastError, resp.Session.LastError)
	}
	raw, _ := json.Marshal(got)
	t.Logf("%s", raw)
}
