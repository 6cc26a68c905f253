package store

import (
	"context"
	"time"
)

// Size limits on what the store accepts. Lengths are in bytes of UTF-8.
// A value over its limit, text that is not valid UTF-8 or that holds a NUL
// byte, and a required field that is empty or only white space are all
// refused with an error wrapping ErrInvalid.
const (
	// MaxIDLen bounds IDs the caller chooses (session IDs) and IDs given
	// as references (Task.SessionID, Knowledge.SessionID).
	MaxIDLen = 128
	// MaxNameLen bounds a project's name and default branch, and a
	// session's agent, model and state.
	MaxNameLen = 200
	// MaxTitleLen bounds task, knowledge and session titles.
	MaxTitleLen = 500
	// MaxRefLen bounds a project's repository path and URL.
	MaxRefLen = 4096
	// MaxTextLen bounds long text: project descriptions and instructions,
	// task descriptions, notes and output summaries, knowledge bodies and
	// message content.
	MaxTextLen = 256 << 10
	// MaxTags is the most tags a knowledge entry may carry (after
	// duplicates are removed), and MaxTagLen bounds each one.
	MaxTags   = 32
	MaxTagLen = 64
	// MaxAppend is the most messages one AppendMessages call may add.
	MaxAppend = 1000
	// MaxConfigLen bounds a session record's Config; MaxStates the
	// states one SessionsByState call asks for.
	MaxConfigLen = 64 << 10
	MaxStates    = 32
	// MaxQueryLen bounds a search query; MaxSearchWords is how many
	// distinct words of it are searched for (later ones are ignored).
	MaxQueryLen    = 16 << 10
	MaxSearchWords = 32
)

// Result limits. A limit of zero or less means the default; one over the
// maximum is lowered to the maximum (not an error).
const (
	DefaultListLimit    = 100 // ListTasks, ListKnowledge, ListSessions
	MaxListLimit        = 1000
	DefaultSearchLimit  = 20 // SearchTasks, SearchKnowledge, SearchMessages
	MaxSearchLimit      = 100
	DefaultMessageLimit = 200 // SessionMessages
	MaxMessageLimit     = 1000
)

