package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// logMap is a LogSource over fixed logs.
type logMap map[string]*Log

func (m logMap) ViewLog(_ context.Context, id string) (*Log, error) {
	if l, ok := m[id]; ok {
		return l, nil
	}
	return nil, store.ErrNotFound
}

type recordingController struct {
	mu   sync.Mutex
	msgs []ClientMessage
}

func (c *recordingController) Control(_ context.Context, _ string, _ tokens.Claims, m ClientMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Type == "prompt" && m.Text == "explode" {
		return errors.New("cannot do that")
	}
	c.msgs = append(c.msgs, m)
	return nil
}

type viewerFixture struct {
	t     *testing.T
	srv   *httptest.Server
	log   *Log
	svc   *tokens.Service
	ctrl  *recordingController
	watch string // viewer token, session:view
	drive string // viewer token, session:view and session:control
}

func newViewerFixture(t *testing.T, opts ViewerOptions) *viewerFixture {
	t.Helper()
	return newViewerFixtureAt(t, func(string) ViewerOptions { return opts })
}

// newViewerFixtureAt is newViewerFixture with options that may name the
// server's own URL.
func newViewerFixtureAt(t *testing.T, options func(url string) ViewerOptions) *viewerFixture {
	t.Helper()
	db := openDB(t)
	newSession(t, db, "s1")
	j := NewJournal(db, nil)
	t.Cleanup(j.Close)
	ctx := context.Background()
	l, err := j.OpenLog(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &viewerFixture{t: t, log: l, svc: svc, ctrl: &recordingController{}}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	opts := options(f.srv.URL)
	opts.Tokens, opts.Logs, opts.Control = svc, logMap{"s1": l}, f.ctrl
	mux.Handle("GET /v1/sessions/{id}/events", ViewerHandler(opts))
	f.watch = f.mint(tokens.AudienceViewer, "s1", tokens.ScopeSessionView)
	f.drive = f.mint(tokens.AudienceViewer, "s1", tokens.ScopeSessionView, tokens.ScopeSessionControl)
	return f
}

func (f *viewerFixture) mint(aud tokens.Audience, session string, scopes ...tokens.Scope) string {
	f.t.Helper()
	g := tokens.Grant{Subject: "u", Audience: aud, Scopes: scopes}
	if aud != tokens.AudienceAdmin {
		g.Project, g.Session = "p", session
	}
	raw, _, err := f.svc.Mint(context.Background(), g)
	if err != nil {
		f.t.Fatal(err)
	}
	return raw
}

func (f *viewerFixture) dial(token string, after int64, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + fmt.Sprintf("/v1/sessions/s1/events?after=%d", after)
	if hdr == nil {
		hdr = http.Header{}
	}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	return websocket.DefaultDialer.Dial(u, hdr)
}

func (f *viewerFixture) appendN(n int) {
	f.t.Helper()
	for i := range n {
		if _, err := f.log.Append(context.Background(), "update", map[string]int{"i": i}); err != nil {
			f.t.Fatal(err)
		}
	}
}

func readFrame(t *testing.T, c *websocket.Conn) Frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f Frame
	if err := c.ReadJSON(&f); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

func TestViewerReplayThenLive(t *testing.T) {
	t.Parallel()
	f := newViewerFixture(t, ViewerOptions{})
	f.appendN(5)
	c, _, err := f.dial(f.watch, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for want := int64(3); want <= 5; want++ {
		if fr := readFrame(t, c); fr.Seq != want || fr.Type != "update" || fr.Time == nil {
			t.Fatalf("frame = %+v; want seq %d", fr, want)
		}
	}
	f.appendN(2)
	for want := int64(6); want <= 7; want++ {
		if fr := readFrame(t, c); fr.Seq != want {
			t.Fatalf("live frame = %+v; want seq %d", fr, want)
		}
	}
	// The end of the session reaches the viewer as a close it can tell apart.
	f.log.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, CloseSessionEnded) {
		t.Fatalf("after the log closed: %v; want close %d", err, CloseSessionEnded)
	}
}

func TestViewerAuth(t *testing.T) {
	t.Parallel()
	f := newViewerFixture(t, ViewerOptions{AllowedOrigins: []string{"http://console.example"}})
	other := f.mint(tokens.AudienceViewer, "s2", tokens.ScopeSessionView)
	controlOnly := f.mint(tokens.AudienceViewer, "s1", tokens.ScopeSessionControl)
	mcp := f.mint(tokens.AudienceMCP, "s1", tokens.ScopeTasksRead)
	admin := f.mint(tokens.AudienceAdmin, "", tokens.ScopeAdmin)
	for _, tt := range []struct {
		name  string
		token string
		hdr   http.Header
		code  int
	}{
		{"no token", "", nil, 401},
		{"garbage", "abc.def.ghi", nil, 401},
		{"MCP token", mcp, nil, 401},
		{"another session", other, nil, 403},
		{"no session:view", controlOnly, nil, 403},
		{"foreign origin", f.watch, http.Header{"Origin": {"http://evil.example"}}, 403},
		{"allowed origin", f.watch, http.Header{"Origin": {"http://console.example"}}, 101},
		{"viewer", f.watch, nil, 101},
		{"admin", admin, nil, 101},
	} {
		c, resp, err := f.dial(tt.token, 0, tt.hdr)
		if c != nil {
			c.Close()
		}
		if resp == nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.StatusCode != tt.code {
			t.Errorf("%s: status %d; want %d", tt.name, resp.StatusCode, tt.code)
		}
	}
	// A browser offers the token as a subprotocol.
	d := websocket.Dialer{Subprotocols: []string{Subprotocol, "bearer." + f.watch}}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(f.srv.URL, "http")+"/v1/sessions/s1/events", nil)
	if err != nil {
		t.Fatalf("subprotocol token: %v", err)
	}
	c.Close()
	if resp.Header.Get("Sec-WebSocket-Protocol") != Subprotocol {
		t.Fatalf("server chose subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	if _, resp, _ := f.dial(f.watch, -1, nil); resp == nil || resp.StatusCode != 400 {
		t.Fatalf("after=-1 accepted")
	}
}

func TestViewerControl(t *testing.T) {
	t.Parallel()
	f := newViewerFixture(t, ViewerOptions{})
	watcher, _, err := f.dial(f.watch, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	watcher.WriteJSON(ClientMessage{Type: "prompt", Text: "hi"})
	if fr := readFrame(t, watcher); fr.Type != "error" || !strings.Contains(fr.Error, "session:control") {
		t.Fatalf("prompt without session:control answered %+v", fr)
	}

	driver, _, err := f.dial(f.drive, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer driver.Close()
	driver.WriteJSON(ClientMessage{Type: "prompt", Text: "hello"})
	driver.WriteJSON(ClientMessage{Type: "prompt", Text: "explode"})
	if fr := readFrame(t, driver); fr.Type != "error" || fr.Error != "cannot do that" {
		t.Fatalf("failing control answered %+v", fr)
	}
	// Refused before the controller: an unknown type, trailing data.
	driver.WriteJSON(ClientMessage{Type: "explode"})
	if fr := readFrame(t, driver); fr.Type != "error" || !strings.Contains(fr.Error, "unknown message type") {
		t.Fatalf("unknown type answered %+v", fr)
	}
	driver.WriteMessage(websocket.TextMessage, []byte(`{"type":"cancel"} {"type":"cancel"}`))
	if fr := readFrame(t, driver); fr.Type != "error" || !strings.Contains(fr.Error, "trailing") {
		t.Fatalf("trailing data answered %+v", fr)
	}
	driver.WriteMessage(websocket.TextMessage, []byte(`{"type":"prompt","sudo":true}`))
	if fr := readFrame(t, driver); fr.Type != "error" || !strings.Contains(fr.Error, "bad message") {
		t.Fatalf("unknown field answered %+v", fr)
	}
	f.ctrl.mu.Lock()
	defer f.ctrl.mu.Unlock()
	if len(f.ctrl.msgs) != 1 || f.ctrl.msgs[0].Text != "hello" {
		t.Fatalf("controller got %+v", f.ctrl.msgs)
	}
}

// TestViewerSlowIsDisconnectedNotDropped: a viewer that stops reading is
// disconnected (the agent is not slowed: appends go on), and reconnecting
// with the last seq it got brings exactly the rest.
func TestViewerSlowIsDisconnectedNotDropped(t *testing.T) {
	t.Parallel()
	f := newViewerFixture(t, ViewerOptions{WriteTimeout: 100 * time.Millisecond})
	c, _, err := f.dial(f.watch, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10)
	const total = 200 // ~13 MiB: more than the socket buffers hold
	start := time.Now()
	for i := range total {
		if _, err := f.log.Append(context.Background(), "chunk", map[string]any{"i": i, "pad": big}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("appended %d events in %v while the viewer did not read", total, time.Since(start))
	time.Sleep(500 * time.Millisecond) // let the server's write deadline pass
	var last int64
	var closeErr error
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var fr Frame
		if closeErr = c.ReadJSON(&fr); closeErr != nil {
			break
		}
		if fr.Seq != last+1 {
			t.Fatalf("gap: got seq %d after %d", fr.Seq, last)
		}
		last = fr.Seq
	}
	c.Close()
	if last >= total {
		t.Fatalf("the slow viewer was never disconnected (got all %d)", last)
	}
	t.Logf("disconnected after %d events: %v", last, closeErr)
	// Reconnect from the last seq received until everything has arrived:
	// each connection continues exactly where the previous one stopped.
	// (Under the race detector the reader is slow enough to be dropped
	// again; that is the behaviour under test, not a failure.)
	for reconnects := 0; last < total; reconnects++ {
		if reconnects > 100 {
			t.Fatalf("no progress: stuck at %d", last)
		}
		c2, _, err := f.dial(f.watch, last, nil)
		if err != nil {
			t.Fatal(err)
		}
		for last < total {
			c2.SetReadDeadline(time.Now().Add(10 * time.Second))
			var fr Frame
			if err := c2.ReadJSON(&fr); err != nil {
				break
			}
			if fr.Seq != last+1 {
				t.Fatalf("resumed frame %d; want %d", fr.Seq, last+1)
			}
			last = fr.Seq
		}
		c2.Close()
	}
}

// TestViewerChurn: during a long stream, viewers connect and drop at
// random, each reconnecting from the last seq it saw; every one ends with
// exactly the full sequence, no gap and no duplicate.
func TestViewerChurn(t *testing.T) {
	t.Parallel()
	f := newViewerFixture(t, ViewerOptions{})
	const total, viewers = 400, 12
	var wg sync.WaitGroup
	results := make([][]int64, viewers)
	for v := range viewers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(v), 7))
			var seen []int64
			var last int64
			for last < total {
				c, _, err := f.dial(f.watch, last, nil)
				if err != nil {
					t.Error(err)
					return
				}
				budget := 1 + rng.IntN(60) // frames before this viewer drops
				for ; budget > 0 && last < total; budget-- {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					var fr Frame
					if err := c.ReadJSON(&fr); err != nil {
						t.Error(err)
						c.Close()
						return
					}
					seen = append(seen, fr.Seq)
					last = fr.Seq
				}
				c.Close()
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			}
			results[v] = seen
		})
	}
	for i := range total {
		if _, err := f.log.Append(context.Background(), "update", i); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	for v, seen := range results {
		if len(seen) != total {
			t.Fatalf("viewer %d saw %d events; want %d", v, len(seen), total)
		}
		for i, s := range seen {
			if s != int64(i+1) {
				t.Fatalf("viewer %d: position %d has seq %d", v, i, s)
			}
		}
	}
}

