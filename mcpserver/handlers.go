package mcpserver

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// The handlers. Every store call names claims.Project, never a project the
// model names: an ID of another project is "not found", never data.

type projectOut struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	Description     string    `json:"description,omitempty"`
	RepoURL         string    `json:"repo_url,omitempty"`
	RepoPath        string    `json:"repo_path,omitempty"`
	DefaultBranch   string    `json:"default_branch,omitempty"`
	HasInstructions bool      `json:"has_instructions"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

func runGetProject(ctx context.Context, c *toolCall) (any, error) {
	p, err := c.s.store.GetProject(ctx, c.claims.Project)
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	return struct {
		Project   projectOut `json:"project"`
		SessionID string     `json:"session_id"`
	}{projectOut{
		ID: p.ID, Name: p.Name, Description: p.Description, RepoURL: p.RepoURL, RepoPath: p.RepoPath,
		DefaultBranch: p.DefaultBranch, HasInstructions: p.Instructions != "",
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}, c.claims.Session}, nil
}

func runGetInstructions(ctx context.Context, c *toolCall) (any, error) {
	p, err := c.s.store.GetProject(ctx, c.claims.Project)
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	return struct {
		ProjectID    string `json:"project_id"`
		Instructions string `json:"instructions"`
	}{p.ID, p.Instructions}, nil
}

type taskSummaryOut struct {
	ID        string           `json:"id"`
	Title     string           `json:"title"`
	Status    store.TaskStatus `json:"status"`
	SessionID string           `json:"session_id,omitempty"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

