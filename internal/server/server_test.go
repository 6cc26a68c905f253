package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fakeHealth struct {
	pingErr        error
	applied, known int
}

func (f fakeHealth) Ping(context.Context) error { return f.pingErr }
func (f fakeHealth) SchemaVersion(context.Context) (int, int, error) {
	return f.applied, f.known, nil
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		health *fakeHealth
		code   int
		body   string
	}{
		{"ready", &fakeHealth{applied: 2, known: 2}, 200, `"status": "ready"`},
		{"store down", &fakeHealth{pingErr: errors.New("disk gone"), applied: 2, known: 2}, 503, "store unreachable"},
		{"migrations behind", &fakeHealth{applied: 1, known: 2}, 503, "migrations not applied"},
		{"no store", nil, 503, "no store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := &Options{}
			if tt.health != nil {
				opts.Health = *tt.health
			}
			s := New(opts)
			if rec := get(t, s.Handler(), "/healthz"); rec.Code != 200 {
				t.Fatalf("/healthz = %d", rec.Code)
			}
			rec := get(t, s.Handler(), "/readyz")
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
				t.Fatalf("/readyz = %d %s; want %d containing %q", rec.Code, rec.Body, tt.code, tt.body)
			}
			if strings.Contains(rec.Body.String(), "disk gone") {
				t.Fatalf("/readyz leaks the internal error: %s", rec.Body)
			}
		})
	}
}

func TestMetricsCountRequests(t *testing.T) {
	t.Parallel()
	s := New(&Options{Health: fakeHealth{applied: 1, known: 1}})
	s.Handle("GET /v1/things/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	h := s.Handler()
	get(t, h, "/v1/things/1")
	get(t, h, "/v1/things/2?access_token=secret-in-query")
	get(t, h, "/nowhere")
	body := get(t, h, "/metrics").Body.String()
	for _, want := range []string{
		`agentbroker_http_requests_total{route="GET /v1/things/{id}",method="GET",code="418"} 2`,
		`agentbroker_http_requests_total{route="unmatched",method="GET",code="404"} 1`,
		`agentbroker_http_request_duration_seconds_count{route="GET /v1/things/{id}"} 2`,
		`# TYPE agentbroker_http_requests_in_flight gauge`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "/v1/things/1") {
		t.Errorf("metrics label raw paths (unbounded cardinality)")
	}
}

func TestAccessLogOmitsQuery(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := New(&Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	get(t, s.Handler(), "/healthz?access_token=eyJhbGciOiJFZERTQSJ9.secret")
	if !strings.Contains(buf.String(), `"path":"/healthz"`) {
		t.Fatalf("access log lacks the path: %s", buf.String())
	}
	if strings.Contains(buf.String(), "secret") {
		t.Fatalf("access log contains the query string: %s", buf.String())
	}
}

func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	s := New(nil)
	s.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := get(t, s.Handler(), "/boom")
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "internal_error") {
		t.Fatalf("panic answered %d %s", rec.Code, rec.Body)
	}
}

// TestGracefulShutdown starts a request that is still running when the
// server is told to stop, and checks that it completes and that Run
// returns the cancellation.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	s := New(&Options{ShutdownTimeout: 10 * time.Second})
	s.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	cancel()
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("listener still accepting after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request = %q, %v; want it finished", r.body, r.err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v; want it to wrap context.Canceled", err)
	}
}

// TestHijackThroughMiddleware: a handler behind the middleware can take
// over the connection (WebSocket upgrades do), and the request is counted.
func TestHijackThroughMiddleware(t *testing.T) {
	t.Parallel()
	s := New(nil)
	s.Handle("GET /ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n")
		rw.Flush()
	}))
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d; want 101", resp.StatusCode)
	}
	// The client has its 101 once the handler flushes it; the middleware
	// counts the request when the handler returns, a moment later.
	want := `agentbroker_http_requests_total{route="GET /ws",method="GET",code="101"} 1`
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if body = get(t, s.Handler(), "/metrics").Body.String(); strings.Contains(body, want) {
			return
		}
	}
	t.Fatalf("the upgrade is not counted:\n%s", body)
}