func TestFrameJSON(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	b, _ := json.Marshal(Frame{Seq: 3, Type: "update", Time: &now, Data: json.RawMessage(`{"a":1}`)})
	if string(b) != `{"seq":3,"type":"update","time":"2026-11-29T00:00:00Z","data":{"a":1}}` {
		t.Fatalf("frame JSON = %s", b)
	}
	b, _ = json.Marshal(Frame{Type: "error", Error: "x"})
	if string(b) != `{"type":"error","error":"x"}` {
		t.Fatalf("error frame JSON = %s", b)
	}
}

// TestViewerHeartbeat: a viewer that answers pings (it reads, so its
// client answers them) stays connected across many intervals; one that
// has gone silent is disconnected after three.
func TestViewerHeartbeat(t *testing.T) {
	t.Parallel()
	// 200ms: a live viewer must answer within three intervals, which a
	// loaded machine (two shared cores) may not give a 50ms interval.
	f := newViewerFixture(t, ViewerOptions{PingInterval: 200 * time.Millisecond})
	alive, _, err := f.dial(f.watch, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	var pings atomic.Int32
	alive.SetPingHandler(func(data string) error {
		pings.Add(1)
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	silent, _, err := f.dial(f.watch, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// The live viewer reads (pings are answered in ReadMessage) until it
	// has answered four pings, then gets an event: it stayed connected
	// across more intervals than the silent one is allowed.
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for pings.Load() < 4 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		f.appendN(1)
	}()
	if fr := readFrame(t, alive); fr.Seq != 1 {
		t.Fatalf("live viewer got %+v", fr)
	}
	if n := pings.Load(); n < 4 {
		t.Fatalf("live viewer saw %d pings before its event", n)
	}
	// The silent one answered none of those pings: the server hangs up.
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := silent.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("the silent viewer is still connected")
			}
			break
		}
	}
}

