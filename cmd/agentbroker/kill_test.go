package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/sessions"
)

// TestKill9DuringTurn kills the broker with SIGKILL in the middle of a
// turn that floods events, restarts it on the same data directory, and
// checks that every event a viewer had received before the kill (each was
// committed before it was sent) is still there, in order, with no gap.
func TestKill9DuringTurn(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)

	var p struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"k9"}`))
	json.Unmarshal([]byte(body), &p)
	resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q,"permission_policy":"allow-all"}`, p.ID, t.TempDir())))
	var created sessions.CreateResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("create session = %d %s", resp.StatusCode, body)
	}
	id := created.Session.ID

	dial := func(b *broker, after int64) *websocket.Conn {
		t.Helper()
		u := "ws" + strings.TrimPrefix(b.url(""), "http") + fmt.Sprintf("/v1/sessions/%s/events?after=%d", id, after)
		c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + admin}})
		if err != nil {
			t.Fatalf("dial events: %v", err)
		}
		return c
	}
	c := dial(b, 0)
	if resp, body := b.do("POST", "/v1/sessions/"+id+"/prompt", admin, strings.NewReader(`{"text":"fault:flood 20000"}`)); resp.StatusCode != 202 {
		t.Fatalf("prompt = %d %s", resp.StatusCode, body)
	}
	var seen int64
	updates := 0
	for updates < 300 {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		var f sessions.Frame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("read events: %v (after %d)", err, seen)
		}
		if f.Seq != seen+1 {
			t.Fatalf("gap before the kill: %d after %d", f.Seq, seen)
		}
		seen = f.Seq
		if f.Type == "update" {
			updates++
		}
	}
	b.cmd.Process.Kill() // SIGKILL: no shutdown of any kind
	<-b.exited
	c.Close()
	t.Logf("killed the broker after a viewer had %d events", seen)

	b2 := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	c2 := dial(b2, 0)
	defer c2.Close()
	var got int64
	for got < seen {
		c2.SetReadDeadline(time.Now().Add(20 * time.Second))
		var f sessions.Frame
		if err := c2.ReadJSON(&f); err != nil {
			t.Fatalf("after the restart, the log has %d of the %d events acknowledged before the kill: %v", got, seen, err)
		}
		if f.Seq != got+1 {
			t.Fatalf("after the restart: seq %d follows %d", f.Seq, got)
		}
		got = f.Seq
	}
	resp, body = b2.do("GET", "/v1/sessions/"+id, admin, nil)
	var info sessions.Info
	json.Unmarshal([]byte(body), &info)
	if resp.StatusCode != 200 || info.State == sessions.StatePrompting || info.State == sessions.StateStarting {
		t.Fatalf("after the restart the session is %d %q; want it recovered or interrupted", resp.StatusCode, info.State)
	}
	t.Logf("after the restart: all %d events there; session %s (%s)", seen, info.State, info.LastError)
}