// Project is what agents work on: its description and the rules they must
// follow there.
type Project struct {
	ID            string
	Name          string
	Description   string
	RepoPath      string // a checkout on this machine, if any
	RepoURL       string
	DefaultBranch string
	Instructions  string // markdown: the rules an agent must follow
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TaskStatus is where a task stands.
type TaskStatus string

// The task statuses.
const (
	TaskDraft      TaskStatus = "draft"
	TaskQueued     TaskStatus = "queued"
	TaskInProgress TaskStatus = "in_progress"
	TaskCompleted  TaskStatus = "completed"
	TaskFailed     TaskStatus = "failed"
	TaskCancelled  TaskStatus = "cancelled"
)

// TaskStatuses lists every status, in lifecycle order.
func TaskStatuses() []TaskStatus {
	return []TaskStatus{TaskDraft, TaskQueued, TaskInProgress, TaskCompleted, TaskFailed, TaskCancelled}
}

// Valid reports whether s is one of the constants.
func (s TaskStatus) Valid() bool {
	for _, v := range TaskStatuses() {
		if s == v {
			return true
		}
	}
	return false
}

// Task is one piece of work in a project.
type Task struct {
	ID            string
	ProjectID     string
	Title         string
	Description   string
	Status        TaskStatus // empty at creation means TaskDraft
	Notes         string
	OutputSummary string
	SessionID     string // the session working on it, if any; not checked against sessions
	// BudgetPicoUSD is the most its sessions' model calls may cost, in
	// pico-USD (catalog.Amount); 0 means no budget. Negative is ErrInvalid.
	BudgetPicoUSD int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TaskUpdate changes the fields that are non-nil.
type TaskUpdate struct {
	Title         *string
	Description   *string
	Status        *TaskStatus
	Notes         *string
	OutputSummary *string
	SessionID     *string
	BudgetPicoUSD *int64
}

// TaskFilter narrows ListTasks. Zero fields match everything.
type TaskFilter struct {
	Status    TaskStatus
	SessionID string
	Limit     int // 0 means the implementation's default (100)
}

// Knowledge is one entry of what a project has learnt.
type Knowledge struct {
	ID        string
	ProjectID string
	Title     string
	Body      string
	// Tags are kept in the order given, trimmed of surrounding white
	// space, exact duplicates removed; never nil when read back.
	Tags      []string
	SessionID string // the session that added it, if an agent did
	CreatedAt time.Time
	UpdatedAt time.Time
}

// KnowledgeUpdate changes the fields that are non-nil.
type KnowledgeUpdate struct {
	Title *string
	Body  *string
	Tags  *[]string
}

// MessageRole says who produced a transcript message.
type MessageRole string

// The message roles.
const (
	RoleUser      MessageRole = "user"
	RoleAssistant MessageRole = "assistant"
	RoleTool      MessageRole = "tool"
	RoleThinking  MessageRole = "thinking"
	RolePlan      MessageRole = "plan"
)

// Valid reports whether r is one of the constants.
func (r MessageRole) Valid() bool {
	switch r {
	case RoleUser, RoleAssistant, RoleTool, RoleThinking, RolePlan:
		return true
	}
	return false
}

// SessionRecord is a session as earlier-session tools see it. The session
// broker owns its lifecycle; the store keeps what it records.
type SessionRecord struct {
	ID        string // chosen by the session broker; required
	ProjectID string // required; may not change once recorded
	Agent     string
	Model     string
	State     string
	Title     string
	// Config is what the session broker keeps about the session besides
	// these fields (its configuration and what its log said when the
	// record was written), as a JSON object the store does not read. Nil
	// on a later PutSession keeps the stored one; read back, a session
	// recorded without one has nil. At most MaxConfigLen bytes.
	Config []byte
	// CreatedAt is the caller's on the first PutSession (now when zero)
	// and kept by later ones; UpdatedAt is set by the store.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Message is one message of a session's transcript.
type Message struct {
	SessionID string
	ProjectID string // required: the session's project
	Seq       int64  // order within the session, from 1; set by the store
	Role      MessageRole
	Content   string    // required
	CreatedAt time.Time // now when zero
}

// SearchHit is one search result: the item and a short excerpt of where
// the query matched.
type SearchHit[T any] struct {
	Item T
	// Snippet is about a dozen words of the best-matching field, the
	// matched words marked «like this», elisions marked with "…".
	Snippet string
}

// Projects persists projects.
type Projects interface {
	// CreateProject stores p with a new ID (p.ID is ignored) and returns it.
	CreateProject(ctx context.Context, p Project) (Project, error)
	GetProject(ctx context.Context, id string) (Project, error)
	// UpdateProject replaces the project's fields (not ID or CreatedAt).
	UpdateProject(ctx context.Context, p Project) (Project, error)
	// ListProjects returns every project, by name (case-insensitive).
	ListProjects(ctx context.Context) ([]Project, error)
}

// Tasks persists tasks. Every call names the project: a task of another
// project is ErrNotFound, never data.
type Tasks interface {
	// CreateTask stores t in t.ProjectID with a new ID; an empty Status is
	// TaskDraft.
	CreateTask(ctx context.Context, t Task) (Task, error)
	GetTask(ctx context.Context, projectID, id string) (Task, error)
	// UpdateTask changes the fields u sets and UpdatedAt; a u that sets
	// nothing returns the task unchanged.
	UpdateTask(ctx context.Context, projectID, id string, u TaskUpdate) (Task, error)
	// ListTasks returns the project's tasks matching f, newest first.
	ListTasks(ctx context.Context, projectID string, f TaskFilter) ([]Task, error)
	// SearchTasks finds tasks whose title, description, notes or summary
	// match the words of query (plain text, not a query language).
	SearchTasks(ctx context.Context, projectID, query string, limit int) ([]SearchHit[Task], error)
}

// KnowledgeBase persists knowledge entries, searchable by text.
type KnowledgeBase interface {
	// AddKnowledge stores k in k.ProjectID with a new ID.
	AddKnowledge(ctx context.Context, k Knowledge) (Knowledge, error)
	GetKnowledge(ctx context.Context, projectID, id string) (Knowledge, error)
	// UpdateKnowledge changes the fields u sets and UpdatedAt; a u that
	// sets nothing returns the entry unchanged.
	UpdateKnowledge(ctx context.Context, projectID, id string, u KnowledgeUpdate) (Knowledge, error)
	// ListKnowledge returns the project's entries, newest first.
	ListKnowledge(ctx context.Context, projectID string, limit int) ([]Knowledge, error)
	// SearchKnowledge finds entries whose title, body or tags match the
	// words of query.
	SearchKnowledge(ctx context.Context, projectID, query string, limit int) ([]SearchHit[Knowledge], error)
}

// Transcripts persists sessions' records and messages, searchable by text.
type Transcripts interface {
	// PutSession creates or updates a session record. Its project must
	// exist (ErrNotFound) and may not change (ErrConflict).
	PutSession(ctx context.Context, s SessionRecord) error
	GetSession(ctx context.Context, projectID, id string) (SessionRecord, error)
	// SessionByID returns a session record by its ID alone, whatever its
	// project (for the session broker, which routes by session ID; never
	// for a caller confined to a project).
	SessionByID(ctx context.Context, id string) (SessionRecord, error)
	// SessionsByState returns the sessions, of every project, whose State
	// is one of states, oldest first (by CreatedAt, then ID). It is meant
	// for the live states, which few sessions are in at a time: it has no
	// limit. No states is no sessions; more than MaxStates is ErrInvalid.
	SessionsByState(ctx context.Context, states ...string) ([]SessionRecord, error)
	// ListSessions returns the project's sessions, newest first.
	ListSessions(ctx context.Context, projectID string, limit int) ([]SessionRecord, error)
	// AppendMessages adds messages to sessions' transcripts, all or none;
	// each gets the next Seq of its session, returned in order. Each
	// message's session must have been recorded by PutSession in the
	// message's project, else ErrNotFound.
	AppendMessages(ctx context.Context, msgs []Message) ([]Message, error)
	// SessionMessages returns messages with Seq > afterSeq, in order; a
	// session not recorded in the project is ErrNotFound.
	SessionMessages(ctx context.Context, projectID, sessionID string, afterSeq int64, limit int) ([]Message, error)
	// SearchMessages finds messages, of any session of the project, whose
	// content matches the words of query.
	SearchMessages(ctx context.Context, projectID, query string, limit int) ([]SearchHit[Message], error)
}
