package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q,"permission_policy":"allow-all"}`, p.ID, agentDir(t))))
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
	// Recovery runs beside the server (the relaunched agent connects back
	// to its MCP endpoint): the session settles shortly after the start.
	var info sessions.Info
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, body = b2.do("GET", "/v1/sessions/"+id, admin, nil)
		info = sessions.Info{}
		json.Unmarshal([]byte(body), &info)
		if resp.StatusCode == 200 && info.State != sessions.StatePrompting && info.State != sessions.StateStarting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart the session is %d %q; want it recovered or interrupted", resp.StatusCode, info.State)
		}
	}
	t.Logf("after the restart: all %d events there; session %s (%s)", seen, info.State, info.LastError)
}

// TestKill9Random kills the broker with SIGKILL at a random (seeded,
// logged) moment while several sessions stream a flood to their viewers,
// restarts it on the same data directory, and checks what was
// acknowledged before the kill: every event a viewer had received is in
// the log, in order, without a gap; every acknowledged prompt is there;
// the project created before is there; a token revoked before is still
// refused; and no session is left live without an agent (a live one
// answers a turn, the others are ended with a reason). A few rounds in
// CI; AGENTBROKER_LONG_FAULTS=1 runs many more.
func TestKill9Random(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(faultSeed(t), 99))
	rounds, perRound := 2, 3
	if longFaults() {
		rounds, perRound = 12, 4
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	args := []string{"--custom-agent", refagentBin, "--custom-agent-env", "REFAGENT_STATE_DIR={session_dir}"}
	b := startBrokerArgs(t, dataDir, args)
	admin := adminToken(t, dataDir)
	fx := newFixtures(t, b, admin)

	type watched struct {
		s        *sessionOn
		seen     atomic.Int64
		prompted bool
	}
	var all []*watched
	for round := range rounds {
		// A token revoked before the kill (the 200 is the acknowledgement).
		var m struct{ Token, JTI string }
		resp, body := b.do("POST", "/v1/tokens", admin, strings.NewReader(`{"subject":"k9","purpose":"mcp","project":"`+fx.project+
			`","session":"ses_k9","agent":"codex","scopes":["tasks:read"]}`))
		if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("mint = %d %s", resp.StatusCode, body)
		}
		if resp, body := b.do("POST", "/v1/tokens/revoke", admin, strings.NewReader(`{"jti":"`+m.JTI+`"}`)); resp.StatusCode != 200 {
			t.Fatalf("revoke = %d %s", resp.StatusCode, body)
		}
		var proj struct{ ID string }
		resp, body = b.do("POST", "/v1/projects", admin, strings.NewReader(fmt.Sprintf(`{"name":"round %d"}`, round)))
		if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &proj) != nil {
			t.Fatalf("create project = %d %s", resp.StatusCode, body)
		}

		// Sessions streaming to their viewers.
		var wg sync.WaitGroup
		var conns []*websocket.Conn
		for range perRound {
			w := &watched{s: newSessionOn(t, b, admin, fx.project, "")}
			all = append(all, w)
			u := "ws" + strings.TrimPrefix(b.url(""), "http") + "/v1/sessions/" + w.s.id + "/events?after=0"
			c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + admin}})
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			wg.Go(func() {
				for {
					c.SetReadDeadline(time.Now().Add(60 * time.Second))
					var f sessions.Frame
					if c.ReadJSON(&f) != nil || f.Seq != w.seen.Load()+1 {
						return // the kill (a gap is checked below, from the log)
					}
					w.seen.Store(f.Seq)
				}
			})
			if code, res := w.s.prompt(t, fmt.Sprintf("fault:flood %d", 2000+rng.IntN(20000)), false); code != 202 {
				t.Fatalf("prompt = %d %v", code, res)
			}
			w.prompted = true
		}
		// And one between turns at the kill: it must come back live.
		calm := &watched{s: newSessionOn(t, b, admin, fx.project, "")}
		if code, res := calm.s.prompt(t, "before the kill", true); code != 200 || res["reply"] != "You said: before the kill" {
			t.Fatalf("calm turn = %d %v", code, res)
		}
		calm.prompted = true
		calm.seen.Store(calm.s.info(t).LastEventSeq)
		all = append(all, calm)

		delay := time.Duration(rng.IntN(1500)) * time.Millisecond
		time.Sleep(delay)
		b.cmd.Process.Kill()
		<-b.exited
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
		var seen []int64
		for _, w := range all {
			seen = append(seen, w.seen.Load())
		}
		t.Logf("round %d: killed %v after the prompts; viewers had %v", round, delay, seen)

		b = startBrokerArgs(t, dataDir, args)
		for _, w := range all {
			w.s.b = b
			evs := w.s.events(t)
			if int64(len(evs)) < w.seen.Load() {
				t.Fatalf("round %d: session %s has %d events after the restart; a viewer had %d before the kill", round, w.s.id, len(evs), w.seen.Load())
			}
			if w.prompted && len(ofType(evs, "prompt")) == 0 {
				t.Fatalf("round %d: session %s lost its acknowledged prompt", round, w.s.id)
			}
			in := w.s.waitFor(t, "settled", func(in sessions.Info) bool {
				return in.State != sessions.StateStarting && in.State != sessions.StateStopping && in.State != sessions.StatePrompting
			})
			switch {
			case in.State.Final():
				states := ofType(w.s.events(t), "state")
				if last := states[len(states)-1]; in.Live || last["state"] != string(in.State) || last["reason"] == "" || last["reason"] == nil {
					t.Fatalf("round %d: session %s ended (%s) without a recorded reason: %v", round, w.s.id, in.State, last)
				}
			default:
				if code, res := w.s.prompt(t, "are you there?", true); code != 200 || res["reply"] != "You said: are you there?" {
					t.Fatalf("round %d: session %s is %s but its turn = %d %v", round, w.s.id, in.State, code, res)
				}
			}
			t.Logf("round %d: session %s: %d events (viewer had %d), %s %s", round, w.s.id, len(evs), w.seen.Load(), in.State, in.LastError)
		}
		if resp, body := b.do("GET", "/v1/projects/"+proj.ID, admin, nil); resp.StatusCode != 200 {
			t.Fatalf("round %d: the project created before the kill: %d %s", round, resp.StatusCode, body)
		}
		resp, body = doRaw(b, "POST", "/mcp", m.Token, bytes.NewReader([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)), mcpHdr...)
		if resp.StatusCode != 401 {
			t.Fatalf("round %d: a token revoked before the kill: /mcp = %d %s; want 401", round, resp.StatusCode, body)
		}
	}
}

