package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTaskRunCLI: `task run` on a real broker with the reference agent:
// the agent completes the task with update_task, and `task show` and
// `task runs` print the task completed with its run; a run whose agent
// crashes exits non-zero and leaves the task failed, not in_progress.
func TestTaskRunCLI(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	var p, task, crash struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(fmt.Sprintf(`{"name":"runs","instructions":"Be brief.","repo_path":%q}`, agentDir(t))))
	json.Unmarshal([]byte(body), &p)
	_, body = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"fix it","status":"queued"}`))
	json.Unmarshal([]byte(body), &task)
	desc, _ := json.Marshal(fmt.Sprintf(`refagent: call update_task with {"id":%q,"status":"completed","notes":"marker-7d2f"}`, task.ID))
	b.do("PATCH", "/v1/projects/"+p.ID+"/tasks/"+task.ID, admin, strings.NewReader(`{"description":`+string(desc)+`}`))
	_, body = b.do("POST", "/v1/projects/"+p.ID+"/tasks", admin, strings.NewReader(`{"title":"crash","status":"queued","description":"refagent: fault:crash-after 1"}`))
	json.Unmarshal([]byte(body), &crash)

	env := map[string]string{"AGENTBROKER_DATA_DIR": dataDir, "AGENTBROKER_URL": b.url("")}
	out, stderr, err := runCLI(t, env, "", "task", "run", task.ID, "--agent", "custom", "--credential", "none")
	if err != nil || !strings.Contains(out, "completed") || !strings.Contains(out, "marker-7d2f") {
		t.Fatalf("task run = %v\n%s\n%s\n%s", err, out, stderr, b.log())
	}
	run := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	out, _, err = runCLI(t, env, "", "task", "show", task.ID)
	if err != nil || !strings.Contains(out, "status   completed") || !strings.Contains(out, "marker-7d2f") ||
		!strings.Contains(out, run) || !strings.Contains(out, "custom") {
		t.Fatalf("task show = %v\n%s", err, out)
	}
	out, _, err = runCLI(t, env, "", "task", "runs", "--project", p.ID, task.ID)
	if err != nil || !strings.Contains(out, run) || !strings.Contains(out, "completed") || !strings.Contains(out, "COST USD") {
		t.Fatalf("task runs = %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, env, "", "task", "run", task.ID, "--agent", "custom", "--credential", "none"); err == nil ||
		!strings.Contains(err.Error(), "task_not_runnable") {
		t.Fatalf("a run of a completed task: %v", err)
	}

	out, _, err = runCLI(t, env, "", "task", "run", crash.ID, "--agent", "custom", "--credential", "none")
	if err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("a crashing run = %v\n%s", err, out)
	}
	out, _, err = runCLI(t, env, "", "task", "show", crash.ID)
	if err != nil || !strings.Contains(out, "status   failed") || !strings.Contains(out, "agent exited mid-turn") {
		t.Fatalf("task show after a crash = %v\n%s", err, out)
	}
	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}
