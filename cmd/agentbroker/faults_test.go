package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/sessions"
)

// faultSeed is the seed of the fault tests' random choices: from
// AGENTBROKER_FAULT_SEED when set (to replay a failure), else the clock.
// It is logged.
func faultSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AGENTBROKER_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("AGENTBROKER_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with AGENTBROKER_FAULT_SEED=%d)", seed, seed)
	return seed
}

// longFaults reports whether the long fault runs are asked for
// (AGENTBROKER_LONG_FAULTS=1); CI runs the short ones.
func longFaults() bool { return os.Getenv("AGENTBROKER_LONG_FAULTS") == "1" }

// sessionOn is a session of a broker, as a test drives it.
type sessionOn struct {
	b      *broker
	admin  string
	id     string
	viewer string
}

func newSessionOn(t testing.TB, b *broker, admin, project, extra string) *sessionOn {
	t.Helper()
	resp, body := b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q,"permission_policy":"allow-all"%s}`,
		project, agentDir(t), extra)))
	var created sessions.CreateResponse
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil {
		t.Fatalf("create session = %d %s", resp.StatusCode, body)
	}
	return &sessionOn{b: b, admin: admin, id: created.Session.ID, viewer: created.ViewerToken}
}

func (s *sessionOn) info(t testing.TB) sessions.Info {
	t.Helper()
	resp, body := s.b.do("GET", "/v1/sessions/"+s.id, s.admin, nil)
	var in sessions.Info
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &in) != nil {
		t.Fatalf("GET session = %d %s", resp.StatusCode, body)
	}
	return in
}

// waitFor polls the session until ok, for at most a generous minute.
func (s *sessionOn) waitFor(t testing.TB, what string, ok func(sessions.Info) bool) sessions.Info {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		in := s.info(t)
		if ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s never %s: %+v", s.id, what, in)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// prompt sends a prompt; with wait it returns the turn's result.
func (s *sessionOn) prompt(t testing.TB, text string, wait bool) (int, map[string]any) {
	t.Helper()
	q := ""
	if wait {
		q = "?wait=true"
	}
	resp, body := s.b.do("POST", "/v1/sessions/"+s.id+"/prompt"+q, s.admin, strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	var res map[string]any
	json.Unmarshal([]byte(body), &res)
	return resp.StatusCode, res
}

// events reads the session's log from the start through the viewer
// WebSocket, up to its last committed event.
func (s *sessionOn) events(t testing.TB) []sessions.Frame {
	t.Helper()
	last := s.info(t).LastEventSeq
	u := "ws" + strings.TrimPrefix(s.b.url(""), "http") + "/v1/sessions/" + s.id + "/events?after=0"
	c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + s.admin}})
	if err != nil {
		t.Fatalf("dial events: %v", err)
	}
	defer c.Close()
	var out []sessions.Frame
	for int64(len(out)) < last {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var f sessions.Frame
		if err := c.ReadJSON(&f); err != nil {
			if len(out) > 0 && int64(len(out)) == out[len(out)-1].Seq {
				break // the log ended (closed session) with all of it
			}
			t.Fatalf("read events: %v after %d of %d", err, len(out), last)
		}
		if f.Seq != int64(len(out))+1 {
			t.Fatalf("event %d follows %d", f.Seq, len(out))
		}
		out = append(out, f)
	}
	return out
}

func ofType(evs []sessions.Frame, typ string) []map[string]any {
	var out []map[string]any
	for _, e := range evs {
		if e.Type == typ {
			var m map[string]any
			json.Unmarshal(e.Data, &m)
			out = append(out, m)
		}
	}
	return out
}

// healthy checks /healthz and that the bystander session still answers a
// whole turn: a fault in one session touches no other.
func healthy(t testing.TB, b *broker, bystander *sessionOn) {
	t.Helper()
	if resp, body := b.do("GET", "/healthz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}
	if bystander == nil {
		return
	}
	code, res := bystander.prompt(t, "still there?", true)
	if code != 200 || res["reply"] != "You said: still there?" {
		t.Fatalf("the bystander session's turn = %d %v", code, res)
	}
}

// revoked checks that a session's viewer token is refused: the session's
// tokens were revoked when it ended.
func revoked(t testing.TB, s *sessionOn) {
	t.Helper()
	resp, body := s.b.do("GET", "/v1/sessions/"+s.id, s.viewer, nil)
	if resp.StatusCode != 401 {
		t.Fatalf("the ended session's viewer token: GET = %d %s; want 401 (revoked)", resp.StatusCode, body)
	}
}

// TestAgentFaults drives the real broker's agents (the reference agent as
// the custom profile) into each fault, next to a bystander session that
// must not notice: a crash at a random point of a turn (restarted with
// session/load), a crash that cannot be recovered (the session fails, its
// tokens revoked), a hang that ignores cancel (stop ends it), a flood of
// updates, a message over the line limit (the session fails saying so:
// its replay on session/load carries the same line), a 128 MiB line of noise (the
// broker's memory stays bounded), and garbage lines (counted, ignored).
func TestAgentFaults(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(faultSeed(t), 9))
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBrokerArgs(t, dataDir, []string{"--custom-agent", refagentBin, "--custom-agent-env", "REFAGENT_STATE_DIR={session_dir}"})
	admin := adminToken(t, dataDir)
	fx := newFixtures(t, b, admin)
	bystander := newSessionOn(t, b, admin, fx.project, "")

	t.Run("crash at a random point", func(t *testing.T) {
		s := newSessionOn(t, b, admin, fx.project, "")
		rounds := 2
		if longFaults() {
			rounds = 10
		}
		for round := range rounds {
			n := rng.IntN(300)
			t.Logf("round %d: crash after %d updates", round, n)
			if code, res := s.prompt(t, fmt.Sprintf("fault:crash-after %d", n), true); code != 200 || !strings.Contains(fmt.Sprint(res["error"]), "exit status 3") {
				t.Fatalf("the crashed turn = %d %v; want its error naming the exit", code, res)
			}
			in := s.waitFor(t, "relaunched", func(in sessions.Info) bool { return in.State == sessions.StateReady })
			if !strings.Contains(in.LastError, "exit status 3") {
				t.Fatalf("last_error %q does not say why", in.LastError)
			}
			healthy(t, b, bystander)
			if code, res := s.prompt(t, "after the crash", true); code != 200 || res["reply"] != "You said: after the crash" {
				t.Fatalf("the turn after the restart = %d %v", code, res)
			}
		}
		evs := s.events(t)
		if got := len(ofType(evs, "turn_failed")); got != rounds {
			t.Fatalf("%d turn_failed events; want %d", got, rounds)
		}
		exits := ofType(evs, "agent_exited")
		if len(exits) != rounds || !strings.Contains(fmt.Sprint(exits[0]["error"]), "exit status 3") {
			t.Fatalf("agent_exited events %.500v", exits)
		}
	})

	t.Run("crash that cannot be recovered", func(t *testing.T) {
		// A second broker whose agent keeps no state: session/load fails,
		// so the session fails after its restarts.
		dir2 := filepath.Join(t.TempDir(), "data")
		b2 := startBroker(t, dir2, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
		admin2 := adminToken(t, dir2)
		fx2 := newFixtures(t, b2, admin2)
		by2 := newSessionOn(t, b2, admin2, fx2.project, "")
		s := newSessionOn(t, b2, admin2, fx2.project, "")
		s.prompt(t, fmt.Sprintf("fault:crash-after %d", rng.IntN(50)), false)
		in := s.waitFor(t, "failed", func(in sessions.Info) bool { return in.State.Final() })
		if in.State != sessions.StateFailed || !strings.Contains(in.LastError, "exit status 3") || in.Live {
			t.Fatalf("after an unrecoverable crash: %s live=%v %q; want failed naming the exit", in.State, in.Live, in.LastError)
		}
		states := ofType(s.events(t), "state")
		if last := states[len(states)-1]; last["state"] != "failed" || !strings.Contains(fmt.Sprint(last["reason"]), "exit") {
			t.Fatalf("the last state event %v does not record why", last)
		}
		revoked(t, s)
		healthy(t, b2, by2)
	})

	t.Run("hang that ignores cancel", func(t *testing.T) {
		s := newSessionOn(t, b, admin, fx.project, "")
		if code, _ := s.prompt(t, "fault:stall", false); code != 202 {
			t.Fatalf("prompt = %d", code)
		}
		if resp, body := b.do("POST", "/v1/sessions/"+s.id+"/cancel", admin, nil); resp.StatusCode != 202 {
			t.Fatalf("cancel = %d %s", resp.StatusCode, body)
		}
		healthy(t, b, bystander) // while the hung turn goes on
		if in := s.info(t); in.State != sessions.StatePrompting {
			t.Fatalf("the hung session is %s; want still prompting", in.State)
		}
		resp, body := b.do("DELETE", "/v1/sessions/"+s.id, admin, nil)
		var in sessions.Info
		json.Unmarshal([]byte(body), &in)
		if resp.StatusCode != 200 || in.State != sessions.StateStopped {
			t.Fatalf("stop of a hung agent = %d %s", resp.StatusCode, body)
		}
		evs := s.events(t)
		if len(ofType(evs, "turn_failed"))+len(ofType(evs, "turn_end")) != 1 {
			t.Fatalf("the hung turn was not ended in the log")
		}
		revoked(t, s)
		healthy(t, b, bystander)
	})

	t.Run("flood", func(t *testing.T) {
		s := newSessionOn(t, b, admin, fx.project, "")
		const n = 10000
		if code, res := s.prompt(t, fmt.Sprintf("fault:flood %d", n), true); code != 200 || res["stop_reason"] != "end_turn" {
			t.Fatalf("flood turn = %d %v", code, res)
		}
		chunks := 0
		for _, u := range ofType(s.events(t), "update") {
			if c, _ := u["content"].(map[string]any); c != nil && strings.HasPrefix(fmt.Sprint(c["text"]), "chunk ") {
				chunks++
			}
		}
		if chunks != n {
			t.Fatalf("%d chunks in the log; want all %d", chunks, n)
		}
		healthy(t, b, bystander)
	})

	t.Run("message over the line limit", func(t *testing.T) {
		s := newSessionOn(t, b, admin, fx.project, "")
		code, res := s.prompt(t, "fault:bigline 9000000", true) // over acp.DefaultMaxLineBytes
		if code != 200 || !strings.Contains(fmt.Sprint(res["error"]), "over the line limit") {
			t.Fatalf("bigline turn = %d %v; want it failed over the line limit", code, res)
		}
		// The relaunch loads the session, whose history replays the same
		// line: each attempt fails the same way, and the session fails
		// saying why.
		in := s.waitFor(t, "ended", func(in sessions.Info) bool { return in.State.Final() })
		if in.State != sessions.StateFailed || !strings.Contains(in.LastError, "over the line limit") {
			t.Fatalf("after a line over the limit: %s %q", in.State, in.LastError)
		}
		revoked(t, s)
		healthy(t, b, bystander)
	})

	t.Run("noise line is streamed past", func(t *testing.T) {
		s := newSessionOn(t, b, admin, fx.project, "")
		const n = 128 << 20
		before := peakRSS(t, b.cmd.Process.Pid)
		if code, res := s.prompt(t, fmt.Sprintf("fault:noise %d", n), true); code != 200 || res["reply"] != "after the noise" {
			t.Fatalf("noise turn = %d %v", code, res)
		}
		ends := ofType(s.events(t), "turn_end")
		if len(ends) != 1 || ends[0]["skipped_lines"] != 1.0 {
			t.Fatalf("turn_end %v; want skipped_lines 1", ends)
		}
		after := peakRSS(t, b.cmd.Process.Pid)
		t.Logf("broker peak RSS %d MiB before, %d MiB after a %d MiB line", before>>20, after>>20, n>>20)
		if after-before > n/4 {
			t.Fatalf("the broker's peak RSS grew from %d to %d MiB with a %d MiB line: the line was buffered", before>>20, after>>20, n>>20)
		}
		healthy(t, b, bystander)
	})

	t.Run("garbage lines", func(t *testing.T) {
		s := newSessionOn(t, b, admin, fx.project, "")
		if code, res := s.prompt(t, "fault:garbage", true); code != 200 || res["reply"] != "after the garbage" {
			t.Fatalf("garbage turn = %d %v", code, res)
		}
		evs := s.events(t)
		ends := ofType(evs, "turn_end")
		if len(ends) != 1 || ends[0]["skipped_lines"] != 7.0 {
			t.Fatalf("turn_end %v; want skipped_lines 7", ends)
		}
		for _, e := range evs {
			if strings.Contains(string(e.Data), "not JSON") || strings.Contains(string(e.Data), "binary") {
				t.Fatalf("garbage reached the log: %s", e.Data)
			}
		}
		if in := s.info(t); in.State != sessions.StateIdle {
			t.Fatalf("after garbage the session is %s", in.State)
		}
		healthy(t, b, bystander)
	})
}

// peakRSS is a process's peak resident set (VmHWM), in bytes.
func peakRSS(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
