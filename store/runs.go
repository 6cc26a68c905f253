package store

import (
	"context"
	"time"
)

// RunState is where a task run stands.
type RunState string

// The run states. A run starts running and ends once, completed or failed.
const (
	RunRunning   RunState = "running"
	RunCompleted RunState = "completed"
	RunFailed    RunState = "failed"
)

// Valid reports whether s is one of the constants.
func (s RunState) Valid() bool {
	return s == RunRunning || s == RunCompleted || s == RunFailed
}

// Final reports whether the run has ended.
func (s RunState) Final() bool { return s == RunCompleted || s == RunFailed }

// TaskRun is one attempt at a task: a session the broker started for it
// (agentbroker task run). Its session ID is its ID.
type TaskRun struct {
	SessionID string // required; the session must be recorded first (PutSession)
	ProjectID string // required
	TaskID    string // required; the task must exist in ProjectID
	Agent     string
	Model     string
	State     RunState // RunRunning at AddRun
	// Reason says why the run ended (the agent's status, or how its
	// session ended); Reply is the agent's reply to the run's prompt and
	// Notes the task's notes when it ended (what the agent wrote with
	// update_task). Empty while running.
	Reason    string
	Reply     string
	Notes     string
	StartedAt time.Time // set by AddRun
	EndedAt   time.Time // zero while running
}

// RunEnd is how a run ended (FinishRun).
type RunEnd struct {
	State  RunState // RunCompleted or RunFailed
	Reason string
	Reply  string
	Notes  string
}

// TaskRuns persists task runs.
type TaskRuns interface {
	// AddRun records a new run, running, started now. Its session must be
	// recorded and its task exist, in its project (ErrNotFound); a run
	// of that session already recorded is ErrConflict.
	AddRun(ctx context.Context, r TaskRun) (TaskRun, error)
	// FinishRun ends a running run, once: a run that has already ended is
	// ErrConflict (the first end wins), one not recorded ErrNotFound.
	FinishRun(ctx context.Context, projectID, sessionID string, end RunEnd) (TaskRun, error)
	// GetRun returns the run of a session.
	GetRun(ctx context.Context, projectID, sessionID string) (TaskRun, error)
	// ListRuns returns a task's runs, newest first (at most MaxListLimit).
	ListRuns(ctx context.Context, projectID, taskID string) ([]TaskRun, error)
	// RunningRuns returns every run still running, in every project
	// (recovery after a broker restart), oldest first.
	RunningRuns(ctx context.Context) ([]TaskRun, error)
}
