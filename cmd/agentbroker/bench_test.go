package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleSessionRSS starts a broker, then 50 sessions with the
// reference agent (each a real process, with its handshake and MCP
// connection), lets them go idle, and reports how much the broker's
// resident memory grew per session. The agents' own memory is theirs
// (separate processes) and not counted.
func BenchmarkIdleSessionRSS(b *testing.B) {
	const n = 50
	for range b.N {
		dataDir := filepath.Join(b.TempDir(), "data")
		br := startBroker(b, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
		admin := adminToken(b, dataDir)
		var p struct{ ID string }
		_, body := br.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"bench"}`))
		json.Unmarshal([]byte(body), &p)
		time.Sleep(500 * time.Millisecond)
		before := rss(b, br.cmd.Process.Pid)
		cwd := b.TempDir()
		start := time.Now()
		for i := range n {
			resp, body := br.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
				`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q,"title":"s%d"}`, p.ID, cwd, i)))
			if resp.StatusCode != 201 {
				b.Fatalf("session %d: %d %s", i, resp.StatusCode, body)
			}
		}
		elapsed := time.Since(start)
		time.Sleep(2 * time.Second) // idle
		after := rss(b, br.cmd.Process.Pid)
		b.ReportMetric(float64(after-before)/n/1024, "KiB-RSS/idle-session")
		b.ReportMetric(n/elapsed.Seconds(), "sessions-started/s")
	}
}

// rss reads a process's resident set size in bytes.
func rss(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
