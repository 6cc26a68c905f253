package sessions

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentbroker/agentbroker/acp"
	"github.com/agentbroker/agentbroker/tokens"
)

// updateLine is one agent_message_chunk notification as an agent writes it.
func updateLine(i int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"chunk %06d of the agent's streamed answer, about a line of prose"}}}}`+"\n", i)
}

// BenchmarkEventsToViewers measures events from an agent's stdout (ACP
// line filter and decoder, the event log's group commit to SQLite, the
// WebSocket fan-out) to 1, 10 and 100 viewers, each of which must receive
// every event (the Manager's path: Log.AppendAsync), against the baseline of copying the same bytes through an
// OS pipe in the same run. b.N is the number of events.
func BenchmarkEventsToViewers(b *testing.B) {
	for _, viewers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			n := max(b.N, 100)
			lines := make([]string, n)
			size := 0
			for i := range lines {
				lines[i] = updateLine(i)
				size += len(lines[i])
			}

			// Baseline: the same bytes through an OS pipe.
			pr, pw, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			go func() {
				for _, l := range lines {
					io.WriteString(pw, l)
				}
				pw.Close()
			}()
			io.Copy(io.Discard, pr)
			pr.Close()
			pipe := time.Since(t0)

			f := newBenchFixture(b)
			conns := make([]*websocket.Conn, viewers)
			for i := range conns {
				conns[i] = f.dial(b)
			}
			var wg sync.WaitGroup
			b.ResetTimer()
			t1 := time.Now()
			for _, c := range conns {
				wg.Go(func() {
					defer c.Close()
					for got := 0; got < n; {
						c.SetReadDeadline(time.Now().Add(60 * time.Second))
						if _, _, err := c.ReadMessage(); err != nil {
							b.Error(err)
							return
						}
						got++
					}
				})
			}
			agentR, agentW := io.Pipe()
			ctx := context.Background()
			conn := acp.NewConn(ctx, agentR, io.Discard, &acp.ConnOptions{
				OnUpdate: func(u acp.Update) { // as the Manager records updates
					if err := f.log.AppendAsync(ctx, "update", u.Update, func(err error) { b.Error(err) }); err != nil {
						b.Error(err)
					}
				},
			})
			go func() {
				for _, l := range lines {
					io.WriteString(agentW, l)
				}
			}()
			wg.Wait()
			elapsed := time.Since(t1)
			b.StopTimer()
			agentW.Close()
			conn.Close()

			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(size)/elapsed.Seconds()/1e6, "agent-MB/s")
			b.ReportMetric(float64(size)/pipe.Seconds()/1e6, "pipe-MB/s")
			b.ReportMetric(pipe.Seconds()/elapsed.Seconds(), "ratio-to-pipe")
		})
	}
}

type benchFixture struct {
	srv   *httptest.Server
	log   *Log
	token string
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	db := openDB(b)
	newSession(b, db, "s1")
	j := NewJournal(db, nil)
	b.Cleanup(j.Close)
	ctx := context.Background()
	l, err := j.OpenLog(ctx, "s1")
	if err != nil {
		b.Fatal(err)
	}
	svc, err := tokens.New(ctx, db, db, nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := svc.Mint(ctx, tokens.Grant{Subject: "u", Project: "p", Session: "s1",
		Audience: tokens.AudienceViewer, Scopes: []tokens.Scope{tokens.ScopeSessionView}})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/sessions/{id}/events", ViewerHandler(ViewerOptions{Tokens: svc, Logs: logMap{"s1": l}}))
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return &benchFixture{srv: srv, log: l, token: tok}
}

func (f *benchFixture) dial(b *testing.B) *websocket.Conn {
	b.Helper()
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/v1/sessions/s1/events"
	c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + f.token}})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkIdleSessionMemory opens b.N idle session logs (what the broker
// holds per idle session, without the agent process: the log, its recent
// events, and one viewer's pull loop is not counted) after 20 events each,
// and reports the heap growth per session.
func BenchmarkIdleSessionMemory(b *testing.B) {
	db := openDB(b)
	j := NewJournal(db, nil)
	defer j.Close()
	ctx := context.Background()
	n := max(b.N, 200)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i)
		newSession(b, db, ids[i])
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	logs := make([]*Log, n)
	for i, id := range ids {
		l, err := j.OpenLog(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		for k := range 20 {
			if _, err := l.Append(ctx, "update", map[string]any{"sessionUpdate": "agent_message_chunk", "k": k}); err != nil {
				b.Fatal(err)
			}
		}
		logs[i] = l
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/session")
	runtime.KeepAlive(logs)
}
