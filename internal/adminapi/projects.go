package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// ProjectStore is what the project routes need of the store.
type ProjectStore interface {
	store.Projects
	CreateTask(ctx context.Context, t store.Task) (store.Task, error)
	GetTask(ctx context.Context, projectID, id string) (store.Task, error)
	UpdateTask(ctx context.Context, projectID, id string, u store.TaskUpdate) (store.Task, error)
	ListTasks(ctx context.Context, projectID string, f store.TaskFilter) ([]store.Task, error)
	AddKnowledge(ctx context.Context, k store.Knowledge) (store.Knowledge, error)
	GetKnowledge(ctx context.Context, projectID, id string) (store.Knowledge, error)
	UpdateKnowledge(ctx context.Context, projectID, id string, u store.KnowledgeUpdate) (store.Knowledge, error)
	ListKnowledge(ctx context.Context, projectID string, limit int) ([]store.Knowledge, error)
}

// MountProjects adds the project, task and knowledge routes: create, read,
// update and list, each behind an admin token.
func MountProjects(m Mux, svc *tokens.Service, st ProjectStore) {
	p := &projects{st: st}
	admin := svc.Middleware(tokens.AudienceAdmin, tokens.ScopeAdmin)
	h := func(pattern string, f http.HandlerFunc) { m.Handle(pattern, admin(f)) }
	h("GET /v1/projects", p.list)
	h("POST /v1/projects", p.create)
	h("GET /v1/projects/{project}", p.get)
	h("PATCH /v1/projects/{project}", p.update)
	h("GET /v1/projects/{project}/tasks", p.listTasks)
	h("POST /v1/projects/{project}/tasks", p.createTask)
	h("GET /v1/projects/{project}/tasks/{task}", p.getTask)
	h("PATCH /v1/projects/{project}/tasks/{task}", p.updateTask)
	h("GET /v1/projects/{project}/knowledge", p.listKnowledge)
	h("POST /v1/projects/{project}/knowledge", p.addKnowledge)
	h("GET /v1/projects/{project}/knowledge/{entry}", p.getKnowledge)
	h("PATCH /v1/projects/{project}/knowledge/{entry}", p.updateKnowledge)
}

type projects struct{ st ProjectStore }

// ProjectJSON is a project on the wire.
type ProjectJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Description   string    `json:"description"`
	RepoPath      string    `json:"repo_path,omitempty"`
	RepoURL       string    `json:"repo_url,omitempty"`
	DefaultBranch string    `json:"default_branch,omitempty"`
	Instructions  string    `json:"instructions"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func projectJSON(p store.Project) ProjectJSON { return ProjectJSON(p) }

// ProjectPatch is the body of POST and PATCH /v1/projects…: absent fields
// are left alone (PATCH) or empty (POST).
type ProjectPatch struct {
	Name          *string `json:"name"`
	Description   *string `json:"description"`
	RepoPath      *string `json:"repo_path"`
	RepoURL       *string `json:"repo_url"`
	DefaultBranch *string `json:"default_branch"`
	Instructions  *string `json:"instructions"`
}

// check refuses a repo_path that is not absolute, or names its directory
// through ".." elements: sessions start there when they name no cwd.
func (pp ProjectPatch) check() error {
	if pp.RepoPath == nil || *pp.RepoPath == "" {
		return nil
	}
	p := *pp.RepoPath
	if !filepath.IsAbs(p) {
		return fmt.Errorf("repo_path %q must be an absolute path", cutText(p, 200))
	}
	if slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "..") {
		return fmt.Errorf("repo_path %q has a \"..\" element: give the directory itself", cutText(p, 200))
	}
	return nil
}

func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func (pp ProjectPatch) apply(p *store.Project) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&p.Name, pp.Name)
	set(&p.Description, pp.Description)
	set(&p.RepoPath, pp.RepoPath)
	set(&p.RepoURL, pp.RepoURL)
	set(&p.DefaultBranch, pp.DefaultBranch)
	set(&p.Instructions, pp.Instructions)
}

// TaskJSON is a task on the wire.
type TaskJSON struct {
	ID            string           `json:"id"`
	ProjectID     string           `json:"project_id"`
	Title         string           `json:"title"`
	Description   string           `json:"description"`
	Status        store.TaskStatus `json:"status"`
	Notes         string           `json:"notes"`
	OutputSummary string           `json:"output_summary"`
	SessionID     string           `json:"session_id,omitempty"`
	// BudgetUSD is the task's budget in decimal dollars, absent when none.
	BudgetUSD string    `json:"budget_usd,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func taskJSON(t store.Task) TaskJSON {
	j := TaskJSON{ID: t.ID, ProjectID: t.ProjectID, Title: t.Title, Description: t.Description, Status: t.Status,
		Notes: t.Notes, OutputSummary: t.OutputSummary, SessionID: t.SessionID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	if t.BudgetPicoUSD > 0 {
		j.BudgetUSD = catalog.Amount(t.BudgetPicoUSD).USD()
	}
	return j
}

