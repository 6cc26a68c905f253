package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/tokens"
)

// Prompts and resources: the same project context as the tools, in the
// shapes clients show people (a prompt is a slash command in Claude Code, a
// resource an @-mention), behind the same scopes.
//
//	what                        needs            URI / name
//	--------------------------  ---------------  ----------------------------------
//	prompt: the instructions    project:read     project_instructions
//	resource: the project       project:read     agentbroker://project
//	resource: a task            tasks:read       agentbroker://tasks/{id}
//	resource: a knowledge entry knowledge:read   agentbroker://knowledge/{id}
//
// resources/list lists what the token's scopes open (the project, then up
// to store.MaxListLimit tasks and as many knowledge entries, newest first);
// resources/templates/list the templates they open; resources/read of a
// resource they do not open is answered 403 insufficient_scope, like a
// tools/call, and so is prompts/get of the prompt. The resources are served
// here, in the front, not by mcp-go (whose resource list is static and
// whose handler errors are all -32603); the prompt by mcp-go. Neither list
// changes are announced nor subscriptions offered: the capabilities say so.

const (
	uriProject         = "agentbroker://project"
	uriTaskPrefix      = "agentbroker://tasks/"
	uriKnowledgePrefix = "agentbroker://knowledge/"
	promptInstructions = "project_instructions"
)

// codeResourceNotFound is the MCP error code for an unknown resource.
const codeResourceNotFound = -32002

// resourceScope is the scope that opens uri, and whether uri is one of
// this server's at all.
func resourceScope(uri string) (tokens.Scope, bool) {
	switch {
	case uri == uriProject:
		return tokens.ScopeProjectRead, true
	case strings.HasPrefix(uri, uriTaskPrefix):
		return tokens.ScopeTasksRead, true
	case strings.HasPrefix(uri, uriKnowledgePrefix):
		return tokens.ScopeKnowledgeRead, true
	}
	return "", false
}

// addPrompts registers the prompts with mcp-go.
func (s *Server) addPrompts() {
	s.mcp.AddPrompt(mcp.NewPrompt(promptInstructions,
		mcp.WithPromptTitle("Project instructions"),
		mcp.WithPromptDescription("The project's instructions for the agents that work on it (what to do, conventions, where things are), "+
			"with the project's name and description."),
	), s.getInstructionsPrompt)
}

func (s *Server) filterPrompts(ctx context.Context, ps []mcp.Prompt) []mcp.Prompt {
	c, ok := tokens.ClaimsFrom(ctx)
	if !ok || !c.HasScope(tokens.ScopeProjectRead) {
		return nil
	}
	return ps
}

func (s *Server) getInstructionsPrompt(ctx context.Context, _ mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	c, ok := tokens.ClaimsFrom(ctx)
	if !ok || !c.HasScope(tokens.ScopeProjectRead) {
		return nil, errors.New("this token lacks scope project:read")
	}
	p, err := s.store.GetProject(ctx, c.Project)
	if err != nil {
		return nil, errors.New("the project cannot be read now")
	}
	var b strings.Builder
	b.WriteString("# Project " + p.Name + "\n\n")
	if p.Description != "" {
		b.WriteString(p.Description + "\n\n")
	}
	if p.Instructions == "" {
		b.WriteString("The project has no instructions.\n")
	} else {
		b.WriteString("## Instructions\n\n" + p.Instructions + "\n")
	}
	return mcp.NewGetPromptResult("Instructions of project "+p.Name,
		[]mcp.PromptMessage{mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent(b.String()))}), nil
}

// resourceOut is a resource as resources/list shows it.
type resourceOut struct {
	URI         string `json:"uri"`
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	MIMEType    string `json:"mimeType"`
}

type templateOut struct {
	URITemplate string `json:"uriTemplate"`
	Name        string `json:"name"`
	Title       string `json:"title"`
	Description string `json:"description"`
	MIMEType    string `json:"mimeType"`
}

type contentsOut struct {
	URI      string `json:"uri"`
	MIMEType string `json:"mimeType"`
	Text     string `json:"text"`
}

// serveResources answers the resource methods for claims c; handled is
// false for any other method.
func (s *Server) serveResources(w http.ResponseWriter, r *http.Request, c tokens.Claims, p peeked) (handled bool) {
	switch p.Method {
	case "resources/list":
		if len(p.Params.Cursor) > 0 && string(p.Params.Cursor) != "null" {
			writeJSONRPCError(w, p.ID, -32602, "Invalid params: unknown cursor (the list is not paginated)")
			return true
		}
		list, err := s.listResources(r.Context(), c)
		if err != nil {
			writeJSONRPCError(w, p.ID, -32603, "the project's resources cannot be listed now")
			return true
		}
		writeJSONRPCResult(w, p.ID, struct {
			Resources []resourceOut `json:"resources"`
		}{list})
	case "resources/templates/list":
		out := []templateOut{}
		if c.HasScope(tokens.ScopeTasksRead) {
			out = append(out, templateOut{uriTaskPrefix + "{id}", "task", "Task",
				"A task of the project by its ID: title, description, status, notes, output summary (JSON).", "application/json"})
		}
		if c.HasScope(tokens.ScopeKnowledgeRead) {
			out = append(out, templateOut{uriKnowledgePrefix + "{id}", "knowledge", "Knowledge entry",
				"An entry of what the project's sessions learnt, by its ID (Markdown).", "text/markdown"})
		}
		writeJSONRPCResult(w, p.ID, struct {
			ResourceTemplates []templateOut `json:"resourceTemplates"`
		}{out})
	case "resources/read":
		uri := p.Params.URI
		if uri == "" {
			writeJSONRPCError(w, p.ID, -32602, "Invalid params: resources/read needs params.uri")
			return true
		}
		need, ours := resourceScope(uri)
		if !ours {
			writeResourceNotFound(w, p.ID, uri)
			return true
		}
		if !c.HasScope(need) {
			s.insufficientScope(w, r, c, need, "resource "+uri, "", p.ID)
			return true
		}
		contents, err := s.readResource(r.Context(), c, uri)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeResourceNotFound(w, p.ID, uri)
		case err != nil:
			writeJSONRPCError(w, p.ID, -32603, "the resource cannot be read now")
		default:
			writeJSONRPCResult(w, p.ID, struct {
				Contents []contentsOut `json:"contents"`
			}{[]contentsOut{contents}})
		}
	default:
		return false
	}
	return true
}

