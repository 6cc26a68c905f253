package sessions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// A task run is a session the broker starts for a task (RunTask): the task
// is bound to the session before its agent starts (so the agent's MCP
// token may update that task and no other: mcpserver's update_task
// binding), the first prompt is built from the task and the project's
// instructions, and the run is one turn. The rules:
//
//   - A run starts from a task that is draft, queued or failed (a retry),
//     and not already being started: the task becomes in_progress. Any
//     other status is ErrTaskNotRunnable.
//   - When the turn ends the run ends, and its session is stopped: the
//     run is completed when the agent marked the task completed with
//     update_task, failed when it marked it failed, and failed otherwise
//     (a turn that failed, or ended without the agent saying the task was
//     done), with the reason.
//   - When the session ends first (its agent crashed and could not be
//     restarted, it was stopped, the broker shut down) the run fails with
//     how the session ended, unless the agent had completed the task.
//   - Recovery never resumes a run's session, and fails every run a
//     previous broker left running. No task stays in_progress behind a
//     dead session.
//   - The task ends with the run: completed or failed, its output summary
//     the agent's reply (or the reason, when there is none). The run keeps
//     the reply, the task's notes (the agent's update_task notes) and the
//     reason.

// ErrTaskNotRunnable: the task's status does not allow a run now (one is
// in progress, or the task is completed or cancelled).
var ErrTaskNotRunnable = errors.New("sessions: task not runnable")

// EventRunEnd is recorded in a run's session when the run ends.
const EventRunEnd = "run_end"

// RunStore is what task runs need of the store.
type RunStore interface {
	store.TaskRuns
	UpdateTask(ctx context.Context, projectID, id string, u store.TaskUpdate) (store.Task, error)
}

// RunSpec is what a task run is made of: the task, and how to run its
// agent (as in Spec).
type RunSpec struct {
	// Project is the task's project; empty: found from the task's ID.
	Project string
	// Task is the task's ID. Required.
	Task       string
	Agent      profile.Name
	Model      string
	Credential profile.Credential
	ViaProxy   bool
	Cwd        string
	// Policy decides permission requests; empty means
	// allow-project-tools (nobody may be watching a run).
	Policy    acp.PermissionPolicy
	CreatedBy string
	Budget    catalog.Amount
}

// Run is a task run in the API.
type Run struct {
	Session string         `json:"session"`
	Project string         `json:"project"`
	Task    string         `json:"task"`
	Agent   string         `json:"agent"`
	Model   string         `json:"model,omitempty"`
	State   store.RunState `json:"state"`
	// SessionState is the run's session's state, for a run that is
	// still running.
	SessionState State     `json:"session_state,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Reply        string    `json:"reply,omitempty"`
	Notes        string    `json:"notes,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	EndedAt      time.Time `json:"ended_at,omitzero"`
	// DurationMS is how long the run took (so far, while running).
	DurationMS int64 `json:"duration_ms"`
	// Usage is what the run's model calls used and cost.
	Usage Usage `json:"usage"`
}

func runOf(r store.TaskRun, u store.UsageSum) Run {
	end := r.EndedAt
	if end.IsZero() {
		end = time.Now()
	}
	return Run{Session: r.SessionID, Project: r.ProjectID, Task: r.TaskID, Agent: r.Agent, Model: r.Model, State: r.State,
		Reason: r.Reason, Reply: r.Reply, Notes: r.Notes, StartedAt: r.StartedAt, EndedAt: r.EndedAt,
		DurationMS: max(end.Sub(r.StartedAt).Milliseconds(), 0), Usage: usageOf(u)}
}

// runStart is a run's part of Create: bind runs between the session's
// record and its agent's launch.
type runStart struct {
	task store.Task
}