// closedWith reads from c until the server closes it, and returns the close
// code and reason; frames before the close are skipped. The bound is
// generous: the contract is a second.
func closedWith(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("the socket was not closed by the server within 5s: %v", err)
		}
		return ce.Code, ce.Text
	}
}

func (f *viewerFixture) mintFor(lifetime time.Duration, aud tokens.Audience, scopes ...tokens.Scope) (string, tokens.Claims) {
	f.t.Helper()
	g := tokens.Grant{Subject: "u", Audience: aud, Scopes: scopes, Lifetime: lifetime}
	if aud != tokens.AudienceAdmin {
		g.Project, g.Session = "p", "s1"
	}
	raw, c, err := f.svc.Mint(context.Background(), g)
	if err != nil {
		f.t.Fatal(err)
	}
	return raw, c
}

// TestViewerTokenRevokedOrExpired: a socket is authorized for as long as its
// token is valid, not just at the handshake. Revoking the token (or its
// session), or its expiry, closes the socket (CloseTokenInvalid, with the
// reason) even if the viewer sends nothing; admin tokens likewise.
func TestViewerTokenRevokedOrExpired(t *testing.T) {
	t.Parallel()
	f := newViewerFixture(t, ViewerOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		token  func() (string, func())
		reason string
	}{
		{"viewer token revoked", func() (string, func()) {
			raw, c := f.mintFor(time.Hour, tokens.AudienceViewer, tokens.ScopeSessionView, tokens.ScopeSessionControl)
			return raw, func() { f.svc.Revoke(ctx, c.ID, c.ExpiresAt) }
		}, "token revoked"},
		{"admin token revoked", func() (string, func()) {
			raw, c := f.mintFor(time.Hour, tokens.AudienceAdmin, tokens.ScopeAdmin)
			return raw, func() { f.svc.Revoke(ctx, c.ID, c.ExpiresAt) }
		}, "token revoked"},
		{"viewer token expired", func() (string, func()) {
			raw, _ := f.mintFor(2*time.Second, tokens.AudienceViewer, tokens.ScopeSessionView)
			return raw, func() {}
		}, "token expired"},
		// Last: it revokes every token of s1.
		{"session revoked", func() (string, func()) {
			raw, _ := f.mintFor(time.Hour, tokens.AudienceViewer, tokens.ScopeSessionView)
			return raw, func() { f.svc.RevokeSession(ctx, "s1") }
		}, "token revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, invalidate := tc.token()
			c, _, err := f.dial(raw, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			invalidate()
			if code, reason := closedWith(t, c); code != CloseTokenInvalid || reason != tc.reason {
				t.Fatalf("closed with %d %q; want %d %q", code, reason, CloseTokenInvalid, tc.reason)
			}
		})
	}
}

