package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binaries are the programs under test, built once per run.
type binaries struct {
	broker string // agentbroker (its refagent subcommand is the agent)
}

func build(ctx context.Context, dir string) (binaries, error) {
	b := binaries{broker: filepath.Join(dir, "agentbroker")}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.broker, "./cmd/agentbroker")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return b, fmt.Errorf("go build ./cmd/agentbroker (run from the repository's root): %w", err)
	}
	return b, nil
}

// broker is an `agentbroker serve` process on a data directory of its own.
type broker struct {
	cmd   *exec.Cmd
	url   string
	admin string
	hc    *http.Client
	done  chan struct{}
}

// startBroker runs serve with the reference agent as the custom profile
// (the binary's own refagent subcommand), plus env.
func startBroker(ctx context.Context, bin binaries, dataDir string, env ...string) (*broker, error) {
	cmd := exec.Command(bin.broker, "serve")
	cmd.Env = append([]string{
		"HOME=" + dataDir,
		"PATH=" + os.Getenv("PATH"),
		"AGENTBROKER_LISTEN=127.0.0.1:0",
		"AGENTBROKER_DATA_DIR=" + dataDir,
		"AGENTBROKER_LOG_FORMAT=json",
		"AGENTBROKER_CUSTOM_AGENT=" + bin.broker + " refagent",
	}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &broker{cmd: cmd, done: make(chan struct{}),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512}}}
	addr := make(chan string, 1)
	go func() {
		defer close(b.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr, Level string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
				continue
			}
			if rec.Level == "ERROR" {
				fmt.Fprintf(os.Stderr, "broker: %s\n", sc.Bytes())
			}
		}
		cmd.Wait()
	}()
	select {
	case a := <-addr:
		b.url = "http://" + a
	case <-b.done:
		return nil, fmt.Errorf("serve exited before listening")
	case <-time.After(30 * time.Second):
		b.stop()
		return nil, fmt.Errorf("serve did not listen within 30s")
	case <-ctx.Done():
		b.stop()
		return nil, ctx.Err()
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		b.stop()
		return nil, err
	}
	b.admin = strings.TrimSpace(string(tok))
	return b, nil
}

// stop ends serve with SIGTERM (it stops its sessions and their agents),
// then the whole process group.
func (b *broker) stop() {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(60 * time.Second):
	}
	syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
}

// call sends a JSON request with the admin token and decodes a 2xx answer
// into out.
func (b *broker) call(ctx context.Context, method, path string, in, out any) error {
	return b.callAs(ctx, b.admin, method, path, in, out)
}

func (b *broker) callAs(ctx context.Context, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// mint asks the broker for a token (POST /v1/tokens).
func (b *broker) mint(ctx context.Context, purpose, project, session string, scopes ...string) (string, error) {
	var out struct{ Token string }
	err := b.call(ctx, "POST", "/v1/tokens", map[string]any{
		"subject": "bench", "purpose": purpose, "project": project, "session": session, "scopes": scopes,
	}, &out)
	return out.Token, err
}

// rss is a process's resident set size in bytes (Linux).
func rss(pid int) (int64, error) { return procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// pss is a process's proportional set size: its private pages plus its
// share of pages mapped by others (the binary's text, shared by every agent).
func pss(pid int) (int64, error) { return procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:") }

func procField(path, field string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

// agentCwd makes a working directory the agents can write whichever user
// they run as.
func agentCwd(dir string) {
	_ = os.MkdirAll(dir, 0o777)
	_ = os.Chmod(dir, 0o777)
}