// findTask finds a task by its ID alone, in project when given.
func (m *Manager) findTask(ctx context.Context, project, id string) (store.Task, error) {
	if id == "" || len(id) > store.MaxIDLen {
		return store.Task{}, fmt.Errorf("%w: task %q", store.ErrNotFound, truncateUTF8(id, 200))
	}
	if project != "" {
		t, err := m.st.GetTask(ctx, project, id)
		if errors.Is(err, store.ErrInvalid) {
			err = fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
		return t, err
	}
	projects, err := m.st.ListProjects(ctx)
	if err != nil {
		return store.Task{}, err
	}
	for _, p := range projects {
		t, err := m.st.GetTask(ctx, p.ID, id)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Task{}, err
		}
	}
	return store.Task{}, fmt.Errorf("task %q: %w", id, store.ErrNotFound)
}

// runnable reports whether a run may start from a task's status.
func runnable(s store.TaskStatus) bool {
	return s == store.TaskDraft || s == store.TaskQueued || s == store.TaskFailed
}

// RunTask starts a run of a task (see the rules above): it returns once
// the session is ready and the run's prompt is running, or the start has
// failed (ErrStartFailed; the run is then recorded as failed).
func (m *Manager) RunTask(ctx context.Context, rs RunSpec) (Created, Run, error) {
	if m.isClosed() {
		return Created{}, Run{}, ErrClosed
	}
	task, err := m.findTask(ctx, rs.Project, rs.Task)
	if err != nil {
		return Created{}, Run{}, err
	}
	proj, err := m.st.GetProject(ctx, task.ProjectID)
	if err != nil {
		return Created{}, Run{}, err
	}
	key := task.ProjectID + "/" + task.ID
	m.mu.Lock()
	if m.starting == nil {
		m.starting = map[string]bool{}
	}
	if m.starting[key] || !runnable(task.Status) {
		m.mu.Unlock()
		return Created{}, Run{}, fmt.Errorf("%w: task %s is %s (a run starts from draft, queued or failed)",
			ErrTaskNotRunnable, task.ID, task.Status)
	}
	m.starting[key] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.starting, key)
		m.mu.Unlock()
	}()
	if rs.Policy == "" {
		rs.Policy = acp.PolicyAllowProjectTools
	}
	spec := Spec{
		Project: task.ProjectID, Agent: rs.Agent, Model: rs.Model, Credential: rs.Credential, ViaProxy: rs.ViaProxy,
		Cwd: rs.Cwd, Policy: rs.Policy, Prompt: runPrompt(proj, task), Title: truncateUTF8("Task: "+task.Title, 200),
		CreatedBy: rs.CreatedBy, Task: task.ID, Budget: rs.Budget, run: &runStart{task: task},
	}
	created, err := m.Create(ctx, spec)
	if created.Session.ID == "" {
		return created, Run{}, err
	}
	runs, rerr := m.Runs(context.WithoutCancel(ctx), task.ProjectID, task.ID)
	var run Run
	for _, r := range runs {
		if r.Session == created.Session.ID {
			run = r
		}
	}
	return created, run, errors.Join(err, rerr)
}

// beginRun records the run and binds the task to its session; Create
// calls it once the session is recorded, before the agent starts.
func (s *session) beginRun(ctx context.Context, rs *runStart) error {
	rst := s.m.st
	s.mu.Lock()
	agent, model := string(s.cfg.Profile), s.cfg.Model
	s.mu.Unlock()
	if _, err := rst.AddRun(ctx, store.TaskRun{SessionID: s.id, ProjectID: s.project, TaskID: rs.task.ID,
		Agent: agent, Model: model}); err != nil {
		return fmt.Errorf("record the run: %w", err)
	}
	st, sid := store.TaskInProgress, s.id
	if _, err := rst.UpdateTask(ctx, s.project, rs.task.ID, store.TaskUpdate{Status: &st, SessionID: &sid}); err != nil {
		s.m.endRun(s, store.RunEnd{State: store.RunFailed, Reason: "the task could not be bound to its session: " + err.Error()})
		return fmt.Errorf("bind the task: %w", err)
	}
	return nil
}

