// Command mcpfixture serves agentbroker's MCP server on loopback over a
// throwaway, seeded database, for the interop tests in interop/mcp. It is a
// test program: never deploy it.
//
// It creates a temporary data directory with a SQLite store and a token
// service, seeds two projects (A and B) with instructions, tasks, knowledge
// and a session transcript, mounts mcpserver at /mcp on 127.0.0.1:0, mints
// the tokens the tests need, and prints ONE JSON line on stdout:
//
//	{"url": "http://127.0.0.1:PORT/mcp", "insecure_url": "…", "tokens": {…},
//	 "project_id": …, "other_project_id": …, "task_id": …, "marker": …,
//	 "other_project_task_id": …, "other_marker": …}
//
// Tokens: a_full (project A, every MCP scope), a_read (project A, tasks:read
// only), b_full (project B, every MCP scope), a_proxy (project A, minted for
// the inference proxy audience: the MCP server must refuse it), a_expired and
// a_revoked (project A, every MCP scope, expired and revoked). Tokens travel
// only on that stdout line, never in arguments or files.
//
// With --insecure-fixed-identity it also serves a second instance
// (insecure_url) whose unauthenticated requests act as project A's full
// identity: the MCP conformance suite cannot send a bearer token.
//
// It runs until its stdin closes or it gets SIGTERM or SIGINT, then removes
// its data directory. Logs go to stderr.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/agentbroker/agentbroker/mcpserver"
	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// config is what the flags say.
type config struct {
	insecureFixedIdentity bool
	verbose               bool
}

func main() {
	var cfg config
	flag.BoolVar(&cfg.insecureFixedIdentity, "insecure-fixed-identity", false,
		"also serve an instance whose unauthenticated requests are project A's full identity (conformance suite only)")
	flag.BoolVar(&cfg.verbose, "v", false, "debug logs on stderr")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdin, os.Stdout, os.Stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "mcpfixture:", err)
		os.Exit(1)
	}
}

// description is the JSON line printed on stdout.
type description struct {
	URL                string            `json:"url"`
	InsecureURL        string            `json:"insecure_url,omitempty"`
	Tokens             map[string]string `json:"tokens"`
	ProjectID          string            `json:"project_id"`
	OtherProjectID     string            `json:"other_project_id"`
	TaskID             string            `json:"task_id"`
	Marker             string            `json:"marker"`
	OtherProjectTaskID string            `json:"other_project_task_id"`
	OtherMarker        string            `json:"other_marker"`
	SessionID          string            `json:"session_id"`
}

const subject = "interop@agentbroker.test"

func run(ctx context.Context, cfg config, stdin io.Reader, stdout, stderr io.Writer) error {
	level := slog.LevelInfo
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	dir, err := os.MkdirTemp("", "mcpfixture-")
	if err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	defer os.RemoveAll(dir)

	db, err := sqlite.Open(ctx, sqlite.Options{Dir: dir, Logger: log})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		return fmt.Errorf("open tokens: %w", err)
	}

	seeded, err := seed(ctx, db)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	desc := description{
		ProjectID:          seeded.a.project,
		OtherProjectID:     seeded.b.project,
		TaskID:             seeded.a.task,
		Marker:             seeded.a.marker,
		OtherProjectTaskID: seeded.b.task,
		OtherMarker:        seeded.b.marker,
		SessionID:          seeded.a.session,
	}
	if desc.Tokens, err = mint(ctx, svc, db, seeded); err != nil {
		return fmt.Errorf("mint tokens: %w", err)
	}

	signalled := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		servers []*http.Server
		serving sync.WaitGroup
	)
	defer func() {
		shutdown, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		for _, hs := range servers {
			hs.Shutdown(shutdown)
		}
		serving.Wait()
	}()
	// serve listens on a fresh loopback port and serves an MCP server there;
	// fixed, when non-nil, is the identity of unauthenticated requests.
	serve := func(fixed *tokens.Claims) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("listen: %w", err)
		}
		url := "http://" + ln.Addr().String() + "/mcp"
		o := &mcpserver.Options{
			Store:       db,
			Tokens:      svc,
			ResourceURL: url,
			Logger:      log,
			Version:     "mcpfixture",
		}
		if fixed != nil {
			o.InsecureFixedIdentity = fixed
			// The conformance suite fires its scenarios back to back as one
			// identity: no rate limit on this instance.
			o.RateLimit = mcpserver.RateLimit{PerSecond: -1}
		}
		srv, err := mcpserver.New(o)
		if err != nil {
			ln.Close()
			return "", fmt.Errorf("new mcp server: %w", err)
		}
		mux := http.NewServeMux()
		srv.Mount(mux)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		hs.RegisterOnShutdown(func() { srv.Close() })
		servers = append(servers, hs)
		serving.Go(func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cancel(fmt.Errorf("serve %s: %w", ln.Addr(), err))
			}
		})
		return url, nil
	}

	if desc.URL, err = serve(nil); err != nil {
		return err
	}
	if cfg.insecureFixedIdentity {
		// Project A's full identity: the claims of a token like a_full.
		_, who, err := svc.Mint(ctx, tokens.Grant{
			Subject: subject, Project: seeded.a.project, Session: seeded.a.session, Agent: "conformance",
			Audience: tokens.AudienceMCP, Scopes: tokens.AudienceMCP.AllowedScopes().List(), Lifetime: 24 * time.Hour,
		})
		if err != nil {
			return fmt.Errorf("mint the fixed identity: %w", err)
		}
		if desc.InsecureURL, err = serve(&who); err != nil {
			return err
		}
	}

	line, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return fmt.Errorf("print description: %w", err)
	}
	log.Info("serving", "url", desc.URL, "insecure_url", desc.InsecureURL)

	// Until stdin closes (the test is done), a signal, or a server fails.
	// The reader goroutine is left blocked when a signal ends the process.
	go func() {
		io.Copy(io.Discard, stdin)
		cancel(errStdinClosed)
	}()
	<-ctx.Done()
	cause := context.Cause(ctx)
	log.Info("stopping", "cause", cause)
	if errors.Is(cause, errStdinClosed) || signalled.Err() != nil {
		return nil
	}
	return cause
}

