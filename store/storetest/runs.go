package storetest

import (
	"testing"

	"github.com/agentbroker/agentbroker/store"
)

// testTaskRuns checks task runs: recorded running, ended once (the first
// end wins), listed per task newest first, the running ones found across
// projects, and what is refused.
func testTaskRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	p, q := newProject(t, s, "p"), newProject(t, s, "q")
	task := must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{ProjectID: p.ID, Title: "t"}))
	other := must[store.Task](t, "CreateTask")(s.CreateTask(ctx, store.Task{ProjectID: q.ID, Title: "u"}))
	for _, r := range []store.SessionRecord{{ID: "r1", ProjectID: p.ID}, {ID: "r2", ProjectID: p.ID}, {ID: "r3", ProjectID: q.ID}} {
		if err := s.PutSession(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	r1 := must[store.TaskRun](t, "AddRun")(s.AddRun(ctx, store.TaskRun{SessionID: "r1", ProjectID: p.ID, TaskID: task.ID,
		Agent: "custom", Model: "m", State: store.RunFailed, Reason: "ignored"}))
	if r1.State != store.RunRunning || r1.Reason != "" || r1.StartedAt.IsZero() || !r1.EndedAt.IsZero() {
		t.Fatalf("AddRun = %+v; want running, started, no reason", r1)
	}
	same(t, "GetRun", must[store.TaskRun](t, "GetRun")(s.GetRun(ctx, p.ID, "r1")), r1)
	must[store.TaskRun](t, "AddRun")(s.AddRun(ctx, store.TaskRun{SessionID: "r2", ProjectID: p.ID, TaskID: task.ID}))
	must[store.TaskRun](t, "AddRun")(s.AddRun(ctx, store.TaskRun{SessionID: "r3", ProjectID: q.ID, TaskID: other.ID}))

	_, err := s.AddRun(ctx, store.TaskRun{SessionID: "r1", ProjectID: p.ID, TaskID: task.ID})
	wantErr(t, "AddRun twice", err, store.ErrConflict)
	_, err = s.AddRun(ctx, store.TaskRun{SessionID: "nope", ProjectID: p.ID, TaskID: task.ID})
	wantErr(t, "AddRun of an unrecorded session", err, store.ErrNotFound)
	_, err = s.AddRun(ctx, store.TaskRun{SessionID: "r3", ProjectID: q.ID, TaskID: task.ID})
	wantErr(t, "AddRun for a task of another project", err, store.ErrNotFound)
	_, err = s.AddRun(ctx, store.TaskRun{SessionID: "r1", ProjectID: p.ID})
	wantErr(t, "AddRun without a task", err, store.ErrInvalid)

	running := must[[]store.TaskRun](t, "RunningRuns")(s.RunningRuns(ctx))
	if len(running) != 3 || running[0].SessionID != "r1" {
		t.Fatalf("RunningRuns = %+v; want r1, r2, r3", running)
	}
	end := store.RunEnd{State: store.RunCompleted, Reason: "the agent completed the task", Reply: "done", Notes: "n"}
	got := must[store.TaskRun](t, "FinishRun")(s.FinishRun(ctx, p.ID, "r1", end))
	if got.State != store.RunCompleted || got.Reply != "done" || got.Notes != "n" || got.EndedAt.Before(got.StartedAt) {
		t.Fatalf("FinishRun = %+v", got)
	}
	_, err = s.FinishRun(ctx, p.ID, "r1", store.RunEnd{State: store.RunFailed, Reason: "late"})
	wantErr(t, "FinishRun twice", err, store.ErrConflict)
	_, err = s.FinishRun(ctx, q.ID, "r2", end)
	wantErr(t, "FinishRun in another project", err, store.ErrNotFound)
	_, err = s.FinishRun(ctx, p.ID, "r2", store.RunEnd{State: store.RunRunning})
	wantErr(t, "FinishRun to running", err, store.ErrInvalid)
	if again := must[store.TaskRun](t, "GetRun")(s.GetRun(ctx, p.ID, "r1")); again.State != store.RunCompleted || again.Reason != end.Reason {
		t.Fatalf("after a refused second end: %+v", again)
	}

	list := must[[]store.TaskRun](t, "ListRuns")(s.ListRuns(ctx, p.ID, task.ID))
	if len(list) != 2 || list[0].SessionID != "r2" || list[1].SessionID != "r1" {
		t.Fatalf("ListRuns = %+v; want r2, r1", list)
	}
	if list := must[[]store.TaskRun](t, "ListRuns")(s.ListRuns(ctx, q.ID, task.ID)); len(list) != 0 {
		t.Fatalf("ListRuns across projects = %+v", list)
	}
	running = must[[]store.TaskRun](t, "RunningRuns")(s.RunningRuns(ctx))
	if len(running) != 2 || running[0].SessionID != "r2" || running[1].SessionID != "r3" {
		t.Fatalf("RunningRuns after an end = %+v", running)
	}
}