// awaitRun ends the run when its turn ends, and stops its session.
func (s *session) awaitRun(t *turn) {
	defer s.wg.Done()
	select {
	case <-t.done:
	case <-s.quitCtx.Done():
		return // shutdown ends the run
	}
	s.transMu.Lock()
	ending := s.ending
	s.transMu.Unlock()
	if ending {
		return // the session is ending: its turn was cancelled for that, and shutdown ends the run, saying why
	}
	res := t.result()
	end := s.m.runOutcome(s, res.StopReason, res.Error)
	end.Reply = truncateUTF8(res.Reply, store.MaxTextLen)
	s.m.endRun(s, end)
	final, why := StateStopped, "task run finished"
	if res.Error != "" {
		final, why = StateFailed, "task run failed: "+res.Error
	}
	s.shutdown(context.Background(), final, why, true, false)
}

// runOutcome decides how a run whose turn ended (or whose session ended,
// turnErr then saying how) ends: the agent's own word first.
func (m *Manager) runOutcome(s *session, stop acp.StopReason, turnErr string) store.RunEnd {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	taskID := s.cfg.Task
	s.mu.Unlock()
	t, err := m.st.GetTask(ctx, s.project, taskID)
	switch {
	case err != nil:
		return store.RunEnd{State: store.RunFailed, Reason: "the task could not be read: " + err.Error()}
	case t.SessionID == s.id && t.Status == store.TaskCompleted:
		return store.RunEnd{State: store.RunCompleted, Reason: "the agent marked the task completed", Notes: t.Notes}
	case t.SessionID == s.id && t.Status == store.TaskFailed:
		return store.RunEnd{State: store.RunFailed, Reason: "the agent marked the task failed", Notes: t.Notes}
	case turnErr != "":
		return store.RunEnd{State: store.RunFailed, Reason: turnErr, Notes: t.Notes}
	}
	return store.RunEnd{State: store.RunFailed, Notes: t.Notes,
		Reason: fmt.Sprintf("the agent ended its turn (%s) without marking the task completed", stop)}
}

// endRun ends a session's run once (later calls change nothing) and the
// task with it, and records a run_end event while the log is open.
func (m *Manager) endRun(s *session, end store.RunEnd) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 10*time.Second)
	defer cancel()
	if r, ok := m.finishRun(ctx, s.project, s.id, end); ok {
		s.appendEvent(EventRunEnd, map[string]any{"task": r.TaskID, "state": r.State, "reason": r.Reason})
	}
}

// finishRun ends a running run and its task, the task first: a run seen
// ended has its task ended. Ends are serialized, so the first one wins
// for the task as for the run.
func (m *Manager) finishRun(ctx context.Context, project, session string, end store.RunEnd) (store.TaskRun, bool) {
	m.runEnds.Lock()
	defer m.runEnds.Unlock()
	cur, err := m.st.GetRun(ctx, project, session)
	if err != nil || cur.State.Final() {
		return store.TaskRun{}, false
	}
	cur.State, cur.Reason, cur.Reply, cur.Notes = end.State, end.Reason, end.Reply, end.Notes
	m.endTask(ctx, cur)
	r, err := m.st.FinishRun(ctx, project, session, end)
	if err != nil {
		if !errors.Is(err, store.ErrConflict) {
			m.log.Warn("sessions: task run not ended", "session", session, "err", err)
		}
		return store.TaskRun{}, false
	}
	return r, true
}

// endTask moves a run's task to the run's end, if it is still bound to
// the run's session.
func (m *Manager) endTask(ctx context.Context, r store.TaskRun) {
	rst := m.st
	t, err := m.st.GetTask(ctx, r.ProjectID, r.TaskID)
	if err != nil || t.SessionID != r.SessionID {
		return
	}
	st := store.TaskFailed
	if r.State == store.RunCompleted {
		st = store.TaskCompleted
	}
	summary := r.Reply
	if summary == "" || r.State == store.RunFailed && st != t.Status {
		summary = strings.TrimSpace("run " + r.SessionID + " failed: " + r.Reason + "\n\n" + r.Reply)
	}
	summary = truncateUTF8(summary, store.MaxTextLen)
	if _, err := rst.UpdateTask(ctx, r.ProjectID, r.TaskID, store.TaskUpdate{Status: &st, OutputSummary: &summary}); err != nil {
		m.log.Warn("sessions: task not updated at the end of its run", "task", r.TaskID, "session", r.SessionID, "err", err)
	}
}

