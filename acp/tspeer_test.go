package acp_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/acp"
)

// TestTSPeer drives an independent peer: an agent written with the ACP
// TypeScript SDK (@agentclientprotocol/sdk, internal/refagent/tspeer).
// It needs ACP_TS_PEER=1, node, and `npm install` in that directory.
func TestTSPeer(t *testing.T) {
	t.Parallel()
	if os.Getenv("ACP_TS_PEER") != "1" {
		t.Skip("ACP TypeScript SDK peer not requested: set ACP_TS_PEER=1 (after `npm install` in internal/refagent/tspeer)")
	}
	dir, err := filepath.Abs("../internal/refagent/tspeer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@agentclientprotocol", "sdk", "package.json")); err != nil {
		t.Skip("ACP TypeScript SDK not installed: run `npm install` in internal/refagent/tspeer")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found")
	}
	start := func(t *testing.T, opts *acp.ConnOptions) (*acp.Conn, *acp.Session, *collector, string) {
		cmd := exec.Command(node, "agent.mjs")
		cmd.Dir = dir
		p := startCmd(t, cmd)
		col := &collector{}
		opts.OnUpdate = col.OnUpdate
		work := t.TempDir()
		opts.WorkDir = work
		c := connect(t, p, opts)
		sess, err := c.Handshake(ctxT(t, 20*time.Second), acp.HandshakeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sess.Init.AgentInfo == nil || sess.Init.AgentInfo.Name != "ts-example-agent" {
			t.Fatalf("agent info %+v", sess.Init.AgentInfo)
		}
		return c, sess, col, work
	}
	prompt := []acp.ContentBlock{acp.TextBlock("change the config")}

	t.Run("allow", func(t *testing.T) {
		var dec decisions
		c, sess, col, _ := start(t, &acp.ConnOptions{Permissions: acp.PolicyAllowAll, OnPermission: dec.add})
		stop, err := c.Prompt(ctxT(t, 20*time.Second), sess.ID, prompt)
		if err != nil || stop != acp.StopEndTurn {
			t.Fatalf("Prompt = %q, %v", stop, err)
		}
		if got := strings.Join(col.kinds(), ","); got != "agent_message_chunk,tool_call,tool_call_update,agent_message_chunk" {
			t.Fatalf("updates %s", got)
		}
		if d := dec.list(); len(d) != 1 || d[0].Outcome.OptionID != "allow" || d[0].Kind != acp.AllowOnce {
			t.Fatalf("decisions %+v", d)
		}
		if !strings.Contains(col.text(acp.UpdateAgentMessageChunk), "Done") {
			t.Fatalf("reply %q", col.text(acp.UpdateAgentMessageChunk))
		}
	})
	t.Run("nobody to ask rejects", func(t *testing.T) {
		c, sess, col, _ := start(t, &acp.ConnOptions{})
		if _, err := c.Prompt(ctxT(t, 20*time.Second), sess.ID, prompt); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(col.text(acp.UpdateAgentMessageChunk), "Skipped") {
			t.Fatalf("reply %q", col.text(acp.UpdateAgentMessageChunk))
		}
	})
	t.Run("cancel", func(t *testing.T) {
		asked := make(chan struct{}, 1)
		c, sess, _, _ := start(t, &acp.ConnOptions{Asker: acp.AskerFunc(func(ctx context.Context, _ acp.PermissionRequest) (string, error) {
			asked <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		})})
		go func() { <-asked; c.Cancel(context.Background(), sess.ID) }()
		stop, err := c.Prompt(ctxT(t, 20*time.Second), sess.ID, prompt)
		if err != nil || stop != acp.StopCancelled {
			t.Fatalf("Prompt = %q, %v", stop, err)
		}
	})
	t.Run("fs", func(t *testing.T) {
		c, sess, col, cwd := start(t, &acp.ConnOptions{})
		if err := os.WriteFile(filepath.Join(cwd, "notes.txt"), []byte("from Go"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Prompt(ctxT(t, 20*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("read " + filepath.Join(cwd, "notes.txt"))}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Prompt(ctxT(t, 20*time.Second), sess.ID, []acp.ContentBlock{acp.TextBlock("read /etc/hostname")}); err != nil {
			t.Fatal(err)
		}
		got := col.text(acp.UpdateAgentMessageChunk)
		if !strings.Contains(got, "read: from Go") || !strings.Contains(got, "read failed") {
			t.Fatalf("replies %q", got)
		}
	})
}
