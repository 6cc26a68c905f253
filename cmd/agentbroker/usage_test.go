package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
	"github.com/agentbroker/agentbroker/sessions"
)

// claudeShimAgents is an agents directory whose Claude Code adapter is the
// reference agent, run by a Node script in the adapter's place: the
// claude-code profile then gives it the proxy's URL and an inference token,
// and its `model:call N` goes through the broker's proxy. The reference
// agent is copied in, so that the confined agent reads it as its adapter.
func claudeShimAgents(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node: the claude-code profile runs its adapter with Node")
	}
	dir, err := os.MkdirTemp("", "agentbroker-agents-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dist := filepath.Join(dir, "node_modules", "@agentclientprotocol", "claude-agent-acp", "dist")
	if err := os.MkdirAll(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(refagentBin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dist, "refagent"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	shim := `const { spawnSync } = require("child_process");
const r = spawnSync(require("path").join(__dirname, "refagent"), process.argv.slice(2), { stdio: "inherit" });
process.exit(r.status === null ? 1 : r.status);
`
	if err := os.WriteFile(filepath.Join(dist, "index.js"), []byte(shim), 0o644); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != filepath.Dir(dir); d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		os.Chmod(d, 0o755)
	}
	return dir
}

// TestUsageCLI: sessions started with session start --task and --budget
// whose agent makes model calls through a real serve's proxy to a fake
// upstream; agentbroker usage (a table and --json) and session list add up
// what the catalog's prices say, by hand: one call of claude-opus-4-8
// with 1000 input, 500 output, 2000 cache-read and 300 cache-write tokens
// costs 1000×$5 + 500×$25 + 2000×$0.50 + 300×$6.25 per million = $0.020375.
// A turn whose every call is refused (a spent budget) fails and session
// prompt exits non-zero saying why; a turn with an ok call does not.
func TestUsageCLI(t *testing.T) {
	t.Parallel()
	agents := claudeShimAgents(t)
	up := fakemodel.New(&fakemodel.Options{Usage: fakemodel.Usage{Input: 1000, Output: 500, CacheRead: 2000, CacheWrite: 300}})
	upURL, err := up.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	const model = "claude-opus-4-8"
	m, err := catalog.Embedded().Resolve("claude-code", model)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := catalog.Cost(m.Model, catalog.Usage{InputTokens: 1000, OutputTokens: 500, CacheReadTokens: 2000, CacheWrite5mTokens: 300}); err != nil || c.USD() != "0.020375" {
		t.Fatalf("catalog price of one call = %s, %v; the hand computation says 0.020375", c.USD(), err)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_AGENTS_DIR="+agents, "AGENTBROKER_ANTHROPIC_UPSTREAM="+upURL,
		"ANTHROPIC_API_KEY="+fakemodel.DefaultAPIKey)
	admin := adminToken(t, dataDir)
	var p, task struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"costs"}`))
	json.Unmarshal([]byte(body), &p)
	_, body = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"t"}`))
	json.Unmarshal([]byte(body), &task)
	if p.ID == "" || task.ID == "" {
		t.Fatalf("project %q task %q: %s", p.ID, task.ID, body)
	}

	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir, "AGENTBROKER_URL": b.url("")}
	start := func(extra ...string) string {
		t.Helper()
		args := append([]string{"session", "start", "--project", p.ID, "--agent", "claude-code", "--model", model,
			"--credential", "platform-proxy", "--policy", "allow-all", "--cwd", agentDir(t)}, extra...)
		out, stderr, err := runCLI(t, env, "", args...)
		if err != nil {
			t.Fatalf("session start: %v\n%s\n%s", err, stderr, b.log())
		}
		return strings.TrimSpace(out)
	}
	prompt := func(id, text string) (string, string, error) {
		t.Helper()
		return runCLI(t, env, "", "session", "prompt", id, text)
	}
	withTask := start("--task", task.ID, "--budget", "1.00")
	if out, stderr, err := prompt(withTask, "model:call 3"); err != nil || !strings.Contains(out, "made 3 model calls") {
		t.Fatalf("prompt: %v\n%s%s\n%s", err, out, stderr, b.log())
	}
	// $0.03: its first call leaves it unspent, its second spends it, its
	// third is refused.
	small := start("--budget", "0.03")
	if out, stderr, err := prompt(small, "model:call 3"); err == nil || !strings.Contains(err.Error(), "budget") ||
		!strings.Contains(out, "model call 3 failed: 402") {
		t.Fatalf("a turn stopped by its budget: %v\n%s%s", err, out, stderr)
	}
	// Its next turn's every call is refused: failed, and said.
	out, stderr, err := prompt(small, "model:call 1")
	if err == nil || !strings.Contains(err.Error(), "turn 2 failed") || !strings.Contains(err.Error(), "spent $0.04075 of its $0.03 budget") {
		t.Fatalf("a turn whose every call was refused: err %v\n%s%s", err, out, stderr)
	}
	if n := up.Count(); n != 5 {
		t.Fatalf("upstream calls = %d; want 3 + 2", n)
	}

	// 3 calls in the task's session ($0.061125), 2 in the other
	// ($0.04075) and 2 it was refused (counted as calls, at $0): 7 calls,
	// $0.101875.
	usage := func(args ...string) string {
		t.Helper()
		out, stderr, err := runCLI(t, env, "", append([]string{"usage"}, args...)...)
		if err != nil {
			t.Fatalf("usage %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	table := usage("--project", p.ID)
	if fields := strings.Fields(lastLine(table)); len(fields) != 7 ||
		strings.Join(fields, " ") != "all 7 5000 2500 10000 1500 0.101875" {
		t.Errorf("usage table:\n%s\nwant all 7 5000 2500 10000 1500 0.101875", table)
	}
	var byTask struct {
		GroupBy string           `json:"group_by"`
		Groups  []sessions.Usage `json:"groups"`
	}
	if err := json.Unmarshal([]byte(usage("--project", p.ID, "--group-by", "task", "--json")), &byTask); err != nil {
		t.Fatal(err)
	}
	want := map[string]sessions.Usage{
		task.ID: {Key: task.ID, Calls: 3, InputTokens: 3000, OutputTokens: 1500, CacheReadTokens: 6000, CacheWriteTokens: 900, CostUSD: "0.061125"},
		"":      {Calls: 4, InputTokens: 2000, OutputTokens: 1000, CacheReadTokens: 4000, CacheWriteTokens: 600, CostUSD: "0.04075"},
	}
	if byTask.GroupBy != "task" || len(byTask.Groups) != 2 {
		t.Errorf("usage --group-by task --json = %+v", byTask)
	}
	for _, g := range byTask.Groups {
		if g != want[g.Key] {
			t.Errorf("task %q: %+v; want %+v", g.Key, g, want[g.Key])
		}
	}
	var total struct{ Total sessions.Usage }
	if err := json.Unmarshal([]byte(usage("--session", withTask, "--json")), &total); err != nil || total.Total.CostUSD != "0.061125" {
		t.Errorf("usage --session --json = %+v, %v", total, err)
	}
	byModel := usage("--project", p.ID, "--group-by", "model")
	if !strings.Contains(byModel, model) || !strings.Contains(byModel, "0.101875") {
		t.Errorf("usage --group-by model:\n%s", byModel)
	}
	list, _, err := runCLI(t, env, "", "session", "list", "--project", p.ID)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{withTask: "0.061125 1", small: "0.04075 0.03"} {
		if !strings.Contains(list, id) || !strings.Contains(lineWith(list, id), want) {
			t.Errorf("session list: %s lacks %q:\n%s", id, want, list)
		}
	}
}

// lineWith is the line of s that holds id, with its runs of blanks made one.
func lineWith(s, id string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, id) {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	return ""
}