// errStdinClosed is the normal end: the test closed the fixture's stdin.
var errStdinClosed = errors.New("stdin closed")

// seededProject is what seed made in one project.
type seededProject struct {
	project, task, marker, session string
}

type seededData struct{ a, b seededProject }

func seed(ctx context.Context, db *sqlite.DB) (seededData, error) {
	var out seededData
	for i, p := range []struct {
		name  string
		into  *seededProject
		rules string
	}{
		{"Interop project A", &out.a, "Run `go test ./...` before you finish. Never push to main."},
		{"Interop project B", &out.b, "Project B's rules: another project, never visible to A's tokens."},
	} {
		proj, err := db.CreateProject(ctx, store.Project{
			Name:          p.name,
			Description:   "A project seeded by internal/mcpfixture for the MCP interop tests.",
			DefaultBranch: "main",
			Instructions:  p.rules,
		})
		if err != nil {
			return out, fmt.Errorf("create project: %w", err)
		}
		marker := fmt.Sprintf("interop-marker-%c-%s", 'a'+i, randomHex(8))
		task, err := db.CreateTask(ctx, store.Task{
			ProjectID:   proj.ID,
			Title:       "Wire the MCP server",
			Description: "Expose the project context over MCP. Unique value: " + marker,
			Status:      store.TaskInProgress,
		})
		if err != nil {
			return out, fmt.Errorf("create task: %w", err)
		}
		if _, err := db.CreateTask(ctx, store.Task{
			ProjectID:   proj.ID,
			Title:       "Write the README",
			Description: "Document how to run the broker.",
			Status:      store.TaskQueued,
		}); err != nil {
			return out, fmt.Errorf("create task: %w", err)
		}
		if _, err := db.AddKnowledge(ctx, store.Knowledge{
			ProjectID: proj.ID,
			Title:     "How tests run",
			Body:      "CI runs .ci/run on a clean clone; the interop tests need the npm registry.",
			Tags:      []string{"ci", "tests"},
		}); err != nil {
			return out, fmt.Errorf("add knowledge: %w", err)
		}
		session := fmt.Sprintf("interop-session-%c-%s", 'a'+i, randomHex(4))
		now := time.Now()
		if err := db.PutSession(ctx, store.SessionRecord{
			ID: session, ProjectID: proj.ID, Agent: "interop", Model: "none",
			State: "running", Title: "Interop session", CreatedAt: now, UpdatedAt: now,
		}); err != nil {
			return out, fmt.Errorf("put session: %w", err)
		}
		if _, err := db.AppendMessages(ctx, []store.Message{
			{SessionID: session, ProjectID: proj.ID, Role: store.RoleUser, Content: "Please wire the MCP server.", CreatedAt: now},
			{SessionID: session, ProjectID: proj.ID, Role: store.RoleAssistant, Content: "Working on it.", CreatedAt: now},
		}); err != nil {
			return out, fmt.Errorf("append messages: %w", err)
		}
		// The marker task is bound to the session the tokens carry, so that
		// update_task with tasks:write may change it.
		st := store.TaskInProgress
		if _, err := db.UpdateTask(ctx, proj.ID, task.ID, store.TaskUpdate{SessionID: &session, Status: &st}); err != nil {
			return out, fmt.Errorf("bind task: %w", err)
		}
		*p.into = seededProject{project: proj.ID, task: task.ID, marker: marker, session: session}
	}
	return out, nil
}

// mint makes the tokens of the description.
func mint(ctx context.Context, svc *tokens.Service, db *sqlite.DB, s seededData) (map[string]string, error) {
	grant := func(p seededProject, aud tokens.Audience, scopes ...tokens.Scope) tokens.Grant {
		return tokens.Grant{
			Subject: subject, Project: p.project, Session: p.session, Agent: "interop",
			Audience: aud, Scopes: scopes, Lifetime: time.Hour,
		}
	}
	mcpScopes := tokens.AudienceMCP.AllowedScopes().List() // every scope an MCP token may carry
	out := map[string]string{}
	for name, g := range map[string]tokens.Grant{
		"a_full":    grant(s.a, tokens.AudienceMCP, mcpScopes...),
		"a_read":    grant(s.a, tokens.AudienceMCP, tokens.ScopeTasksRead),
		"b_full":    grant(s.b, tokens.AudienceMCP, mcpScopes...),
		"a_proxy":   grant(s.a, tokens.AudienceProxy, tokens.ScopeInference),
		"a_revoked": grant(s.a, tokens.AudienceMCP, mcpScopes...),
	} {
		raw, claims, err := svc.Mint(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if name == "a_revoked" {
			if err := svc.Revoke(ctx, claims.ID, claims.ExpiresAt); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		out[name] = raw
	}

	// An expired token: minted by a service whose clock is two hours behind,
	// on the same key ring, for one hour.
	past := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	old, err := tokens.New(ctx, db, db, &tokens.Options{Now: past})
	if err != nil {
		return nil, fmt.Errorf("a_expired: %w", err)
	}
	raw, _, err := old.Mint(ctx, grant(s.a, tokens.AudienceMCP, mcpScopes...))
	if err != nil {
		return nil, fmt.Errorf("a_expired: %w", err)
	}
	out["a_expired"] = raw
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