func (s *Server) listResources(ctx context.Context, c tokens.Claims) ([]resourceOut, error) {
	out := []resourceOut{}
	if c.HasScope(tokens.ScopeProjectRead) {
		p, err := s.store.GetProject(ctx, c.Project)
		if err != nil {
			return nil, err
		}
		out = append(out, resourceOut{uriProject, "project", p.Name,
			"The project: name, description, repository, instructions.", "application/json"})
	}
	if c.HasScope(tokens.ScopeTasksRead) {
		ts, err := s.store.ListTasks(ctx, c.Project, store.TaskFilter{Limit: store.MaxListLimit})
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			out = append(out, resourceOut{uriTaskPrefix + t.ID, "task " + t.ID, t.Title,
				"Task, " + string(t.Status), "application/json"})
		}
	}
	if c.HasScope(tokens.ScopeKnowledgeRead) {
		ks, err := s.store.ListKnowledge(ctx, c.Project, store.MaxListLimit)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			out = append(out, resourceOut{uriKnowledgePrefix + k.ID, "knowledge " + k.ID, k.Title,
				"Knowledge entry", "text/markdown"})
		}
	}
	return out, nil
}

// readResource reads one of the token's project's resources (every store
// call names c.Project: an ID of another project is not found).
func (s *Server) readResource(ctx context.Context, c tokens.Claims, uri string) (contentsOut, error) {
	switch {
	case uri == uriProject:
		p, err := s.store.GetProject(ctx, c.Project)
		if err != nil {
			return contentsOut{}, err
		}
		b, err := json.MarshalIndent(struct {
			projectOut
			Instructions string `json:"instructions"`
		}{projectOut{ID: p.ID, Name: p.Name, Description: p.Description, RepoURL: p.RepoURL, RepoPath: p.RepoPath,
			DefaultBranch: p.DefaultBranch, HasInstructions: p.Instructions != "", CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt},
			p.Instructions}, "", "  ")
		return contentsOut{uri, "application/json", string(b)}, err
	case strings.HasPrefix(uri, uriTaskPrefix):
		id := strings.TrimPrefix(uri, uriTaskPrefix)
		if !plainID(id) {
			return contentsOut{}, store.ErrNotFound
		}
		t, err := s.store.GetTask(ctx, c.Project, id)
		if err != nil {
			return contentsOut{}, err
		}
		b, err := json.MarshalIndent(taskFull(t), "", "  ")
		return contentsOut{uri, "application/json", string(b)}, err
	default:
		id := strings.TrimPrefix(uri, uriKnowledgePrefix)
		if !plainID(id) {
			return contentsOut{}, store.ErrNotFound
		}
		k, err := s.store.GetKnowledge(ctx, c.Project, id)
		if err != nil {
			return contentsOut{}, err
		}
		var b strings.Builder
		b.WriteString("# " + k.Title + "\n\n" + k.Body + "\n")
		if len(k.Tags) > 0 {
			b.WriteString("\nTags: " + strings.Join(k.Tags, ", ") + "\n")
		}
		return contentsOut{uri, "text/markdown", b.String()}, nil
	}
}

// plainID reports whether id can be a store ID: non-empty, at most 128
// bytes, no '/', '?' or '#' (a URI with more after the ID names nothing).
func plainID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/?#")
}

func writeResourceNotFound(w http.ResponseWriter, id json.RawMessage, uri string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int               `json:"code"`
			Message string            `json:"message"`
			Data    map[string]string `json:"data"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Data    map[string]string `json:"data"`
	}{codeResourceNotFound, "Resource not found", map[string]string{"uri": uri}}})
}

// writeJSONRPCResult writes a JSON-RPC result response (HTTP 200).
func writeJSONRPCResult(w http.ResponseWriter, id json.RawMessage, result any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result"`
	}{"2.0", id, result})
}

// capabilities are the server options that declare what is served: tools
// and prompts (no list changes), resources (no subscriptions, no list
// changes).
func capabilities() []server.ServerOption {
	return []server.ServerOption{
		server.WithToolCapabilities(false),
		server.WithPromptCapabilities(false),
		server.WithResourceCapabilities(false, false),
	}
}