// TestViewerMessageAfterRevocation: a message sent with a token revoked
// since the handshake is not acted on, even before the periodic re-check
// comes round (here: never): the socket is closed in answer.
func TestViewerMessageAfterRevocation(t *testing.T) {
	t.Parallel()
	f := newViewerFixture(t, ViewerOptions{RecheckInterval: time.Hour})
	raw, claims := f.mintFor(time.Hour, tokens.AudienceViewer, tokens.ScopeSessionView, tokens.ScopeSessionControl)
	c, _, err := f.dial(raw, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A message the controller refuses, to know it was acted on.
	c.WriteJSON(ClientMessage{Type: "prompt", Text: "explode"})
	if fr := readFrame(t, c); fr.Type != "error" || fr.Error != "cannot do that" {
		t.Fatalf("before the revocation: %+v", fr)
	}
	if err := f.svc.Revoke(context.Background(), claims.ID, claims.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	c.WriteJSON(ClientMessage{Type: "prompt", Text: "after"})
	if code, reason := closedWith(t, c); code != CloseTokenInvalid || reason != "token revoked" {
		t.Fatalf("closed with %d %q; want %d token revoked", code, reason, CloseTokenInvalid)
	}
	f.ctrl.mu.Lock()
	defer f.ctrl.mu.Unlock()
	if len(f.ctrl.msgs) != 0 {
		t.Fatalf("controller got %+v after the revocation", f.ctrl.msgs)
	}
}

// TestViewerOriginIgnoresHost: the Origin rule is the broker's public URL
// and the allowed list, never the request's own Host: a DNS-rebinding page
// (Origin http://evil.example:PORT, Host evil.example:PORT) is refused with
// 403 and no upgrade.
func TestViewerOriginIgnoresHost(t *testing.T) {
	t.Parallel()
	f := newViewerFixtureAt(t, func(url string) ViewerOptions {
		return ViewerOptions{PublicURL: url, AllowedOrigins: []string{"https://console.example"}}
	})
	port := f.srv.Listener.Addr().(*net.TCPAddr).Port
	evil := fmt.Sprintf("evil.example:%d", port)
	for _, tc := range []struct {
		name string
		hdr  http.Header
		code int
	}{
		{"DNS rebinding", http.Header{"Origin": {"http://" + evil}, "Host": {evil}}, 403},
		{"foreign origin", http.Header{"Origin": {"http://" + evil}}, 403},
		{"own origin", http.Header{"Origin": {f.srv.URL}}, 101},
		{"own origin, localhost", http.Header{"Origin": {fmt.Sprintf("http://localhost:%d", port)}}, 101},
		{"allowed origin", http.Header{"Origin": {"https://console.example"}}, 101},
		{"no origin", nil, 101},
	} {
		c, resp, err := f.dial(f.watch, 0, tc.hdr)
		if c != nil {
			c.Close()
		}
		if resp == nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d; want %d", tc.name, resp.StatusCode, tc.code)
		}
	}
}
