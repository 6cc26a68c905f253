package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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

// TestFleetOwnershipAndTakeover: two brokers on one PostgreSQL. A session
// started on node 1 is owned by node 1 (a lease): node 2, started after
// it, does not "recover" it (the defect of two brokers on one SQLite
// directory), and refuses to prompt it (owned elsewhere) while node 1
// runs it. Each node names itself and counts its sessions in /readyz and
// /metrics. Then node 1 is killed (SIGKILL): once its lease expires, node
// 2 takes the session over with session/load, and it answers prompts
// there, its log continued.
func TestFleetOwnershipAndTakeover(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	dir1, dir2 := filepath.Join(t.TempDir(), "n1"), filepath.Join(t.TempDir(), "n2")
	// One sessions directory for both (one machine): the reference agent
	// keeps its state there, which session/load on node 2 reads.
	shared := "AGENTBROKER_SESSIONS_DIR=" + sessionsDirFor(t, dir1)
	env := []string{"AGENTBROKER_DATABASE=" + url, "AGENTBROKER_LEASE_TTL=2s", shared}
	args := []string{"--custom-agent", refagentBin, "--custom-agent-env", "REFAGENT_STATE_DIR={session_dir}"}
	b1 := startBrokerArgs(t, dir1, args, env...)
	admin := adminToken(t, dir1)
	var p struct{ ID string }
	_, body := b1.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"fleet"}`))
	json.Unmarshal([]byte(body), &p)
	resp, body := b1.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
		`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, p.ID, agentDir(t))))
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

	b2 := startBrokerArgs(t, dir2, args, env...)
	node1, owned1 := readyz(t, b1)
	node2, owned2 := readyz(t, b2)
	if node1 == node2 || owned1 != 1 || owned2 != 0 {
		t.Fatalf("readyz: node 1 %q owns %d, node 2 %q owns %d; want two names, 1 and 0", node1, owned1, node2, owned2)
	}
	if strings.Contains(b2.log(), "session recovered") {
		t.Fatalf("node 2 recovered node 1's live session at its start:\n%s", b2.log())
	}
	if code, body := prompt(b2, "stolen"); code != 409 || !strings.Contains(body, "owned_elsewhere") || !strings.Contains(body, node1) {
		t.Fatalf("prompt on node 2 of node 1's session = %d %s; want 409 owned_elsewhere naming node 1", code, body)
	}
	if code, body := prompt(b1, "two"); code != 200 || !strings.Contains(body, "You said: two") {
		t.Fatalf("node 1's session broken after node 2 started: %d %s", code, body)
	}
	_, metrics := b1.do("GET", "/metrics", "", nil)
	for _, want := range []string{`agentbroker_node_info{node="` + node1 + `",store="postgres"} 1`, "agentbroker_node_owned_sessions 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("node 1's /metrics lacks %s", want)
		}
	}

	b1.cmd.Process.Kill()
	<-b1.exited
	waitFor(t, "node 2 to take the session over", func() bool {
		_, owned := readyz(t, b2)
		return owned == 1
	})
	waitFor(t, "the session to be ready on node 2", func() bool {
		code, _ := prompt(b2, "three")
		return code == 200
	})
	if code, body := prompt(b2, "four"); code != 200 || !strings.Contains(body, "You said: four") {
		t.Fatalf("prompt on node 2 after the takeover = %d %s", code, body)
	}
	if !strings.Contains(b2.log(), "taken over") || !strings.Contains(b2.log(), `"state":"ready"`) {
		t.Errorf("node 2 does not log the takeover with session/load (state ready):\n%s", b2.log())
	}
	if err := b2.stop(syscall.SIGTERM); err != nil {
		t.Errorf("stop node 2: %v", err)
	}
}
