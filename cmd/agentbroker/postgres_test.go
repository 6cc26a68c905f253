package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentbroker/agentbroker/internal/pgtest"
)

// getTaskVia calls get_task through a broker's /mcp and returns what it
// said (an error for a refused token).
func getTaskVia(t *testing.T, b *broker, token, taskID string) (string, error) {
	t.Helper()
	c, err := client.NewStreamableHttpClient(b.url("/mcp"), transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return "", err
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		return "", err
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "get_task"
	req.Params.Arguments = map[string]any{"id": taskID}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("get_task: %v", res.Content)
	}
	return fmt.Sprint(res.Content), nil
}

// TestServeOnPostgres: two brokers on one PostgreSQL database (serve
// --database, here through its environment twin) share everything: a
// project and task made on one are served through /mcp on the other, with
// a token the first minted (one key ring); a task written on one is read
// afresh on the other; a token revoked on one is refused by the other. The
// database URL's password appears in no log and no argv.
func TestServeOnPostgres(t *testing.T) {
	t.Parallel()
	const password = "pg-secret-7f3a91"
	url := strings.Replace(pgtest.NewDatabase(t), "postgres://"+pgtest.Role+"@", "postgres://"+pgtest.Role+":"+password+"@", 1)
	dir1, dir2 := filepath.Join(t.TempDir(), "n1"), filepath.Join(t.TempDir(), "n2")
	b1 := startBroker(t, dir1, "AGENTBROKER_DATABASE="+url)
	b2 := startBroker(t, dir2, "AGENTBROKER_DATABASE="+url)
	admin1, admin2 := adminToken(t, dir1), adminToken(t, dir2)

	// Each node's admin token works on the other: one key ring.
	for _, c := range []struct {
		b     *broker
		token string
	}{{b1, admin2}, {b2, admin1}} {
		if resp, body := c.b.do("GET", "/v1/keys", c.token, nil); resp.StatusCode != 200 {
			t.Fatalf("the other node's admin token: %d %s", resp.StatusCode, body)
		}
	}
	// Nothing of SQLite in the data directories.
	if _, err := os.Stat(filepath.Join(dir1, "agentbroker.db")); err == nil {
		t.Errorf("a SQLite database was made in the data directory of a broker on PostgreSQL")
	}

	var p, task struct{ ID string }
	_, body := b1.do("POST", "/v1/projects", admin1, strings.NewReader(`{"name":"fleet","instructions":"Be brief."}`))
	json.Unmarshal([]byte(body), &p)
	_, body = b1.do("POST", "/v1/projects/"+p.ID+"/tasks", admin1, strings.NewReader(`{"title":"Find the marker","description":"marker-one"}`))
	json.Unmarshal([]byte(body), &task)
	var minted struct{ Token, JTI string }
	_, body = b1.do("POST", "/v1/tokens", admin1, strings.NewReader(fmt.Sprintf(
		`{"subject":"u","purpose":"mcp","project":%q,"session":"s1","scopes":["tasks:read","project:read"],"ttl":"10m"}`, p.ID)))
	json.Unmarshal([]byte(body), &minted)
	if p.ID == "" || task.ID == "" || minted.Token == "" || minted.JTI == "" {
		t.Fatalf("setup: project %q task %q token set %v jti %q", p.ID, task.ID, minted.Token != "", minted.JTI)
	}
	if got, err := getTaskVia(t, b2, minted.Token, task.ID); err != nil || !strings.Contains(got, "marker-one") {
		t.Fatalf("get_task on node 2 with node 1's token = %q, %v", got, err)
	}
	// A task written on node 1 is read afresh on node 2 (its cached read
	// is dropped by node 1's notice).
	if resp, body := b1.do("PATCH", "/v1/projects/"+p.ID+"/tasks/"+task.ID, admin1, strings.NewReader(`{"description":"marker-two"}`)); resp.StatusCode != 200 {
		t.Fatalf("PATCH task on node 1 = %d %s", resp.StatusCode, body)
	}
	waitFor(t, "node 2 to read the task node 1 wrote", func() bool {
		got, err := getTaskVia(t, b2, minted.Token, task.ID)
		return err == nil && strings.Contains(got, "marker-two")
	})
	// Revoked on node 1, refused by node 2.
	if resp, body := b1.do("POST", "/v1/tokens/revoke", admin1, strings.NewReader(fmt.Sprintf(`{"jti":%q}`, minted.JTI))); resp.StatusCode != 200 {
		t.Fatalf("revoke on node 1 = %d %s", resp.StatusCode, body)
	}
	waitFor(t, "node 2 to refuse the token node 1 revoked", func() bool {
		_, err := getTaskVia(t, b2, minted.Token, task.ID)
		return err != nil
	})
	if resp, _ := b2.do("POST", "/mcp", minted.Token, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)); resp.StatusCode != 401 {
		t.Fatalf("the revoked token at node 2's /mcp = %d; want 401", resp.StatusCode)
	}
	if resp, body := b2.do("GET", "/readyz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("/readyz on PostgreSQL = %d %s", resp.StatusCode, body)
	}

	base, _, _ := strings.Cut(url, "?")
	dbName := base[strings.LastIndex(base, "/")+1:]
	for i, b := range []*broker{b1, b2} {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", b.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.stop(syscall.SIGTERM); err != nil {
			t.Fatalf("node %d: stop: %v", i+1, err)
		}
		if strings.Contains(b.log(), password) || strings.Contains(string(cmdline), password) {
			t.Errorf("node %d: the database password is in its log or argv", i+1)
		}
		if !strings.Contains(b.log(), "database="+dbName) {
			t.Errorf("node %d: the log does not name the database it opened:\n%s", i+1, b.log())
		}
	}
}

// TestDatabaseURLNotEchoed: a --database that is not PostgreSQL's is
// refused without repeating it (it may hold a password).
func TestDatabaseURLNotEchoed(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-db-secret"
	_, stderr, err := runCLI(t, map[string]string{"AGENTBROKER_DATA_DIR": t.TempDir()}, "",
		"serve", "--listen", "127.0.0.1:0", "--database", "mysql://root:"+secret+"@localhost/db")
	if err == nil || !strings.Contains(err.Error()+stderr, "--database") {
		t.Fatalf("serve with a MySQL URL: %v %s", err, stderr)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(stderr, secret) {
		t.Fatalf("the URL's password was echoed: %v %s", err, stderr)
	}
}

// waitFor polls cond until it holds (generous bound: 2 shared cores).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