func taskSummary(t store.Task) taskSummaryOut {
	return taskSummaryOut{ID: t.ID, Title: t.Title, Status: t.Status, SessionID: t.SessionID,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

type taskOut struct {
	ID            string           `json:"id"`
	Title         string           `json:"title"`
	Description   string           `json:"description,omitempty"`
	Status        store.TaskStatus `json:"status"`
	Notes         string           `json:"notes,omitempty"`
	OutputSummary string           `json:"output_summary,omitempty"`
	SessionID     string           `json:"session_id,omitempty"`
	CreatedAt     time.Time        `json:"created_at"`
	UpdatedAt     time.Time        `json:"updated_at"`
}

func taskFull(t store.Task) taskOut {
	return taskOut{ID: t.ID, Title: t.Title, Description: t.Description, Status: t.Status, Notes: t.Notes,
		OutputSummary: t.OutputSummary, SessionID: t.SessionID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

type taskResult struct {
	Task taskOut `json:"task"`
}

func runListTasks(ctx context.Context, c *toolCall) (any, error) {
	limit := int(c.integer("limit", store.DefaultListLimit))
	f := store.TaskFilter{Status: store.TaskStatus(c.str("status")), Limit: limit}
	if c.boolean("mine") {
		f.SessionID = c.claims.Session
	}
	// One more than asked tells whether there are more.
	probe := limit < store.MaxListLimit
	if probe {
		f.Limit = limit + 1
	}
	ts, err := c.s.store.ListTasks(ctx, c.claims.Project, f)
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	truncated := probe && len(ts) > limit || !probe && len(ts) >= limit
	if len(ts) > limit {
		ts = ts[:limit]
	}
	out := struct {
		Tasks     []taskSummaryOut `json:"tasks"`
		Count     int              `json:"count"`
		Truncated bool             `json:"truncated"`
	}{Tasks: make([]taskSummaryOut, len(ts)), Count: len(ts), Truncated: truncated}
	for i, t := range ts {
		out.Tasks[i] = taskSummary(t)
	}
	return out, nil
}

func runGetTask(ctx context.Context, c *toolCall) (any, error) {
	id := c.str("id")
	t, err := c.s.store.GetTask(ctx, c.claims.Project, id)
	if err != nil {
		return nil, storeError(err, "task", id)
	}
	return taskResult{taskFull(t)}, nil
}

func runSearchTasks(ctx context.Context, c *toolCall) (any, error) {
	hits, err := c.s.store.SearchTasks(ctx, c.claims.Project, c.str("query"), int(c.integer("limit", store.DefaultSearchLimit)))
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	type hit struct {
		Task    taskSummaryOut `json:"task"`
		Snippet string         `json:"snippet"`
	}
	out := struct {
		Hits []hit `json:"hits"`
	}{make([]hit, len(hits))}
	for i, h := range hits {
		out.Hits[i] = hit{taskSummary(h.Item), h.Snippet}
	}
	return out, nil
}

type knowledgeSummaryOut struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Tags      []string  `json:"tags"`
	SessionID string    `json:"session_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type knowledgeOut struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Tags      []string  `json:"tags"`
	SessionID string    `json:"session_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func nonNil(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

func knowledgeFull(k store.Knowledge) knowledgeOut {
	return knowledgeOut{ID: k.ID, Title: k.Title, Body: k.Body, Tags: nonNil(k.Tags), SessionID: k.SessionID,
		CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
}

type knowledgeResult struct {
	Entry knowledgeOut `json:"entry"`
}

func runSearchKnowledge(ctx context.Context, c *toolCall) (any, error) {
	hits, err := c.s.store.SearchKnowledge(ctx, c.claims.Project, c.str("query"), int(c.integer("limit", store.DefaultSearchLimit)))
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	type hit struct {
		Entry   knowledgeSummaryOut `json:"entry"`
		Snippet string              `json:"snippet"`
	}
	out := struct {
		Hits []hit `json:"hits"`
	}{make([]hit, len(hits))}
	for i, h := range hits {
		k := h.Item
		out.Hits[i] = hit{knowledgeSummaryOut{ID: k.ID, Title: k.Title, Tags: nonNil(k.Tags), SessionID: k.SessionID,
			CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}, h.Snippet}
	}
	return out, nil
}

func runGetKnowledge(ctx context.Context, c *toolCall) (any, error) {
	id := c.str("id")
	k, err := c.s.store.GetKnowledge(ctx, c.claims.Project, id)
	if err != nil {
		return nil, storeError(err, "knowledge entry", id)
	}
	return knowledgeResult{knowledgeFull(k)}, nil
}

func runListSessions(ctx context.Context, c *toolCall) (any, error) {
	ss, err := c.s.store.ListSessions(ctx, c.claims.Project, int(c.integer("limit", store.DefaultListLimit)))
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	type sessionOut struct {
		ID        string    `json:"id"`
		Agent     string    `json:"agent,omitempty"`
		Model     string    `json:"model,omitempty"`
		State     string    `json:"state,omitempty"`
		Title     string    `json:"title,omitempty"`
		Current   bool      `json:"current"`
		CreatedAt time.Time `json:"created_at"`
		UpdatedAt time.Time `json:"updated_at"`
	}
	out := struct {
		Sessions []sessionOut `json:"sessions"`
		Count    int          `json:"count"`
	}{make([]sessionOut, len(ss)), len(ss)}
	for i, s := range ss {
		out.Sessions[i] = sessionOut{ID: s.ID, Agent: s.Agent, Model: s.Model, State: s.State, Title: s.Title,
			Current: s.ID == c.claims.Session, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	}
	return out, nil
}

func runGetSessionMessages(ctx context.Context, c *toolCall) (any, error) {
	sid := c.str("session_id")
	after := c.integer("after_seq", 0)
	limit := int(c.integer("limit", store.DefaultMessageLimit))
	ms, err := c.s.store.SessionMessages(ctx, c.claims.Project, sid, after, limit)
	if err != nil {
		return nil, storeError(err, "session", sid)
	}
	type messageOut struct {
		Seq       int64             `json:"seq"`
		Role      store.MessageRole `json:"role"`
		Content   string            `json:"content"`
		Truncated bool              `json:"truncated,omitempty"`
		CreatedAt time.Time         `json:"created_at"`
	}
	out := struct {
		SessionID    string       `json:"session_id"`
		Messages     []messageOut `json:"messages"`
		NextAfterSeq int64        `json:"next_after_seq"`
		More         bool         `json:"more"`
	}{SessionID: sid, Messages: make([]messageOut, 0, len(ms)), NextAfterSeq: after, More: len(ms) >= limit}
	budget := maxMessagesContent
	for i, m := range ms {
		content, cut := m.Content, false
		if len(content) > budget {
			if i > 0 {
				out.More = true // the rest comes on the next page
				break
			}
			content, cut = truncateUTF8(content, budget), true
		}
		budget -= len(content)
		out.Messages = append(out.Messages, messageOut{m.Seq, m.Role, content, cut, m.CreatedAt})
		out.NextAfterSeq = m.Seq
	}
	return out, nil
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func runSearchMessages(ctx context.Context, c *toolCall) (any, error) {
	hits, err := c.s.store.SearchMessages(ctx, c.claims.Project, c.str("query"), int(c.integer("limit", store.DefaultSearchLimit)))
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	type hit struct {
		SessionID string            `json:"session_id"`
		Seq       int64             `json:"seq"`
		Role      store.MessageRole `json:"role"`
		CreatedAt time.Time         `json:"created_at"`
		Snippet   string            `json:"snippet"`
	}
	out := struct {
		Hits []hit `json:"hits"`
	}{make([]hit, len(hits))}
	for i, h := range hits {
		out.Hits[i] = hit{h.Item.SessionID, h.Item.Seq, h.Item.Role, h.Item.CreatedAt, h.Snippet}
	}
	return out, nil
}

func runUpdateTask(ctx context.Context, c *toolCall) (any, error) {
	id := c.str("id")
	var u store.TaskUpdate
	if c.has("status") {
		st := store.TaskStatus(c.str("status"))
		u.Status = &st
	}
	if c.has("notes") {
		n := c.str("notes")
		u.Notes = &n
	}
	if u.Status == nil && u.Notes == nil {
		return nil, &toolError{OutcomeInvalidArguments, "nothing to update: give status, notes or both"}
	}
	t, err := c.s.store.GetTask(ctx, c.claims.Project, id)
	if err != nil {
		return nil, storeError(err, "task", id)
	}
	if !c.claims.HasScope(tokens.ScopeTasksManage) && (t.SessionID == "" || t.SessionID != c.claims.Session) {
		return nil, forbidden(fmt.Sprintf("task %q is not bound to this session: only the session's own task may be updated", id))
	}
	// The check and the write are two calls; a task rebound to another
	// session in between is updated once more under the old binding. The
	// broker binds tasks before it starts a session, so this window is not
	// reachable by an agent.
	t, err = c.s.store.UpdateTask(ctx, c.claims.Project, id, u)
	if err != nil {
		return nil, storeError(err, "task", id)
	}
	return taskResult{taskFull(t)}, nil
}

func runAddKnowledge(ctx context.Context, c *toolCall) (any, error) {
	k, err := c.s.store.AddKnowledge(ctx, store.Knowledge{
		ProjectID: c.claims.Project,
		Title:     c.str("title"),
		Body:      c.str("body"),
		Tags:      c.strings("tags"),
		SessionID: c.claims.Session,
	})
	if err != nil {
		return nil, storeError(err, "project", "")
	}
	return knowledgeResult{knowledgeFull(k)}, nil
}
