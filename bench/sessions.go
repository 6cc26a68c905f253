package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentbroker/agentbroker/acp"
)

// sessionsResult is one row of the sessions table.
type sessionsResult struct {
	n                            int
	started                      float64 // sessions started per second, through the broker
	direct                       float64 // the same agents spawned and handshaken by a bare ACP client
	idlePerSession               float64 // broker RSS growth per idle session, bytes
	brokerRSS                    int64   // broker RSS with n idle sessions
	agentPSS                     int64   // one agent process's PSS (not the broker's)
	mcpPerSec                    float64 // turns (one MCP tool call each) per second
	turnP50, turnP99             time.Duration
	directTurnP50, directTurnP99 time.Duration
	live                         int // sessions live after the turns
	failed                       int
}

// benchSessions starts a broker, n sessions with the reference agent, lets
// them idle, then prompts each once with a get_task call through the
// broker's MCP server and checks the reply carries the task's value. The
// baseline is the same agent spawned and driven by our bare ACP client over
// a raw pipe, with the same MCP server entry (n of them, closed before the
// broker's sessions start).
func benchSessions(ctx context.Context, bin binaries, root string, n int) (sessionsResult, error) {
	res := sessionsResult{n: n}
	dataDir := filepath.Join(root, fmt.Sprintf("sessions-%d", n))
	b, err := startBroker(ctx, bin, dataDir)
	if err != nil {
		return res, err
	}
	defer b.stop()

	var proj struct{ ID string }
	if err := b.call(ctx, "POST", "/v1/projects", map[string]any{"name": "bench"}, &proj); err != nil {
		return res, err
	}
	const secret = "BENCH-VALUE-7f3a"
	var task struct{ ID string }
	if err := b.call(ctx, "POST", "/v1/projects/"+proj.ID+"/tasks",
		map[string]any{"title": "bench task", "description": "the value is " + secret}, &task); err != nil {
		return res, err
	}
	prompt := fmt.Sprintf(`call get_task with {"id":%q}`, task.ID)
	cwd := filepath.Join(root, "cwd")
	agentCwd(cwd)

	// Baseline: spawn + handshake + one turn, no broker in between.
	m := n
	directTurns := &latencies{}
	start := time.Now()
	conns, err := parallel(ctx, m, 8, func(i int) (*directAgent, error) {
		tok, err := b.mint(ctx, "mcp", proj.ID, fmt.Sprintf("direct-%d", i), "project:read", "tasks:read")
		if err != nil {
			return nil, err
		}
		return spawnDirect(ctx, bin, cwd, b.url+"/mcp", tok)
	})
	if err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	res.direct = float64(m) / time.Since(start).Seconds()
	if len(conns) > 0 {
		res.agentPSS, _ = pss(conns[0].cmd.Process.Pid)
	}
	_, err = parallel(ctx, m, 32, func(i int) (struct{}, error) {
		t0 := time.Now()
		reply, err := conns[i].prompt(ctx, prompt)
		directTurns.add(time.Since(t0))
		if err == nil && !strings.Contains(reply, secret) {
			err = fmt.Errorf("direct reply without the task's value: %q", reply)
		}
		return struct{}{}, err
	})
	for _, c := range conns {
		c.close()
	}
	if err != nil {
		return res, fmt.Errorf("baseline turn: %w", err)
	}
	res.directTurnP50, res.directTurnP99 = directTurns.q(0.5), directTurns.q(0.99)

	// Through the broker.
	time.Sleep(time.Second)
	before, err := rss(b.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	start = time.Now()
	ids, err := parallel(ctx, n, 8, func(i int) (string, error) {
		var out struct{ Session struct{ ID string } }
		err := b.call(ctx, "POST", "/v1/sessions", map[string]any{
			"project": proj.ID, "agent": "custom", "credential": map[string]string{"kind": "none"},
			"cwd": cwd, "title": fmt.Sprintf("bench %d", i), "permission_policy": "allow-all",
		}, &out)
		return out.Session.ID, err
	})
	if err != nil {
		return res, fmt.Errorf("start sessions: %w", err)
	}
	res.started = float64(n) / time.Since(start).Seconds()
	time.Sleep(3 * time.Second) // idle
	after, err := rss(b.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	res.brokerRSS = after
	res.idlePerSession = float64(after-before) / float64(n)

	turns := &latencies{}
	var failed atomic.Int64
	start = time.Now()
	_, err = parallel(ctx, n, 32, func(i int) (struct{}, error) {
		var out struct{ Reply, Error string }
		t0 := time.Now()
		err := b.call(ctx, "POST", "/v1/sessions/"+ids[i]+"/prompt?wait=true", map[string]any{"text": prompt}, &out)
		turns.add(time.Since(t0))
		if err == nil && !strings.Contains(out.Reply, secret) {
			failed.Add(1)
			err = fmt.Errorf("session %s: reply without the task's value: %q %s", ids[i], out.Reply, out.Error)
		}
		return struct{}{}, err
	})
	if err != nil {
		return res, err
	}
	res.mcpPerSec = float64(n) / time.Since(start).Seconds()
	res.turnP50, res.turnP99 = turns.q(0.5), turns.q(0.99)
	res.failed = int(failed.Load())

	var list struct {
		Sessions []struct {
			Live  bool
			State string
		}
	}
	if err := b.call(ctx, "GET", "/v1/sessions", nil, &list); err != nil {
		return res, err
	}
	for _, s := range list.Sessions {
		if s.Live {
			res.live++
		}
	}
	return res, nil
}

// parallel runs f(0…n-1) with at most width at once, and returns the
// results in order, or the first error.
func parallel[T any](ctx context.Context, n, width int, f func(i int) (T, error)) ([]T, error) {
	out := make([]T, n)
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(width, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				v, err := f(i)
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				out[i] = v
			}
		})
	}
	wg.Wait()
	return out, firstErr
}

// directAgent is a reference agent on a raw pipe, driven by our ACP client
// with no broker in between.
type directAgent struct {
	cmd     *exec.Cmd
	conn    *acp.Conn
	session string
	mu      sync.Mutex
	reply   strings.Builder
}

func spawnDirect(ctx context.Context, bin binaries, cwd, mcpURL, token string) (*directAgent, error) {
	cmd := exec.Command(bin.broker, "refagent")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cwd}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &directAgent{cmd: cmd}
	d.conn = acp.NewConn(context.WithoutCancel(ctx), stdout, stdin, &acp.ConnOptions{
		Permissions: acp.PolicyAllowAll,
		OnUpdate: func(u acp.Update) {
			if u.Update.Kind == acp.UpdateAgentMessageChunk {
				d.mu.Lock()
				d.reply.WriteString(u.Update.Text())
				d.mu.Unlock()
			}
		},
	})
	sess, err := d.conn.Handshake(ctx, acp.HandshakeOptions{Cwd: cwd,
		MCP: &acp.MCPConfig{Name: "agentbroker", URL: mcpURL, Token: token, BridgeCommand: bin.broker}})
	if err != nil {
		d.close()
		return nil, err
	}
	d.session = sess.ID
	return d, nil
}

func (d *directAgent) prompt(ctx context.Context, text string) (string, error) {
	d.mu.Lock()
	d.reply.Reset()
	d.mu.Unlock()
	if _, err := d.conn.Prompt(ctx, d.session, []acp.ContentBlock{acp.TextBlock(text)}); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reply.String(), nil
}

func (d *directAgent) close() {
	d.conn.Close()
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	d.cmd.Wait()
}
