package sessions

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// setTask gives the broker's task a description and a status.
func (b *broker) setTask(description string, st store.TaskStatus) {
	b.t.Helper()
	if _, err := b.db.UpdateTask(context.Background(), b.project.ID, b.task.ID,
		store.TaskUpdate{Description: &description, Status: &st}); err != nil {
		b.t.Fatal(err)
	}
}

func (b *broker) taskNow() store.Task {
	b.t.Helper()
	t, err := b.db.GetTask(context.Background(), b.project.ID, b.task.ID)
	if err != nil {
		b.t.Fatal(err)
	}
	return t
}

// startRun starts a run of the broker's task and returns the answer.
func (b *broker) startRun(body map[string]any) RunResponse {
	b.t.Helper()
	var rr RunResponse
	if code := b.do("POST", "/v1/tasks/"+b.task.ID+"/runs", b.admin, body, &rr); code != http.StatusCreated {
		b.t.Fatalf("start run: %d %+v", code, rr)
	}
	return rr
}

// waitRunEnd waits for the run of session id to end and returns the
// task's runs answer.
func (b *broker) waitRunEnd(id string) (TaskRunsResponse, Run) {
	b.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		var tr TaskRunsResponse
		if code := b.do("GET", "/v1/projects/"+b.project.ID+"/tasks/"+b.task.ID+"/runs", b.admin, nil, &tr); code != http.StatusOK {
			b.t.Fatalf("GET runs: %d", code)
		}
		for _, r := range tr.Runs {
			if r.Session == id && r.State.Final() {
				// The session ends right after its run: wait for it, so
				// that every usage record is stored.
				b.waitEvent(id, 0, EventState, func(d map[string]any) bool { return State(fmt.Sprint(d["state"])).Final() })
				return tr, r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("run %s did not end", id)
	return TaskRunsResponse{}, Run{}
}

// TestTaskRun: a run binds the task to its session (in_progress while the
// agent works), the agent's own update_task completes it, and the run is
// listed with its agent, model, state, duration, reply, notes and cost. A
// run whose agent does not complete the task fails it, with the reason; a
// failed task may run again; a completed one may not.
func TestTaskRun(t *testing.T) {
	t.Parallel()
	b, _ := newCostBroker(t)
	body := map[string]any{"agent": "claude-code", "model": costModel, "credential": map[string]string{"kind": "platform-proxy"}}

	// Run 1: two model calls, and no update_task: the run and task fail.
	b.setTask("refagent: model:call 2", store.TaskQueued)
	r1 := b.startRun(body)
	if r1.Run.State != store.RunRunning || r1.Run.Task != b.task.ID || r1.Session.Task != b.task.ID {
		t.Fatalf("started run = %+v, session task %q", r1.Run, r1.Session.Task)
	}
	tr, run1 := b.waitRunEnd(r1.Session.ID)
	if run1.State != store.RunFailed || !strings.Contains(run1.Reason, "without marking the task completed") ||
		run1.Reply != "made 2 model calls" || run1.Usage.Calls != 2 || run1.Usage.CostUSD != "0.04075" ||
		run1.Agent != "claude-code" || run1.Model != costModel || run1.EndedAt.IsZero() {
		t.Fatalf("run 1 = %+v", run1)
	}
	if tr.Task.Status != store.TaskFailed || !strings.Contains(tr.Task.OutputSummary, "without marking the task completed") {
		t.Fatalf("task after run 1 = %+v", tr.Task)
	}

	// Run 2 (a retry): the agent asks to call update_task, and while the
	// question waits the task is in_progress, bound to the run's session.
	b.setTask(fmt.Sprintf(`refagent: call update_task with {"id":%q,"status":"completed","notes":"fixed by refagent"}`, b.task.ID), store.TaskFailed)
	body["permission_policy"] = "ask"
	r2 := b.startRun(body)
	_, perm := b.waitEvent(r2.Session.ID, 0, EventPermissionRequest, nil)
	if got := b.taskNow(); got.Status != store.TaskInProgress || got.SessionID != r2.Session.ID {
		t.Fatalf("task during run 2 = %s bound to %q; want in_progress bound to %s", got.Status, got.SessionID, r2.Session.ID)
	}
	var again map[string]any
	if code := b.do("POST", "/v1/tasks/"+b.task.ID+"/runs", b.admin, body, &again); code != http.StatusConflict {
		t.Fatalf("a second run while one is in progress: %d %v", code, again)
	}
	mcpToken := b.mcpToken(r2.Session.ID)
	if code := b.do("POST", "/v1/sessions/"+r2.Session.ID+"/permissions/"+fmt.Sprint(perm["request_id"]), b.admin,
		PermissionAnswer{OptionID: "proceed"}, nil); code != http.StatusNoContent && code != http.StatusOK {
		t.Fatalf("answer: %d", code)
	}
	tr, run2 := b.waitRunEnd(r2.Session.ID)
	if run2.State != store.RunCompleted || run2.Reason != "the agent marked the task completed" ||
		run2.Notes != "fixed by refagent" || !strings.Contains(run2.Reply, "update_task returned") || run2.Usage.Calls != 0 {
		t.Fatalf("run 2 = %+v", run2)
	}
	if tr.Task.Status != store.TaskCompleted || tr.Task.Notes != "fixed by refagent" || tr.Usage.CostUSD != "0.04075" {
		t.Fatalf("task after run 2 = %+v, usage %+v", tr.Task, tr.Usage)
	}
	if len(tr.Runs) != 2 || tr.Runs[0].Session != r2.Session.ID || tr.Runs[1].Session != r1.Session.ID {
		t.Fatalf("runs = %+v; want run 2, run 1", tr.Runs)
	}
	// The run's session is stopped, its MCP token dead.
	if in, _ := b.mgr.Get(context.Background(), r2.Session.ID); in.State != StateStopped {
		t.Fatalf("run 2's session = %s", in.State)
	}
	if code := b.mcpStatus(mcpToken); code != http.StatusUnauthorized {
		t.Fatalf("run 2's MCP token after the run: %d", code)
	}
	if code := b.do("POST", "/v1/tasks/"+b.task.ID+"/runs", b.admin, body, &again); code != http.StatusConflict {
		t.Fatalf("a run of a completed task: %d %v", code, again)
	}
	if code := b.do("POST", "/v1/tasks/tsk_nope/runs", b.admin, body, &again); code != http.StatusNotFound {
		t.Fatalf("a run of no task: %d %v", code, again)
	}
}

// TestTaskRunBoundToItsTask: a run's agent may update its own task only.
func TestTaskRunBoundToItsTask(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	other, err := b.db.CreateTask(context.Background(), store.Task{ProjectID: b.project.ID, Title: "other", Status: store.TaskQueued})
	if err != nil {
		t.Fatal(err)
	}
	b.setTask(fmt.Sprintf(`refagent: call update_task with {"id":%q,"status":"completed"}`, other.ID), store.TaskQueued)
	r := b.startRun(map[string]any{"agent": "custom", "credential": map[string]string{"kind": "none"}})
	tr, run := b.waitRunEnd(r.Session.ID)
	if run.State != store.RunFailed || !strings.Contains(run.Reply, "not bound to this session") || tr.Task.Status != store.TaskFailed {
		t.Fatalf("run = %+v, task %+v", run, tr.Task)
	}
	if got, _ := b.db.GetTask(context.Background(), b.project.ID, other.ID); got.Status != store.TaskQueued {
		t.Fatalf("the other task = %s; want untouched (queued)", got.Status)
	}
}

// TestTaskRunAgentCrashFailsTask: a run whose agent crashes mid-turn
// leaves the task failed with the reason, never in_progress.
func TestTaskRunAgentCrashFailsTask(t *testing.T) {
	t.Parallel()
	b := newBroker(t, brokerOpts{})
	b.setTask("refagent: fault:crash-after 1", store.TaskQueued)
	r := b.startRun(map[string]any{"agent": "custom", "credential": map[string]string{"kind": "none"}})
	tr, run := b.waitRunEnd(r.Session.ID)
	if run.State != store.RunFailed || !strings.Contains(run.Reason, "agent exited mid-turn") {
		t.Fatalf("run = %+v", run)
	}
	if tr.Task.Status != store.TaskFailed || !strings.Contains(tr.Task.OutputSummary, "agent exited mid-turn") {
		t.Fatalf("task = %+v", tr.Task)
	}
	if in, _ := b.mgr.Get(context.Background(), r.Session.ID); in.State != StateFailed {
		t.Fatalf("session = %s; want failed", in.State)
	}
}

// TestTaskRunRecovery: a broker that shuts down during a run fails it (its
// session is not resumed); a run a crashed broker left running is failed
// by the next broker's recovery.
func TestTaskRunRecovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b1 := newBroker(t, brokerOpts{})
	b1.setTask(fmt.Sprintf(`refagent: call update_task with {"id":%q,"status":"completed"}`, b1.task.ID), store.TaskQueued)
	r := b1.startRun(map[string]any{"agent": "custom", "credential": map[string]string{"kind": "none"}, "permission_policy": "ask"})
	b1.waitEvent(r.Session.ID, 0, EventPermissionRequest, nil)
	if err := b1.mgr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	run, err := b1.db.GetRun(ctx, b1.project.ID, r.Session.ID)
	if err != nil || run.State != store.RunFailed || !strings.Contains(run.Reason, "broker shutdown") {
		t.Fatalf("run after Close = %+v, %v", run, err)
	}
	if got := b1.taskNow(); got.Status != store.TaskFailed {
		t.Fatalf("task after Close = %s", got.Status)
	}

	// What a broker killed mid-run leaves: a live session record, a
	// running run, an in_progress task.
	if err := b1.db.PutSession(ctx, store.SessionRecord{ID: "ses_killed", ProjectID: b1.project.ID, Agent: "custom", State: "prompting"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.db.AddRun(ctx, store.TaskRun{SessionID: "ses_killed", ProjectID: b1.project.ID, TaskID: b1.task.ID, Agent: "custom"}); err != nil {
		t.Fatal(err)
	}
	st, sid := store.TaskInProgress, "ses_killed"
	if _, err := b1.db.UpdateTask(ctx, b1.project.ID, b1.task.ID, store.TaskUpdate{Status: &st, SessionID: &sid}); err != nil {
		t.Fatal(err)
	}
	b2 := newBroker(t, brokerOpts{db: b1.db, dataDir: b1.dataDir, project: &b1.project})
	b2.task = b1.task
	if _, err := b2.mgr.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if live := b2.mgr.liveSession(r.Session.ID); live != nil {
		t.Fatal("a run's session was resumed")
	}
	run, err = b1.db.GetRun(ctx, b1.project.ID, "ses_killed")
	if err != nil || run.State != store.RunFailed || !strings.Contains(run.Reason, "broker restarted") {
		t.Fatalf("left run after Recover = %+v, %v", run, err)
	}
	if got := b2.taskNow(); got.Status != store.TaskFailed {
		t.Fatalf("task after Recover = %s; want failed", got.Status)
	}
}
