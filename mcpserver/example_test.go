package mcpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/agentbroker/agentbroker/mcpserver"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// A broker's MCP endpoint: the store, the token service, the server mounted
// on a mux. An agent's token opens only the tools its scopes allow.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mcpserver-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		log.Fatal(err)
	}
	project, err := db.CreateProject(ctx, store.Project{Name: "demo", Instructions: "Run the tests."})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	srv, err := mcpserver.New(&mcpserver.Options{Store: db, Tokens: svc, ResourceURL: ts.URL + "/mcp"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Mount(mux)

	token, _, err := svc.Mint(ctx, tokens.Grant{Subject: "alice", Project: project.ID, Session: "sess-1",
		Audience: tokens.AudienceMCP, Scopes: []tokens.Scope{tokens.ScopeProjectRead, tokens.ScopeTasksRead}})
	if err != nil {
		log.Fatal(err)
	}
	post := func(token, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}

	resp := post("", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata="))

	resp = post(token, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	var list struct {
		Result struct {
			Tools []struct{ Name string } `json:"tools"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	for _, t := range list.Result.Tools {
		fmt.Println(t.Name)
	}
	// Output:
	// 401 true
	// get_instructions
	// get_project
	// get_task
	// list_tasks
	// search_tasks
}