// sessionEndedRun ends the run of a session that is ending (shutdown), if
// its turn did not end it first.
func (s *session) sessionEndedRun(final State, reason string) {
	end := s.m.runOutcome(s, "", fmt.Sprintf("the run's session ended (%s): %s", final, reason))
	s.m.endRun(s, end)
}

// failLeftRuns fails the runs a previous broker left running whose session
// is not live (Recover): no task stays in_progress behind a dead session.
func (m *Manager) failLeftRuns(ctx context.Context) error {
	rst := m.st
	runs, err := rst.RunningRuns(ctx)
	if err != nil {
		return fmt.Errorf("recover runs: %w", err)
	}
	for _, r := range runs {
		if m.liveSession(r.SessionID) != nil {
			continue
		}
		// In a fleet, a run whose session another broker owns is its.
		if ok, err := m.own(ctx, r.SessionID); err != nil || !ok {
			continue
		}
		if m.liveSession(r.SessionID) == nil {
			defer m.release(r.SessionID)
		}
		state := "unknown"
		if rec, err := m.st.SessionByID(ctx, r.SessionID); err == nil {
			state = rec.State
		}
		if _, ok := m.finishRun(ctx, r.ProjectID, r.SessionID, store.RunEnd{State: store.RunFailed,
			Reason: "the broker restarted during the run; its session is " + state}); !ok {
			continue
		}
		m.log.Info("sessions: task run failed by recovery", "session", r.SessionID, "task", r.TaskID)
	}
	return nil
}

// Runs lists a task's runs, newest first, with their usage.
func (m *Manager) Runs(ctx context.Context, project, task string) ([]Run, error) {
	rst := m.st
	t, err := m.findTask(ctx, project, task)
	if err != nil {
		return nil, err
	}
	recs, err := rst.ListRuns(ctx, t.ProjectID, t.ID)
	if err != nil {
		return nil, err
	}
	sums, err := m.st.UsageTotals(ctx, store.UsageFilter{ProjectID: t.ProjectID, TaskID: t.ID, GroupBy: store.UsageBySession})
	if err != nil {
		return nil, err
	}
	by := map[string]store.UsageSum{}
	for _, s := range sums {
		by[s.Key] = s
	}
	out := make([]Run, 0, len(recs))
	for _, r := range recs {
		run := runOf(r, by[r.SessionID])
		if r.State == store.RunRunning {
			if s := m.liveSession(r.SessionID); s != nil {
				run.SessionState = s.info().State
			}
		}
		out = append(out, run)
	}
	return out, nil
}

// runPrompt is a run's first prompt: the project's instructions, the
// task, and how to report the outcome.
func runPrompt(p store.Project, t store.Task) string {
	const part = 100 << 10 // each long field, so that the prompt stays under store.MaxTextLen
	var b strings.Builder
	fmt.Fprintf(&b, "You are working on one task of the project %q, through agentbroker; its MCP server gives you the project's tools.\n\n", p.Name)
	if strings.TrimSpace(p.Instructions) != "" {
		fmt.Fprintf(&b, "## The project's instructions\n\n%s\n\n", truncateUTF8(strings.TrimSpace(p.Instructions), part))
	}
	fmt.Fprintf(&b, "## Your task: %s (%s)\n\n", t.Title, t.ID)
	if d := strings.TrimSpace(t.Description); d != "" {
		fmt.Fprintf(&b, "%s\n\n", truncateUTF8(d, part))
	}
	fmt.Fprintf(&b, "## When you are done\n\nRecord the outcome with the agentbroker tool update_task: "+
		`{"id":%q,"status":"completed","notes":"what you did"}`+"; if you cannot do the task, "+
		`use "status":"failed" and say why in the notes. Then reply with a short summary.`+"\n", t.ID)
	return b.String()
}