// TestKill9StaleAgentStopped: an agent that ignores end of input outlives
// a broker killed with SIGKILL; the restarted broker finds it by the
// identity it recorded (pid, start time, boot) and stops it before the
// session is resumed, so the session never has two agents (issue 17).
func TestKill9StaleAgentStopped(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	args := []string{"--custom-agent", refagentBin, "--custom-agent-env", "REFAGENT_IGNORE_EOF=1"}
	b := startBrokerArgs(t, dataDir, args)
	admin := adminToken(t, dataDir)
	var p struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"stale"}`))
	json.Unmarshal([]byte(body), &p)
	resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, p.ID, agentDir(t))))
	var created sessions.CreateResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("create session = %d %s", resp.StatusCode, body)
	}
	pid := agentPidOf(t, b, admin, created.Session.ID)
	b.cmd.Process.Kill()
	<-b.exited
	time.Sleep(200 * time.Millisecond) // the agent sees EOF on stdin, and ignores it
	if !alive(pid) {
		t.Fatalf("the agent (pid %d) did not outlive the broker: the test proves nothing", pid)
	}

	b2 := startBrokerArgs(t, dataDir, args)
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatalf("the old agent (pid %d) still runs after the broker's restart", pid)
	}
	if !strings.Contains(b2.log(), "an agent of the previous broker was still running") {
		t.Errorf("the restarted broker did not say it stopped the old agent:\n%s", b2.log())
	}
	// A graceful stop, so that the resumed session's agent (which ignores
	// EOF too) is stopped by the broker rather than left behind.
	if err := b2.stop(syscall.SIGTERM); err != nil {
		t.Errorf("stop the second broker: %v", err)
	}
}

// agentPidOf is the pid of a session's current agent, from its events.
func agentPidOf(t *testing.T, b *broker, admin, id string) int {
	t.Helper()
	out, _, err := runCLI(t, map[string]string{"AGENTBROKER_DATA_DIR": b.dataDir, "AGENTBROKER_URL": b.url("")}, "", "session", "events", id)
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, line := range strings.Split(out, "\n") {
		var e struct {
			Type string
			Data struct{ PID int }
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "agent_started" {
			pid = e.Data.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no agent_started event:\n%s", out)
	}
	return pid
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}
