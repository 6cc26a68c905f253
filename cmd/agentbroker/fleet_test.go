package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/internal/pgtest"
	"github.com/agentbroker/agentbroker/sessions"
)

// readyz is a broker's /readyz.
func readyz(t *testing.T, b *broker) (node string, owned int) {
	t.Helper()
	resp, body := b.do("GET", "/readyz", "", nil)
	var r struct {
		Node          string
		Store         string
		OwnedSessions int `json:"owned_sessions"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Node == "" || r.Store != "postgres" {
		t.Fatalf("/readyz = %d %s; want ready, with the node and its store", resp.StatusCode, body)
	}
	return r.Node, r.OwnedSessions
}

// watcher is a viewer's WebSocket on one node, keeping every event frame.
type watcher struct {
	c      *websocket.Conn
	mu     sync.Mutex
	frames []sessions.Frame
	errs   []string // error frames
	err    error
}

// send sends a viewer's message (a prompt, a cancel) on the socket.
func (w *watcher) send(t *testing.T, m sessions.ClientMessage) {
	t.Helper()
	if err := w.c.WriteJSON(m); err != nil {
		t.Fatalf("send %s on the viewer's socket: %v", m.Type, err)
	}
}

// sawReply reports whether the viewer saw the agent say text.
func (w *watcher) sawReply(text string) bool {
	for _, f := range w.seen() {
		if f.Type == "update" && strings.Contains(string(f.Data), text) {
			return true
		}
	}
	return false
}

func watch(t *testing.T, b *broker, id, token string) *watcher {
	t.Helper()
	u := "ws" + strings.TrimPrefix(b.url(""), "http") + "/v1/sessions/" + id + "/events?after=0"
	c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatalf("dial events on %s: %v", b.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	w := &watcher{c: c}
	go func() {
		for {
			var f sessions.Frame
			if err := c.ReadJSON(&f); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			if f.Seq > 0 {
				w.frames = append(w.frames, f)
			} else if f.Error != "" {
				w.errs = append(w.errs, f.Error)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watcher) seen() []sessions.Frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sessions.Frame(nil), w.frames...)
}

// has reports whether a state event to state was seen after seq after.
func (w *watcher) has(after int64, state string) bool {
	for _, f := range w.seen() {
		var d struct{ State string }
		if f.Seq > after && f.Type == "state" && json.Unmarshal(f.Data, &d) == nil && d.State == state {
			return true
		}
	}
	return false
}

// TestFleet: three brokers on one PostgreSQL. A session started on node 1
// (the reference agent) is owned by node 1 (a lease): nodes 2 and 3,
// started after it, do not "recover" it. It is watched over WebSocket on
// node 2 (its log followed from the database) and prompted through node 3
// (forwarded to node 1); a token of it is used through /mcp on node 2,
// revoked on node 3 and refused at node 1; the agent reads its task with
// its own MCP token (node 1's /mcp), which is then revoked on node 3 and
// refused at node 1 on the agent's next call. Each node names itself and
// counts its sessions in /readyz and /metrics. Then node 1 is killed
// (SIGKILL): once its lease expires, a surviving node takes the session
// over with session/load; it answers prompts through either survivor, and
// the viewer on node 2 saw it all, every event in order, none lost,
// changed or repeated.
func TestFleet(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	dirs := []string{filepath.Join(t.TempDir(), "n1"), filepath.Join(t.TempDir(), "n2"), filepath.Join(t.TempDir(), "n3")}
	// One sessions directory for all (one machine): the reference agent
	// keeps its state there, which session/load on another node reads.
	shared := "AGENTBROKER_SESSIONS_DIR=" + sessionsDirFor(t, dirs[0])
	env := []string{"AGENTBROKER_DATABASE=" + url, "AGENTBROKER_LEASE_TTL=2s", shared}
	args := []string{"--custom-agent", refagentBin, "--custom-agent-env", "REFAGENT_STATE_DIR={session_dir}"}
	b1 := startBrokerArgs(t, dirs[0], args, env...)
	admin := adminToken(t, dirs[0])
	var p, task struct{ ID string }
	_, body := b1.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"fleet"}`))
	json.Unmarshal([]byte(body), &p)
	_, body = b1.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"Fleet task","description":"marker-fleet"}`))
	json.Unmarshal([]byte(body), &task)
	resp, body := b1.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q,"permission_policy":"allow-all"}`, p.ID, agentDir(t))))
	var created sessions.CreateResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("create session on node 1 = %d %s", resp.StatusCode, body)
	}
	id, viewer := created.Session.ID, created.ViewerToken
	prompt := func(b *broker, text string) (int, string) {
		t.Helper()
		resp, body := b.do("POST", "/v1/sessions/"+id+"/prompt?wait=true", viewer, strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
		return resp.StatusCode, body
	}
	if code, body := prompt(b1, "one"); code != 200 || !strings.Contains(body, "You said: one") {
		t.Fatalf("prompt on node 1 = %d %s", code, body)
	}

	b2 := startBrokerArgs(t, dirs[1], args, env...)
	b3 := startBrokerArgs(t, dirs[2], args, env...)
	node1, owned1 := readyz(t, b1)
	node2, owned2 := readyz(t, b2)
	node3, owned3 := readyz(t, b3)
	if node1 == node2 || node2 == node3 || owned1 != 1 || owned2 != 0 || owned3 != 0 {
		t.Fatalf("readyz: %s owns %d, %s %d, %s %d; want three names, 1, 0 and 0", node1, owned1, node2, owned2, node3, owned3)
	}
	for _, b := range []*broker{b2, b3} {
		if strings.Contains(b.log(), "session recovered") {
			t.Fatalf("a node started later recovered node 1's live session:\n%s", b.log())
		}
	}
	_, metrics := b1.do("GET", "/metrics", "", nil)
	for _, want := range []string{`agentbroker_node_info{node="` + node1 + `",store="postgres"} 1`, "agentbroker_node_owned_sessions 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("node 1's /metrics lacks %s", want)
		}
	}

	// Watched on node 2, prompted through node 3.
	w := watch(t, b2, id, viewer)
	if code, body := prompt(b3, "two"); code != 200 || !strings.Contains(body, "You said: two") {
		t.Fatalf("prompt through node 3 (forwarded to node 1) = %d %s", code, body)
	}
	waitFor(t, "the viewer on node 2 to see the turn prompted through node 3", func() bool { return w.sawReply("You said: two") })
	// A prompt sent on the viewer's socket on node 2 reaches node 1 too.
	w.send(t, sessions.ClientMessage{Type: "prompt", Text: "over the socket"})
	waitFor(t, "the prompt sent on node 2's socket to be answered", func() bool {
		w.mu.Lock()
		errs := w.errs
		w.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("the viewer's prompt on node 2 was refused: %v", errs)
		}
		return w.sawReply("You said: over the socket")
	})

	// A token of the session: used through /mcp on node 2, revoked on node
	// 3, refused at node 1.
	var minted struct{ Token, JTI string }
	_, body = b1.do("POST", "/v1/tokens", admin, strings.NewReader(fmt.Sprintf(
		`{"subject":"u","purpose":"mcp","project":%q,"session":%q,"scopes":["tasks:read","project:read"],"ttl":"10m"}`, p.ID, id)))
	json.Unmarshal([]byte(body), &minted)
	if got, err := getTaskVia(t, b2, minted.Token, task.ID); err != nil || !strings.Contains(got, "marker-fleet") {
		t.Fatalf("get_task through node 2's /mcp = %q, %v", got, err)
	}
	if _, err := getTaskVia(t, b1, minted.Token, task.ID); err != nil {
		t.Fatalf("get_task through node 1's /mcp before the revocation: %v", err)
	}
	admin3 := adminToken(t, dirs[2])
	if resp, body := b3.do("POST", "/v1/tokens/revoke", admin3, strings.NewReader(fmt.Sprintf(`{"jti":%q}`, minted.JTI))); resp.StatusCode != 200 {
		t.Fatalf("revoke on node 3 = %d %s", resp.StatusCode, body)
	}
	waitFor(t, "node 1 to refuse the token revoked on node 3", func() bool {
		_, err := getTaskVia(t, b1, minted.Token, task.ID)
		return err != nil
	})

	// The agent's own MCP token (it calls node 1's /mcp): its task read
	// through it, then the token revoked on node 3, and the agent's next
	// call refused at node 1.
	getTask := fmt.Sprintf(`call get_task with {"id":%q}`, task.ID)
	if code, body := prompt(b3, getTask); code != 200 || !strings.Contains(body, "marker-fleet") {
		t.Fatalf("the agent's get_task (through node 1's /mcp) = %d %s", code, body)
	}
	session := func(b *broker) sessions.Info {
		t.Helper()
		resp, body := b.do("GET", "/v1/sessions/"+id, viewer, nil)
		var in sessions.Info
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &in) != nil || in.MCP == nil {
			t.Fatalf("GET session = %d %s", resp.StatusCode, body)
		}
		return in
	}
	agentToken := session(b1).MCP.TokenID
	if resp, body := b3.do("POST", "/v1/tokens/revoke", admin3, strings.NewReader(fmt.Sprintf(`{"jti":%q}`, agentToken))); resp.StatusCode != 200 {
		t.Fatalf("revoke the agent's MCP token on node 3 = %d %s", resp.StatusCode, body)
	}
	waitFor(t, "node 1 to refuse the agent's MCP token revoked on node 3", func() bool {
		code, body := prompt(b3, getTask)
		return code == 200 && !strings.Contains(body, "marker-fleet")
	})
	if st := session(b1).MCP.Status; st != sessions.MCPFailed {
		t.Errorf("MCP status after the agent used its revoked token = %q; want %q", st, sessions.MCPFailed)
	}

	// Node 1 dies.
	before := w.seen()
	lastBefore := before[len(before)-1].Seq
	b1.cmd.Process.Kill()
	<-b1.exited
	waitFor(t, "a surviving node to take the session over", func() bool {
		_, o2 := readyz(t, b2)
		_, o3 := readyz(t, b3)
		return o2+o3 == 1
	})
	waitFor(t, "the viewer on node 2 to see the session ready again", func() bool { return w.has(lastBefore, "ready") })
	for i, b := range []*broker{b2, b3} {
		if code, body := prompt(b, fmt.Sprintf("after %d", i)); code != 200 || !strings.Contains(body, fmt.Sprintf("You said: after %d", i)) {
			t.Fatalf("prompt through node %d after the takeover = %d %s", i+2, code, body)
		}
	}
	if !strings.Contains(b2.log()+b3.log(), "taken over") {
		t.Errorf("no node logs the takeover")
	}

	// The viewer kept every event it had seen, then saw the rest, in
	// order, as the database holds them.
	waitFor(t, "the viewer on node 2 to see the last turn", func() bool { return w.sawReply("You said: after 1") })
	seen := w.seen()
	stored := (&sessionOn{b: b3, id: id, admin: admin3}).events(t)
	_, o2 := readyz(t, b2)
	t.Logf("the viewer on node 2 saw %d events, %d before node 1 died; stored %d; taken over by node %d",
		len(seen), len(before), len(stored), map[int]int{1: 2, 0: 3}[o2])
	for i, f := range seen {
		if f.Seq != int64(i+1) {
			t.Fatalf("viewer frame %d has seq %d: a gap or a repeat", i, f.Seq)
		}
		if i >= len(stored) || stored[i].Type != f.Type || string(stored[i].Data) != string(f.Data) {
			t.Fatalf("viewer frame %d (%s) differs from the stored event", f.Seq, f.Type)
		}
		if i < len(before) && (before[i].Type != f.Type || string(before[i].Data) != string(f.Data)) {
			t.Fatalf("event %d changed across the takeover", f.Seq)
		}
	}

	// A stop through the node that does not own it (forwarded with an
	// admin token): the session ends, and the viewer sees the end.
	other := b3
	if _, o3 := readyz(t, b3); o3 == 1 {
		other = b2
	}
	admin2 := adminToken(t, dirs[1])
	resp, body = other.do("DELETE", "/v1/sessions/"+id, admin2, nil)
	var in sessions.Info
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &in) != nil || in.State != sessions.StateStopped {
		t.Fatalf("stop through the node that does not own the session = %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the viewer on node 2 to see the session stopped", func() bool { return w.has(0, "stopped") })
	for _, b := range []*broker{b2, b3} {
		if _, owned := readyz(t, b); owned != 0 {
			t.Errorf("a node still owns %d sessions after the stop", owned)
		}
		if err := b.stop(syscall.SIGTERM); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
}
