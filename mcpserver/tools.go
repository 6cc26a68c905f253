package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Limits on tool arguments beyond the store's own (store.Max…).
const (
	// maxQueryChars bounds a search query: plenty for a model's words, far
	// below store.MaxQueryLen.
	maxQueryChars = 1000
	// maxSeq is the largest after_seq accepted (2^53-1, exact in JSON).
	maxSeq = 1<<53 - 1
	// maxMessagesContent bounds the message content get_session_messages
	// returns in one call; the rest is paged with after_seq.
	maxMessagesContent = 512 << 10
)

// toolDef is one tool: its published definition, the scopes that open it,
// and its handler. The table in tools() is the only list of tools.
type toolDef struct {
	name        string
	title       string
	description string
	// scopes: the token needs any one of them (tasks:manage widens
	// tasks:write, so it opens update_task too).
	scopes      []tokens.Scope
	readOnly    bool
	idempotent  bool
	destructive bool
	input       inputSchema
	output      jsonObject
	run         func(ctx context.Context, c *toolCall) (any, error)
}

// toolCall is what a handler gets: the verified claims and the validated
// arguments.
type toolCall struct {
	s      *Server
	claims tokens.Claims
	args   map[string]any
	req    mcp.CallToolRequest
}

// allowed reports whether claims open the tool.
func (d *toolDef) allowed(c tokens.Claims) bool {
	return slices.ContainsFunc(d.scopes, c.HasScope)
}

// mcpTool is the tool as tools/list shows it.
func (d *toolDef) mcpTool() (mcp.Tool, error) {
	in, err := json.Marshal(d.input)
	if err != nil {
		return mcp.Tool{}, fmt.Errorf("tool %s: input schema: %w", d.name, err)
	}
	out, err := json.Marshal(d.output)
	if err != nil {
		return mcp.Tool{}, fmt.Errorf("tool %s: output schema: %w", d.name, err)
	}
	return mcp.Tool{
		Name:            d.name,
		Title:           d.title,
		Description:     d.description,
		RawInputSchema:  in,
		RawOutputSchema: out,
		Annotations: mcp.ToolAnnotation{
			Title:           d.title,
			ReadOnlyHint:    ptr(d.readOnly),
			DestructiveHint: ptr(d.destructive),
			IdempotentHint:  ptr(d.idempotent),
			OpenWorldHint:   ptr(false),
		},
	}, nil
}

// Argument accessors, for arguments validateArgs has already checked.

func (c *toolCall) str(name string) string {
	s, _ := c.args[name].(string)
	return s
}

func (c *toolCall) has(name string) bool {
	v, ok := c.args[name]
	return ok && v != nil
}

func (c *toolCall) integer(name string, def int64) int64 {
	switch v := c.args[name].(type) {
	case float64:
		return int64(v)
	case json.Number:
		f, _ := v.Float64()
		return int64(math.Trunc(f))
	}
	return def
}

func (c *toolCall) boolean(name string) bool {
	b, _ := c.args[name].(bool)
	return b
}

func (c *toolCall) strings(name string) []string {
	items, _ := c.args[name].([]any)
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// toolError is a domain failure, returned to the model as an isError
// result (never a JSON-RPC error): what went wrong, in words it can act on.
type toolError struct {
	outcome Outcome
	msg     string
}

func (e *toolError) Error() string { return e.msg }

func notFound(kind, id string) error {
	return &toolError{OutcomeNotFound, fmt.Sprintf("%s %q not found in this project", kind, clip(id, store.MaxIDLen))}
}

func forbidden(msg string) error { return &toolError{OutcomeForbidden, msg} }

// storeError maps a store failure for a tool: not found and invalid values
// are the model's to fix; anything else is ours (logged by the caller,
// shown to the model only as a generic internal error).
func storeError(err error, kind, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		if id == "" {
			return &toolError{OutcomeNotFound, "this token's project no longer exists"}
		}
		return notFound(kind, id)
	case errors.Is(err, store.ErrInvalid):
		msg := strings.TrimSuffix(err.Error(), ": "+store.ErrInvalid.Error())
		return &toolError{OutcomeInvalidArguments, "refused: " + msg}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &toolError{OutcomeCancelled, "the call was cancelled"}
	case errors.Is(err, store.ErrNoSpace):
		// Not the model's to fix, but worth telling: an immediate retry
		// will fail the same way.
		return &toolError{OutcomeInternal, "the broker cannot write now (its disk is full); nothing was changed"}
	case errors.Is(err, store.ErrReadOnly):
		return &toolError{OutcomeInternal, "the broker cannot write now (its store is read-only); nothing was changed"}
	}
	return err
}

