package mcpserver

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/internal/goroutines"
)

func settle(t *testing.T, what string, fns ...string) {
	t.Helper()
	goroutines.Settle(t, what+": serving clients that left", fns...)
}

// TestDisconnectMidStream: MCP clients that leave in the middle of a GET
// stream or of a tools/call's streamed answer free what they held: the
// goroutines serving them end, and a token's stream slots come back (it
// can open its maximum again, round after round). Not parallel: it counts
// goroutines (goleak then checks the package at the end).
func TestDisconnectMidStream(t *testing.T) {
	w := newWorld(t, func(o *Options) { o.RateLimit.PerSecond = -1 })
	addProgressTool(t, w.srv)
	tok := w.tokenA(readScopes...)

	for round := range 3 {
		var stops []func()
		for range maxStreamsPerToken {
			_, stop := openGET(t, w, tok) // fails the test unless 200
			stops = append(stops, stop)
		}
		for _, stop := range stops {
			stop()
		}
		settle(t, fmt.Sprintf("round %d of GET streams", round), "mcpserver.(*Server).serveStream")
	}

	for i := range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_progress","arguments":{},"_meta":{"progressToken":"p%d"}}}`, i+1, i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := w.http.Client().Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		saw := false
		for !saw && sc.Scan() {
			saw = strings.HasPrefix(sc.Text(), "data:")
		}
		if !saw || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			cancel()
			t.Fatalf("tools/call with progress: %d %s, no SSE event", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		cancel() // gone after the first progress event
		resp.Body.Close()
	}
	settle(t, "tools/call streams", "mcpserver.(*Server).servePost", "mcpserver.(*Server).serveAuthenticated")

	// The server still serves.
	c := w.client(tok)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	//lint:ignore SA1019 the client speaks the legacy protocol (initRequest), where ping is sent
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the disconnects: %v", err)
	}
}
