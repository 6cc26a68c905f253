package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// frame is what a viewer reads (sessions.Frame's fields we need).
type frame struct {
	Seq  int64      `json:"seq"`
	Type string     `json:"type"`
	Time *time.Time `json:"time"`
}

// viewerStats gathers what every viewer saw.
type viewerStats struct {
	lat       latencies
	delivered atomic.Int64
	gaps      atomic.Int64 // a seq that was not last+1
	ended     sync.Map     // viewer index → true once it saw its session's end
	last      sync.Map     // viewer index → last seq seen
}

func runViewers(ctx context.Context, e *env) error {
	nSessions, perSession, flood := 100, 10, 200
	if e.quick {
		nSessions, perSession, flood = 5, 4, 50
	}
	b, err := startBroker(ctx, e.bin, filepath.Join(e.root, "viewers"))
	if err != nil {
		return err
	}
	defer b.stop()
	var proj struct{ ID string }
	if err := b.call(ctx, "POST", "/v1/projects", map[string]any{"name": "viewers"}, &proj); err != nil {
		return err
	}
	cwd := filepath.Join(e.root, "cwd")
	agentCwd(cwd)
	ids, err := parallel(ctx, nSessions, 8, func(i int) (string, error) {
		var out struct{ Session struct{ ID string } }
		err := b.call(ctx, "POST", "/v1/sessions", map[string]any{
			"project": proj.ID, "agent": "custom", "credential": map[string]string{"kind": "none"}, "cwd": cwd,
		}, &out)
		return out.Session.ID, err
	})
	if err != nil {
		return err
	}

	// Viewers connect first (replaying what is there), then every session
	// floods at once; each viewer reads until its session's turn ends.
	wsBase := "ws" + strings.TrimPrefix(b.url, "http")
	st := &viewerStats{}
	var conns []*websocket.Conn
	hdr := http.Header{"Authorization": {"Bearer " + b.admin}}
	d := websocket.Dialer{Subprotocols: []string{"agentbroker.events.v1"}, HandshakeTimeout: 30 * time.Second}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var began time.Time
	for s, id := range ids {
		for v := range perSession {
			c, _, err := d.DialContext(ctx, wsBase+"/v1/sessions/"+id+"/events?after=0", hdr)
			if err != nil {
				return fmt.Errorf("viewer %d of session %d: %w", v, s, err)
			}
			conns = append(conns, c)
			idx := len(conns) - 1
			wg.Go(func() { readViewer(c, idx, st, start, "turn_end") })
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(time.Second) // the replays are read
	base := st.delivered.Load()
	st.lat = latencies{}
	close(start)
	began = time.Now()
	if _, err := parallel(ctx, len(ids), len(ids), func(i int) (struct{}, error) {
		return struct{}{}, b.call(ctx, "POST", "/v1/sessions/"+ids[i]+"/prompt", map[string]any{"text": fmt.Sprintf("fault:flood %d", flood)}, nil)
	}); err != nil {
		return err
	}
	waitOrTimeout(&wg, 5*time.Minute)
	elapsed := time.Since(began)
	live := st.delivered.Load() - base

	// Every viewer must have seen its session's end, and all the viewers of
	// a session must have ended on the same seq, without a gap.
	lasts := map[int]int64{}
	st.last.Range(func(k, v any) bool {
		s := k.(int) / perSession
		lasts[s] = max(lasts[s], v.(int64))
		return true
	})
	var short int
	for i := range conns {
		last, _ := st.last.Load(i)
		n, _ := last.(int64)
		if _, ended := st.ended.Load(i); !ended || n != lasts[i/perSession] {
			short++
		}
	}

	bare, err := bareFanout(ctx, nSessions, perSession, flood+2)
	if err != nil {
		return err
	}
	rate := float64(live) / elapsed.Seconds()
	e.printf("\n## WebSocket viewers\n\n")
	e.printf("`go run ./bench viewers`: %d viewers over %d sessions (%d each) of the reference agent, connected before the\n",
		nSessions*perSession, nSessions, perSession)
	e.printf("turn; then every session is prompted at once with `fault:flood %d` (%d agent message chunks, each an ACP\n", flood, flood)
	e.printf("notification the broker decodes, logs in SQLite and sends to each viewer). Latency is from the event's\n")
	e.printf("timestamp in the broker to its arrival at the viewer (one clock: same machine); with every session bursting at\n")
	e.printf("once it is mostly time spent queued, on both sides. The baseline is a bare\n")
	e.printf("WebSocket fan-out (gorilla/websocket, its own process) sending the same number of frames of the same\n")
	e.printf("shape to the same number of viewers, as fast as it can.\n\n")
	e.printf("| | frames delivered/s | p50 / p99 latency | gaps or duplicates | viewers that ended short |\n|---|---|---|---|---|\n")
	e.printf("| broker | %.0f | %s / %s | %d | %d |\n", rate, ms(st.lat.q(0.5)), ms(st.lat.q(0.99)), st.gaps.Load(), short)
	e.printf("| bare fan-out | %.0f | %s / %s | %d | — |\n", bare.rate, ms(bare.p50), ms(bare.p99), bare.gaps)
	e.printf("| ratio | %s | | | |\n", ratio(rate, bare.rate))
	if st.gaps.Load() > 0 || short > 0 {
		return fmt.Errorf("viewers lost events: %d gaps, %d ended short", st.gaps.Load(), short)
	}
	return nil
}

// readViewer reads frames until one of type end arrives after start, and
// records sequence gaps and latencies (of frames read after start).
func readViewer(c *websocket.Conn, idx int, st *viewerStats, start <-chan struct{}, end string) {
	var last int64
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var f frame
		if json.Unmarshal(data, &f) != nil || f.Seq == 0 {
			continue // heartbeats and the like
		}
		if f.Seq != last+1 {
			st.gaps.Add(1)
		}
		last = f.Seq
		st.last.Store(idx, last)
		st.delivered.Add(1)
		select {
		case <-start:
			if f.Time != nil {
				st.lat.add(now.Sub(*f.Time))
			}
			if f.Type == end {
				st.ended.Store(idx, true)
				return
			}
		default:
		}
	}
}

func waitOrTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

type fanoutResult struct {
	rate     float64
	p50, p99 time.Duration
	gaps     int64
}

// bareFanout runs `bench bare-ws` and has the same number of viewers read
// frames from it.
func bareFanout(ctx context.Context, sessions, perSession, frames int) (fanoutResult, error) {
	var r fanoutResult
	url, stop, err := startSelf("bare-ws", strconv.Itoa(frames))
	if err != nil {
		return r, err
	}
	defer stop()
	st := &viewerStats{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var conns []*websocket.Conn
	for s := range sessions {
		for range perSession {
			c, _, err := websocket.DefaultDialer.DialContext(ctx, fmt.Sprintf("%s?session=%d", url, s), nil)
			if err != nil {
				return r, err
			}
			conns = append(conns, c)
			idx := len(conns) - 1
			wg.Go(func() { readViewer(c, idx, st, start, "turn_end") })
		}
	}
	close(start)
	began := time.Now()
	// Go: every viewer is connected.
	if resp, err := http.Post(strings.Replace(url, "ws://", "http://", 1)+"/go", "text/plain", nil); err != nil {
		return r, err
	} else {
		resp.Body.Close()
	}
	waitOrTimeout(&wg, 5*time.Minute)
	elapsed := time.Since(began)
	for _, c := range conns {
		c.Close()
	}
	r.rate = float64(st.delivered.Load()) / elapsed.Seconds()
	r.p50, r.p99, r.gaps = st.lat.q(0.5), st.lat.q(0.99), st.gaps.Load()
	return r, nil
}

// serveBareWS is the viewers' baseline: on POST /go, every session's
// viewers get frames 1…N (the last of type turn_end), written by one
// goroutine per viewer, stamped when made.
func serveBareWS() {
	n, _ := strconv.Atoi(os.Args[2])
	var mu sync.Mutex
	bySession := map[string][]*websocket.Conn{}
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		bySession[r.URL.Query().Get("session")] = append(bySession[r.URL.Query().Get("session")], c)
		mu.Unlock()
	})
	mux.HandleFunc("/ws/go", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for _, viewers := range bySession {
			// One producer per session hands each frame to its viewers'
			// writers, as the broker's log does.
			chans := make([]chan []byte, len(viewers))
			for i, c := range viewers {
				chans[i] = make(chan []byte, 256)
				go func() {
					for f := range chans[i] {
						c.WriteMessage(websocket.TextMessage, f)
					}
				}()
			}
			go func() {
				for seq := 1; seq <= n; seq++ {
					typ := "update"
					if seq == n {
						typ = "turn_end"
					}
					now := time.Now()
					f, _ := json.Marshal(map[string]any{"seq": seq, "type": typ, "time": now,
						"data": map[string]any{"sessionUpdate": "agent_message_chunk", "content": map[string]string{"type": "text", "text": "chunk " + strconv.Itoa(seq)}}})
					for _, ch := range chans {
						ch <- f
					}
				}
				for _, ch := range chans {
					close(ch)
				}
			}()
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	fmt.Printf("ws://%s/ws\n", ln.Addr())
	fatal(http.Serve(ln, mux))
}
