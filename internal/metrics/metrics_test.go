package metrics

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestTextFormat(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	c := r.NewCounterVec("agentbroker_requests_total", "HTTP requests.", "route", "code")
	c.With("/v1/models", "200").Add(3)
	c.With("/healthz", "200").Inc()
	c.With(`a"b\c`+"\n", "500").Inc()
	g := r.NewGaugeVec("agentbroker_sessions", "Live sessions.")
	g.With().Set(2)
	g.With().Add(-0.5)
	r.NewGaugeFunc("agentbroker_up", "Always 1.", func() float64 { return 1 })
	h := r.NewHistogramVec("agentbroker_latency_seconds", "Latency.", []float64{0.1, 1}, "route")
	for _, v := range []float64{0.05, 0.1, 0.5, 3} {
		h.With("/x").Observe(v)
	}

	var b bytes.Buffer
	r.WriteText(&b)
	want := `# HELP agentbroker_latency_seconds Latency.
# TYPE agentbroker_latency_seconds histogram
agentbroker_latency_seconds_bucket{route="/x",le="0.1"} 2
agentbroker_latency_seconds_bucket{route="/x",le="1"} 3
agentbroker_latency_seconds_bucket{route="/x",le="+Inf"} 4
agentbroker_latency_seconds_sum{route="/x"} 3.65
agentbroker_latency_seconds_count{route="/x"} 4
# HELP agentbroker_requests_total HTTP requests.
# TYPE agentbroker_requests_total counter
agentbroker_requests_total{route="/healthz",code="200"} 1
agentbroker_requests_total{route="/v1/models",code="200"} 3
agentbroker_requests_total{route="a\"b\\c\n",code="500"} 1
# HELP agentbroker_sessions Live sessions.
# TYPE agentbroker_sessions gauge
agentbroker_sessions 1.5
# HELP agentbroker_up Always 1.
# TYPE agentbroker_up gauge
agentbroker_up 1
`
	if got := b.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type = %q", ct)
	}
	if rec.Body.String() != want {
		t.Fatalf("ServeHTTP body differs from WriteText")
	}
}

func TestMisuse(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(r *Registry){
		"bad name":      func(r *Registry) { r.NewCounterVec("1bad", "x") },
		"bad label":     func(r *Registry) { r.NewCounterVec("ok", "x", "__reserved") },
		"duplicate":     func(r *Registry) { r.NewCounterVec("dup", "x"); r.NewGaugeVec("dup", "x") },
		"label count":   func(r *Registry) { r.NewCounterVec("c", "x", "a").With("1", "2") },
		"bucket order":  func(r *Registry) { r.NewHistogramVec("h", "x", []float64{2, 1}) },
		"dash in name":  func(r *Registry) { r.NewGaugeFunc("a-b", "x", func() float64 { return 0 }) },
		"empty label":   func(r *Registry) { r.NewCounterVec("e", "x", "") },
		"digit label 1": func(r *Registry) { r.NewCounterVec("d", "x", "1a") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Fatalf("no panic")
				}
			}()
			f(NewRegistry())
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	c := r.NewCounterVec("c_total", "x", "k")
	h := r.NewHistogramVec("h_seconds", "x", nil, "k")
	g := r.NewGaugeVec("g", "x")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 1000 {
				k := string(rune('a' + (i+j)%3))
				c.With(k).Inc()
				h.With(k).Observe(0.001)
				g.With().Add(1)
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			var b bytes.Buffer
			r.WriteText(&b)
		}
	})
	wg.Wait()
	total := c.With("a").Value() + c.With("b").Value() + c.With("c").Value()
	if total != 8000 || g.With().Value() != 8000 {
		t.Fatalf("counter total %d, gauge %v; want 8000 each", total, g.With().Value())
	}
}

// TestScaledCounter: a cost counted in pico-USD is written in USD, and
// many small additions sum exactly (a float counter would drift).
func TestScaledCounter(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	c := r.NewScaledCounterVec("agentbroker_cost_usd_total", "Cost.", 1_000_000_000_000, "model")
	for range 10 {
		c.With("m").Add(100_000_000_000) // $0.1, ten times
	}
	c.With("n").Add(1)
	var b bytes.Buffer
	r.WriteText(&b)
	want := `# HELP agentbroker_cost_usd_total Cost.
# TYPE agentbroker_cost_usd_total counter
agentbroker_cost_usd_total{model="m"} 1
agentbroker_cost_usd_total{model="n"} 1e-12
`
	if got := b.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