// RunRequest is the body of POST /v1/tasks/{task}/runs (and
// /v1/projects/{project}/tasks/{task}/runs).
type RunRequest struct {
	Agent            string            `json:"agent"`
	Model            string            `json:"model,omitempty"`
	Credential       CredentialRequest `json:"credential"`
	Cwd              string            `json:"cwd,omitempty"`
	PermissionPolicy string            `json:"permission_policy,omitempty"`
	BudgetUSD        USD               `json:"budget_usd,omitempty"`
}

// RunResponse is the answer to a run's start (201).
type RunResponse struct {
	Run                  Run       `json:"run"`
	Session              Info      `json:"session"`
	ViewerToken          string    `json:"viewer_token"`
	ViewerTokenExpiresAt time.Time `json:"viewer_token_expires_at"`
	EventsPath           string    `json:"events_path"`
}

func (m *Manager) handleRunTask(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	if !decode(w, r, &req) {
		return
	}
	c, _ := tokens.ClaimsFrom(r.Context())
	rs := RunSpec{
		Project: r.PathValue("project"), Task: r.PathValue("task"), Agent: profile.Name(req.Agent), Model: req.Model,
		Credential: req.Credential.credential(), ViaProxy: req.Credential.ViaProxy, Cwd: req.Cwd,
		Policy: acp.PermissionPolicy(req.PermissionPolicy), CreatedBy: c.Subject,
	}
	req.Credential.Secret = ""
	var ok bool
	if rs.Budget, ok = budgetOf(w, req.BudgetUSD); !ok {
		return
	}
	created, run, err := m.RunTask(r.Context(), rs)
	if errors.Is(err, ErrStartFailed) {
		server.WriteJSON(w, http.StatusBadGateway, map[string]any{
			"error": "agent_start_failed", "error_description": err.Error(), "session": created.Session, "run": run})
		return
	}
	if errors.Is(err, ErrTaskNotRunnable) {
		server.WriteError(w, http.StatusConflict, "task_not_runnable", err.Error())
		return
	}
	if err != nil {
		m.writeErr(w, err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, RunResponse{Run: run, Session: created.Session,
		ViewerToken: created.ViewerToken, ViewerTokenExpiresAt: created.ViewerExpiresAt,
		EventsPath: "/v1/sessions/" + created.Session.ID + "/events"})
}

// TaskRunsResponse is the answer to GET /v1/tasks/{task}/runs: the task
// as it stands, what all its sessions cost, and its runs, newest first.
type TaskRunsResponse struct {
	Task struct {
		ID            string           `json:"id"`
		Project       string           `json:"project"`
		Title         string           `json:"title"`
		Status        store.TaskStatus `json:"status"`
		Notes         string           `json:"notes"`
		OutputSummary string           `json:"output_summary"`
		SessionID     string           `json:"session_id,omitempty"`
	} `json:"task"`
	Usage Usage `json:"usage"`
	Runs  []Run `json:"runs"`
}

func (m *Manager) handleRuns(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var out TaskRunsResponse
	var err error
	// The runs, then the task: a run ends after its task does, so a run
	// seen ended comes with its task ended (read the other way round, the
	// task could be from before and the run from after).
	if out.Runs, err = m.Runs(ctx, r.PathValue("project"), r.PathValue("task")); err != nil {
		m.writeErr(w, err)
		return
	}
	t, err := m.findTask(ctx, r.PathValue("project"), r.PathValue("task"))
	if err != nil {
		m.writeErr(w, err)
		return
	}
	out.Task.ID, out.Task.Project, out.Task.Title, out.Task.Status = t.ID, t.ProjectID, t.Title, t.Status
	out.Task.Notes, out.Task.OutputSummary, out.Task.SessionID = t.Notes, t.OutputSummary, t.SessionID
	sums, err := m.st.UsageTotals(ctx, store.UsageFilter{ProjectID: t.ProjectID, TaskID: t.ID})
	if err != nil {
		m.writeErr(w, err)
		return
	}
	if len(sums) == 1 {
		out.Usage = usageOf(sums[0])
	}
	server.WriteJSON(w, http.StatusOK, out)
}