// TaskPatch is the body of POST and PATCH …/tasks.
type TaskPatch struct {
	Title         *string           `json:"title"`
	Description   *string           `json:"description"`
	Status        *store.TaskStatus `json:"status"`
	Notes         *string           `json:"notes"`
	OutputSummary *string           `json:"output_summary"`
	SessionID     *string           `json:"session_id"`
	// BudgetUSD sets the task's budget in decimal dollars ("5.00"); "0"
	// removes it.
	BudgetUSD *string `json:"budget_usd"`
}

// update is the patch as a store update, or an error for the client.
func (tp TaskPatch) update() (store.TaskUpdate, error) {
	u := store.TaskUpdate{Title: tp.Title, Description: tp.Description, Status: tp.Status, Notes: tp.Notes,
		OutputSummary: tp.OutputSummary, SessionID: tp.SessionID}
	if tp.BudgetUSD != nil {
		b, err := catalog.ParseUSD(*tp.BudgetUSD)
		if err != nil {
			return u, fmt.Errorf("budget_usd: %w: want a decimal dollar amount such as \"5.00\"", store.ErrInvalid)
		}
		n := int64(b)
		u.BudgetPicoUSD = &n
	}
	return u, nil
}

// KnowledgeJSON is a knowledge entry on the wire.
type KnowledgeJSON struct {
	ID        string    `json:"id"`
	ProjectID string    `json:"project_id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Tags      []string  `json:"tags"`
	SessionID string    `json:"session_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func knowledgeJSON(k store.Knowledge) KnowledgeJSON {
	j := KnowledgeJSON(k)
	if j.Tags == nil {
		j.Tags = []string{}
	}
	return j
}

// KnowledgePatch is the body of POST and PATCH …/knowledge.
type KnowledgePatch struct {
	Title *string   `json:"title"`
	Body  *string   `json:"body"`
	Tags  *[]string `json:"tags"`
}

// storeError maps store errors to HTTP: the one place this API does it.
func storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		server.WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrInvalid):
		server.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, store.ErrConflict):
		server.WriteError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, store.ErrNoSpace):
		server.WriteError(w, http.StatusInsufficientStorage, "insufficient_storage",
			"the store's disk is full: nothing was written; free space and retry")
	case errors.Is(err, store.ErrReadOnly):
		server.WriteError(w, http.StatusServiceUnavailable, "store_read_only",
			"the store is read-only: nothing was written; reads still work")
	default:
		server.WriteError(w, http.StatusServiceUnavailable, "store_unavailable", "the store could not answer")
	}
}

// limitParam reads ?limit=, refusing junk; 0 when absent.
func limitParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", "limit must be an integer from 1 to 1000")
		return 0, false
	}
	return n, true
}

func (p *projects) list(w http.ResponseWriter, r *http.Request) {
	ps, err := p.st.ListProjects(r.Context())
	if err != nil {
		storeError(w, err)
		return
	}
	out := make([]ProjectJSON, 0, len(ps))
	for _, x := range ps {
		out = append(out, projectJSON(x))
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"projects": out})
}