func taskStatuses() []string {
	var out []string
	for _, s := range store.TaskStatuses() {
		out = append(out, string(s))
	}
	return out
}

func messageRoles() []string {
	return []string{string(store.RoleUser), string(store.RoleAssistant), string(store.RoleTool),
		string(store.RoleThinking), string(store.RolePlan)}
}

// Shared output schema pieces.

func taskSummarySchema() jsonObject {
	return outObject("A task, without its long text fields.", []string{"id", "title", "status", "created_at", "updated_at"}, jsonObject{
		"id":         outString("The task's ID."),
		"title":      outString("The task's title."),
		"status":     outEnum("Where the task stands.", taskStatuses()),
		"session_id": outString("The session working on the task, if any."),
		"created_at": outTime("When the task was created."),
		"updated_at": outTime("When the task last changed."),
	})
}

func taskSchema() jsonObject {
	return outObject("A task with all its fields.", []string{"id", "title", "status", "created_at", "updated_at"}, jsonObject{
		"id":             outString("The task's ID."),
		"title":          outString("The task's title."),
		"description":    outString("What the task asks for (markdown)."),
		"status":         outEnum("Where the task stands.", taskStatuses()),
		"notes":          outString("Working notes on the task."),
		"output_summary": outString("A summary of what the work produced."),
		"session_id":     outString("The session working on the task, if any."),
		"created_at":     outTime("When the task was created."),
		"updated_at":     outTime("When the task last changed."),
	})
}

func knowledgeSummarySchema() jsonObject {
	return outObject("A knowledge entry, without its body.", []string{"id", "title", "tags", "created_at", "updated_at"}, jsonObject{
		"id":         outString("The entry's ID."),
		"title":      outString("The entry's title."),
		"tags":       outArray("The entry's tags.", jsonObject{"type": "string"}),
		"session_id": outString("The session that added the entry, if an agent did."),
		"created_at": outTime("When the entry was added."),
		"updated_at": outTime("When the entry last changed."),
	})
}

func knowledgeSchema() jsonObject {
	return outObject("A knowledge entry with its body.", []string{"id", "title", "body", "tags", "created_at", "updated_at"}, jsonObject{
		"id":         outString("The entry's ID."),
		"title":      outString("The entry's title."),
		"body":       outString("The entry's text (markdown)."),
		"tags":       outArray("The entry's tags.", jsonObject{"type": "string"}),
		"session_id": outString("The session that added the entry, if an agent did."),
		"created_at": outTime("When the entry was added."),
		"updated_at": outTime("When the entry last changed."),
	})
}

const (
	descLimitList   = "How many items to return at most."
	descSearchQuery = "Plain words to look for (every word must match, in any order; English stemming, so \"migrations\" finds \"migration\"). Not a query language: operators and punctuation mean nothing."
)

