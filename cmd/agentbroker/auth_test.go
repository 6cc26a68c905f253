package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/sessions"
)

// TestServeEventsSocket: on a real serve, the events WebSocket follows the
// same Origin rule as /mcp (the broker's own origin and --allowed-origin,
// never the request's Host: DNS rebinding is refused), and a socket lives
// only as long as its token: revoked or expired, the server closes it with
// CloseTokenInvalid and the reason, and a prompt sent over it after expiry
// does not run.
func TestServeEventsSocket(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBrokerArgs(t, dataDir, []string{"--allowed-origin", "https://console.example"},
		"AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	fx := newFixtures(t, b, admin)
	resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, fx.project, agentDir(t))))
	var created sessions.CreateResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("create session = %d %s", resp.StatusCode, body)
	}
	id := created.Session.ID
	events := "ws" + strings.TrimPrefix(b.url(""), "http") + "/v1/sessions/" + id + "/events?after=1000000"
	dial := func(token string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Authorization", "Bearer "+token)
		return websocket.DefaultDialer.Dial(events, hdr)
	}
	mint := func(ttl string) (token, jti string) {
		var m struct{ Token, JTI string }
		resp, body := b.do("POST", "/v1/tokens", admin, strings.NewReader(fmt.Sprintf(
			`{"subject":"t","purpose":"viewer","project":%q,"session":%q,"scopes":["session:view","session:control"],"ttl":%q}`,
			fx.project, id, ttl)))
		if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("mint = %d %s", resp.StatusCode, body)
		}
		return m.Token, m.JTI
	}
	closed := func(t *testing.T, c *websocket.Conn) (int, string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second)) // the contract is 1s
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

	t.Run("origin", func(t *testing.T) {
		host := "evil.example:" + b.addr[strings.LastIndex(b.addr, ":")+1:]
		for _, tc := range []struct {
			name string
			hdr  http.Header
			code int
		}{
			{"DNS rebinding", http.Header{"Origin": {"http://" + host}, "Host": {host}}, 403},
			{"own origin", http.Header{"Origin": {b.url("")}}, 101},
			{"allowed origin", http.Header{"Origin": {"https://console.example"}}, 101},
			{"no origin", nil, 101},
		} {
			c, resp, err := dial(created.ViewerToken, tc.hdr)
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
		// /mcp answers the rebinding request the same way.
		if resp, _ := b.do("POST", "/mcp", fx.mcp, strings.NewReader(`{}`), "Origin", "http://"+host, "Host", host); resp.StatusCode != 403 {
			t.Errorf("/mcp, DNS rebinding: %d; want 403", resp.StatusCode)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		tok, jti := mint("1h")
		c, _, err := dial(tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if resp, body := b.do("POST", "/v1/tokens/revoke", admin, strings.NewReader(`{"jti":"`+jti+`"}`)); resp.StatusCode/100 != 2 {
			t.Fatalf("revoke = %d %s", resp.StatusCode, body)
		}
		if code, reason := closed(t, c); code != sessions.CloseTokenInvalid || reason != "token revoked" {
			t.Fatalf("closed with %d %q; want %d \"token revoked\"", code, reason, sessions.CloseTokenInvalid)
		}
	})

	t.Run("expired", func(t *testing.T) {
		tok, _ := mint("2s")
		c, _, err := dial(tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if code, reason := closed(t, c); code != sessions.CloseTokenInvalid || reason != "token expired" {
			t.Fatalf("closed with %d %q; want %d \"token expired\"", code, reason, sessions.CloseTokenInvalid)
		}
		// The token is within Verify's leeway, so the handshake still
		// passes; the socket is closed at once and its prompt never runs.
		c2, _, err := dial(tok, nil)
		if err == nil {
			c2.WriteJSON(sessions.ClientMessage{Type: "prompt", Text: "run after expiry"})
			if code, reason := closed(t, c2); code != sessions.CloseTokenInvalid || reason != "token expired" {
				t.Errorf("after expiry: closed with %d %q", code, reason)
			}
			c2.Close()
		}
		var in sessions.Info
		resp, body := b.do("GET", "/v1/sessions/"+id, admin, nil)
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &in) != nil {
			t.Fatalf("get session = %d %s", resp.StatusCode, body)
		}
		if in.Turn != 0 {
			t.Fatalf("a prompt sent with an expired token ran: turn %d", in.Turn)
		}
	})
}