func (p *projects) create(w http.ResponseWriter, r *http.Request) {
	var req ProjectPatch
	if !decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	var proj store.Project
	req.apply(&proj)
	proj, err := p.st.CreateProject(r.Context(), proj)
	if err != nil {
		storeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/projects/"+proj.ID)
	server.WriteJSON(w, http.StatusCreated, projectJSON(proj))
}

func (p *projects) get(w http.ResponseWriter, r *http.Request) {
	proj, err := p.st.GetProject(r.Context(), r.PathValue("project"))
	if err != nil {
		storeError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, projectJSON(proj))
}

func (p *projects) update(w http.ResponseWriter, r *http.Request) {
	var req ProjectPatch
	if !decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	proj, err := p.st.GetProject(r.Context(), r.PathValue("project"))
	if err != nil {
		storeError(w, err)
		return
	}
	req.apply(&proj)
	if proj, err = p.st.UpdateProject(r.Context(), proj); err != nil {
		storeError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, projectJSON(proj))
}

func (p *projects) listTasks(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	f := store.TaskFilter{Status: store.TaskStatus(r.URL.Query().Get("status")), Limit: limit}
	if f.Status != "" && !f.Status.Valid() {
		server.WriteError(w, http.StatusBadRequest, "invalid_request", "unknown status "+strconv.Quote(string(f.Status)))
		return
	}
	ts, err := p.st.ListTasks(r.Context(), r.PathValue("project"), f)
	if err != nil {
		storeError(w, err)
		return
	}
	out := make([]TaskJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, taskJSON(t))
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"tasks": out})
}

func (p *projects) createTask(w http.ResponseWriter, r *http.Request) {
	var req TaskPatch
	if !decode(w, r, &req) {
		return
	}
	t := store.Task{ProjectID: r.PathValue("project"), Status: store.TaskDraft}
	if req.Title != nil {
		t.Title = *req.Title
	}
	if req.Description != nil {
		t.Description = *req.Description
	}
	if req.Status != nil {
		t.Status = *req.Status
	}
	if req.Notes != nil {
		t.Notes = *req.Notes
	}
	if req.OutputSummary != nil {
		t.OutputSummary = *req.OutputSummary
	}
	if req.SessionID != nil {
		t.SessionID = *req.SessionID
	}
	u, err := req.update()
	if err != nil {
		storeError(w, err)
		return
	}
	if u.BudgetPicoUSD != nil {
		t.BudgetPicoUSD = *u.BudgetPicoUSD
	}
	t, err = p.st.CreateTask(r.Context(), t)
	if err != nil {
		storeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/projects/"+t.ProjectID+"/tasks/"+t.ID)
	server.WriteJSON(w, http.StatusCreated, taskJSON(t))
}

func (p *projects) getTask(w http.ResponseWriter, r *http.Request) {
	t, err := p.st.GetTask(r.Context(), r.PathValue("project"), r.PathValue("task"))
	if err != nil {
		storeError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, taskJSON(t))
}

func (p *projects) updateTask(w http.ResponseWriter, r *http.Request) {
	var req TaskPatch
	if !decode(w, r, &req) {
		return
	}
	u, err := req.update()
	if err != nil {
		storeError(w, err)
		return
	}
	t, err := p.st.UpdateTask(r.Context(), r.PathValue("project"), r.PathValue("task"), u)
	if err != nil {
		storeError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, taskJSON(t))
}

func (p *projects) listKnowledge(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	ks, err := p.st.ListKnowledge(r.Context(), r.PathValue("project"), limit)
	if err != nil {
		storeError(w, err)
		return
	}
	out := make([]KnowledgeJSON, 0, len(ks))
	for _, k := range ks {
		out = append(out, knowledgeJSON(k))
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"knowledge": out})
}

func (p *projects) addKnowledge(w http.ResponseWriter, r *http.Request) {
	var req KnowledgePatch
	if !decode(w, r, &req) {
		return
	}
	k := store.Knowledge{ProjectID: r.PathValue("project")}
	if req.Title != nil {
		k.Title = *req.Title
	}
	if req.Body != nil {
		k.Body = *req.Body
	}
	if req.Tags != nil {
		k.Tags = *req.Tags
	}
	k, err := p.st.AddKnowledge(r.Context(), k)
	if err != nil {
		storeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/projects/"+k.ProjectID+"/knowledge/"+k.ID)
	server.WriteJSON(w, http.StatusCreated, knowledgeJSON(k))
}

func (p *projects) getKnowledge(w http.ResponseWriter, r *http.Request) {
	k, err := p.st.GetKnowledge(r.Context(), r.PathValue("project"), r.PathValue("entry"))
	if err != nil {
		storeError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, knowledgeJSON(k))
}

func (p *projects) updateKnowledge(w http.ResponseWriter, r *http.Request) {
	var req KnowledgePatch
	if !decode(w, r, &req) {
		return
	}
	k, err := p.st.UpdateKnowledge(r.Context(), r.PathValue("project"), r.PathValue("entry"), store.KnowledgeUpdate(req))
	if err != nil {
		storeError(w, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, knowledgeJSON(k))
}