// tools is the tool table, in the order of the issue (tools/list sorts by name).
func tools() []*toolDef {
	return []*toolDef{
		{
			name:  "get_project",
			title: "Get project",
			description: "Describe the project this session works on: its name, description, repository and default branch, " +
				"and the ID of the current session. Call it first. The project's rules are in get_instructions.",
			scopes:     []tokens.Scope{tokens.ScopeProjectRead},
			readOnly:   true,
			idempotent: true,
			input:      object(nil),
			output: outObject("", []string{"project", "session_id"}, jsonObject{
				"project": outObject("The project.", []string{"id", "name", "has_instructions", "created_at", "updated_at"}, jsonObject{
					"id":               outString("The project's ID."),
					"name":             outString("The project's name."),
					"description":      outString("What the project is (markdown)."),
					"repo_url":         outString("The repository's URL."),
					"repo_path":        outString("Where the repository is checked out on the broker's machine."),
					"default_branch":   outString("The repository's default branch."),
					"has_instructions": outBool("Whether the project has instructions (read them with get_instructions)."),
					"created_at":       outTime("When the project was created."),
					"updated_at":       outTime("When the project last changed."),
				}),
				"session_id": outString("The ID of the current session (tasks bound to it are yours to update)."),
			}),
			run: runGetProject,
		},
		{
			name:  "get_instructions",
			title: "Get project instructions",
			description: "Return the project's instructions: the rules an agent must follow when working on it (markdown). " +
				"Read them before changing anything.",
			scopes:     []tokens.Scope{tokens.ScopeProjectRead},
			readOnly:   true,
			idempotent: true,
			input:      object(nil),
			output: outObject("", []string{"project_id", "instructions"}, jsonObject{
				"project_id":   outString("The project's ID."),
				"instructions": outString("The instructions (markdown); empty when the project has none."),
			}),
			run: runGetInstructions,
		},
		{
			name:  "list_tasks",
			title: "List tasks",
			description: "List the project's tasks, newest first, without their long fields (use get_task for those). " +
				"Filter by status, or with mine=true to the tasks bound to the current session.",
			scopes:     []tokens.Scope{tokens.ScopeTasksRead},
			readOnly:   true,
			idempotent: true,
			input: object(nil,
				prop("status", enum("Only tasks with this status.", taskStatuses()...)),
				prop("mine", boolean("Only the tasks bound to the current session.")),
				prop("limit", integer(descLimitList, 1, store.MaxListLimit, store.DefaultListLimit)),
			),
			output: outObject("", []string{"tasks", "count", "truncated"}, jsonObject{
				"tasks":     outArray("The tasks, newest first.", taskSummarySchema()),
				"count":     outInt("How many tasks are listed."),
				"truncated": outBool("True when more tasks match than were listed: narrow the filter or raise the limit."),
			}),
			run: runListTasks,
		},
		{
			name:        "get_task",
			title:       "Get task",
			description: "Return one task of the project with all its fields: description, status, notes and output summary.",
			scopes:      []tokens.Scope{tokens.ScopeTasksRead},
			readOnly:    true,
			idempotent:  true,
			input: object([]string{"id"},
				prop("id", str("The task's ID, as list_tasks or search_tasks return it.", store.MaxIDLen)),
			),
			output: outObject("", []string{"task"}, jsonObject{"task": taskSchema()}),
			run:    runGetTask,
		},
		{
			name:        "search_tasks",
			title:       "Search tasks",
			description: "Search the project's tasks (title, description, notes, output summary) for words, best match first.",
			scopes:      []tokens.Scope{tokens.ScopeTasksRead},
			readOnly:    true,
			idempotent:  true,
			input: object([]string{"query"},
				prop("query", str(descSearchQuery, maxQueryChars)),
				prop("limit", integer(descLimitList, 1, store.MaxSearchLimit, store.DefaultSearchLimit)),
			),
			output: outObject("", []string{"hits"}, jsonObject{
				"hits": outArray("Matching tasks, best first.", outObject("", []string{"task", "snippet"}, jsonObject{
					"task":    taskSummarySchema(),
					"snippet": outString("Where the words matched, marked «like this»."),
				})),
			}),
			run: runSearchTasks,
		},
		{
			name:        "search_knowledge",
			title:       "Search knowledge",
			description: "Search what the project has learnt (knowledge entries: title, body, tags) for words, best match first. Read a whole entry with get_knowledge.",
			scopes:      []tokens.Scope{tokens.ScopeKnowledgeRead},
			readOnly:    true,
			idempotent:  true,
			input: object([]string{"query"},
				prop("query", str(descSearchQuery, maxQueryChars)),
				prop("limit", integer(descLimitList, 1, store.MaxSearchLimit, store.DefaultSearchLimit)),
			),
			output: outObject("", []string{"hits"}, jsonObject{
				"hits": outArray("Matching entries, best first.", outObject("", []string{"entry", "snippet"}, jsonObject{
					"entry":   knowledgeSummarySchema(),
					"snippet": outString("Where the words matched, marked «like this»."),
				})),
			}),
			run: runSearchKnowledge,
		},
		{
			name:        "get_knowledge",
			title:       "Get knowledge entry",
			description: "Return one knowledge entry of the project with its body.",
			scopes:      []tokens.Scope{tokens.ScopeKnowledgeRead},
			readOnly:    true,
			idempotent:  true,
			input: object([]string{"id"},
				prop("id", str("The entry's ID, as search_knowledge returns it.", store.MaxIDLen)),
			),
			output: outObject("", []string{"entry"}, jsonObject{"entry": knowledgeSchema()}),
			run:    runGetKnowledge,
		},
		{
			name:        "list_sessions",
			title:       "List sessions",
			description: "List the project's agent sessions, earlier ones and the current one, newest first. Read a session's transcript with get_session_messages.",
			scopes:      []tokens.Scope{tokens.ScopeSessionsRead},
			readOnly:    true,
			idempotent:  true,
			input: object(nil,
				prop("limit", integer(descLimitList, 1, store.MaxListLimit, store.DefaultListLimit)),
			),
			output: outObject("", []string{"sessions", "count"}, jsonObject{
				"sessions": outArray("The sessions, newest first.", outObject("", []string{"id", "current", "created_at", "updated_at"}, jsonObject{
					"id":         outString("The session's ID."),
					"agent":      outString("The agent that ran it (claude, codex, amp, …)."),
					"model":      outString("The model it used."),
					"state":      outString("Its state as the broker recorded it."),
					"title":      outString("Its title."),
					"current":    outBool("Whether this is the current session."),
					"created_at": outTime("When the session started."),
					"updated_at": outTime("When its record last changed."),
				})),
				"count": outInt("How many sessions are listed."),
			}),
			run: runListSessions,
		},
		{
			name:  "get_session_messages",
			title: "Get session messages",
			description: "Return a session's transcript in order: messages with a sequence number above after_seq, " +
				"at most limit of them and about 512 KiB of text; page on with after_seq = next_after_seq while more is true.",
			scopes:     []tokens.Scope{tokens.ScopeSessionsRead},
			readOnly:   true,
			idempotent: true,
			input: object([]string{"session_id"},
				prop("session_id", str("The session's ID, as list_sessions or search_messages return it.", store.MaxIDLen)),
				prop("after_seq", integer("Return only messages after this sequence number (0, the default, starts at the beginning).", 0, maxSeq, 0)),
				prop("limit", integer(descLimitList, 1, store.MaxMessageLimit, store.DefaultMessageLimit)),
			),
			output: outObject("", []string{"session_id", "messages", "next_after_seq", "more"}, jsonObject{
				"session_id": outString("The session's ID."),
				"messages": outArray("The messages, in order.", outObject("", []string{"seq", "role", "content", "created_at"}, jsonObject{
					"seq":        outInt("The message's sequence number in the session, from 1."),
					"role":       outEnum("Who produced the message.", messageRoles()),
					"content":    outString("The message's text."),
					"truncated":  outBool("True when content was cut to fit the result; the message is complete in the store."),
					"created_at": outTime("When the message was recorded."),
				})),
				"next_after_seq": outInt("The after_seq that continues where this page ends."),
				"more":           outBool("Whether more messages may follow: call again with after_seq = next_after_seq."),
			}),
			run: runGetSessionMessages,
		},
		{
			name:        "search_messages",
			title:       "Search session messages",
			description: "Search the transcripts of every session of the project for words, best match first.",
			scopes:      []tokens.Scope{tokens.ScopeSessionsRead},
			readOnly:    true,
			idempotent:  true,
			input: object([]string{"query"},
				prop("query", str(descSearchQuery, maxQueryChars)),
				prop("limit", integer(descLimitList, 1, store.MaxSearchLimit, store.DefaultSearchLimit)),
			),
			output: outObject("", []string{"hits"}, jsonObject{
				"hits": outArray("Matching messages, best first.", outObject("", []string{"session_id", "seq", "role", "created_at", "snippet"}, jsonObject{
					"session_id": outString("The message's session."),
					"seq":        outInt("The message's sequence number in its session."),
					"role":       outEnum("Who produced the message.", messageRoles()),
					"created_at": outTime("When the message was recorded."),
					"snippet":    outString("Where the words matched, marked «like this»."),
				})),
			}),
			run: runSearchMessages,
		},
		{
			name:  "update_task",
			title: "Update task",
			description: "Change a task's status or notes (notes replace the previous notes). Only the task bound to the " +
				"current session may be updated, unless the token allows managing every task.",
			scopes:     []tokens.Scope{tokens.ScopeTasksWrite, tokens.ScopeTasksManage},
			idempotent: true,
			input: object([]string{"id"},
				prop("id", str("The task's ID.", store.MaxIDLen)),
				prop("status", enum("The task's new status.", taskStatuses()...)),
				prop("notes", text("The task's new notes (markdown), replacing the old ones.", store.MaxTextLen)),
			),
			output: outObject("", []string{"task"}, jsonObject{"task": taskSchema()}),
			run:    runUpdateTask,
		},
		{
			name:        "add_knowledge",
			title:       "Add knowledge",
			description: "Record something learnt about the project (a finding, a decision, a pitfall) for later sessions to find with search_knowledge.",
			scopes:      []tokens.Scope{tokens.ScopeKnowledgeWrite},
			input: object([]string{"title", "body"},
				prop("title", str("A short title.", store.MaxTitleLen)),
				prop("body", str("The entry's text (markdown).", store.MaxTextLen)),
				prop("tags", strList("Tags to find the entry by.", store.MaxTags, store.MaxTagLen)),
			),
			output: outObject("", []string{"entry"}, jsonObject{"entry": knowledgeSchema()}),
			run:    runAddKnowledge,
		},
	}
}

// ToolInfo names one of the server's tools as tools/list shows it.
type ToolInfo struct {
	Name, Title string
	ReadOnly    bool
}

// Tools lists the server's tools, in the table's order: agent profiles
// that must name them (Qwen Code's visible tools) are tested against it.
func Tools() []ToolInfo {
	var out []ToolInfo
	for _, d := range tools() {
		out = append(out, ToolInfo{Name: d.name, Title: d.title, ReadOnly: d.readOnly})
	}
	return out
}
