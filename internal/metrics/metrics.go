// Package metrics is a small Prometheus registry: counters, gauges and
// histograms with labels, written in the text exposition format (version
// 0.0.4) that every Prometheus-compatible scraper reads.
//
// It exists instead of prometheus/client_golang because the broker needs a
// handful of series and no protobuf, process collectors or global registry:
// a Registry is an ordinary value passed to whoever records.
package metrics

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families and writes them out.
type Registry struct {
	mu       sync.Mutex
	families map[string]family
}

type family interface {
	write(b *bytes.Buffer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]family{}} }

func (r *Registry) register(name string, f family) {
	if !validName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[name]; dup {
		panic(fmt.Sprintf("metrics: %q registered twice", name))
	}
	r.families[name] = f
}

// WriteText writes every family in name order.
func (r *Registry) WriteText(b *bytes.Buffer) {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	fams := make([]family, 0, len(names))
	sort.Strings(names)
	for _, n := range names {
		fams = append(fams, r.families[n])
	}
	r.mu.Unlock()
	for _, f := range fams {
		f.write(b)
	}
}

// ServeHTTP serves the registry in the text format.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	r.WriteText(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
}

// vec is the labelled-series bookkeeping shared by every kind.
type vec[T any] struct {
	name, help, kind string
	labels           []string
	mu               sync.RWMutex
	series           map[string]*labelled[T]
	make             func() *T
}

type labelled[T any] struct {
	values []string
	v      *T
}

func newVec[T any](name, help, kind string, labels []string, mk func() *T) *vec[T] {
	for _, l := range labels {
		if !validName(l) || strings.HasPrefix(l, "__") {
			panic(fmt.Sprintf("metrics: invalid label name %q", l))
		}
	}
	return &vec[T]{name: name, help: help, kind: kind, labels: labels, series: map[string]*labelled[T]{}, make: mk}
}

func (v *vec[T]) with(values ...string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", v.name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	s, ok := v.series[key]
	v.mu.RUnlock()
	if ok {
		return s.v
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.series[key]; ok {
		return s.v
	}
	s = &labelled[T]{values: slices.Clone(values), v: v.make()}
	v.series[key] = s
	return s.v
}

// sorted returns the series in label order, for stable output.
func (v *vec[T]) sorted() []*labelled[T] {
	v.mu.RLock()
	out := make([]*labelled[T], 0, len(v.series))
	for _, s := range v.series {
		out = append(out, s)
	}
	v.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return slices.Compare(out[i].values, out[j].values) < 0 })
	return out
}

func (v *vec[T]) header(b *bytes.Buffer) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", v.name, escapeHelp(v.help), v.name, v.kind)
}

// labelString renders {a="x",b="y"} plus extra pairs (for le=).
func labelString(names, values []string, extra ...string) string {
	if len(names) == 0 && len(extra) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%s=\"%s\"", n, escapeLabel(values[i]))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if sb.Len() > 1 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%s=\"%s\"", extra[i], escapeLabel(extra[i+1]))
	}
	sb.WriteByte('}')
	return sb.String()
}

// Counter is a monotonically increasing integer.
type Counter struct{ n atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.n.Load() }

// CounterVec is a family of counters told apart by labels.
type CounterVec struct{ v *vec[Counter] }

// NewCounterVec registers a counter family. With no labels it has one series.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{v: newVec(name, help, "counter", labels, func() *Counter { return new(Counter) })}
	r.register(name, c)
	return c
}

// With returns the counter for these label values, creating it at zero.
func (c *CounterVec) With(values ...string) *Counter { return c.v.with(values...) }

func (c *CounterVec) write(b *bytes.Buffer) {
	c.v.header(b)
	for _, s := range c.v.sorted() {
		fmt.Fprintf(b, "%s%s %d\n", c.v.name, labelString(c.v.labels, s.values), s.v.Value())
	}
}

// ScaledCounterVec is a family of counters kept as integers of a small
// unit and written as a float of a larger one: cost added in pico-USD
// and exposed in USD, so that sums never accumulate float rounding.
type ScaledCounterVec struct {
	v   *vec[Counter]
	per float64
}

// NewScaledCounterVec registers a counter family whose series count units
// and are written as value = units / unitsPerValue (e.g. 1e12 pico-USD per USD).
func (r *Registry) NewScaledCounterVec(name, help string, unitsPerValue uint64, labels ...string) *ScaledCounterVec {
	if unitsPerValue == 0 {
		panic(fmt.Sprintf("metrics: %s: zero units per value", name))
	}
	c := &ScaledCounterVec{v: newVec(name, help, "counter", labels, func() *Counter { return new(Counter) }), per: float64(unitsPerValue)}
	r.register(name, c)
	return c
}

// With returns the counter (in units) for these label values, creating it at zero.
func (c *ScaledCounterVec) With(values ...string) *Counter { return c.v.with(values...) }

func (c *ScaledCounterVec) write(b *bytes.Buffer) {
	c.v.header(b)
	for _, s := range c.v.sorted() {
		fmt.Fprintf(b, "%s%s %s\n", c.v.name, labelString(c.v.labels, s.values), formatFloat(float64(s.v.Value())/c.per))
	}
}

// Gauge is a value that goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) {
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Value returns the value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// GaugeVec is a family of gauges told apart by labels.
type GaugeVec struct{ v *vec[Gauge] }

// NewGaugeVec registers a gauge family.
func (r *Registry) NewGaugeVec(name, help string, labels ...string) *GaugeVec {
	g := &GaugeVec{v: newVec(name, help, "gauge", labels, func() *Gauge { return new(Gauge) })}
	r.register(name, g)
	return g
}

// With returns the gauge for these label values.
func (g *GaugeVec) With(values ...string) *Gauge { return g.v.with(values...) }

func (g *GaugeVec) write(b *bytes.Buffer) {
	g.v.header(b)
	for _, s := range g.v.sorted() {
		fmt.Fprintf(b, "%s%s %s\n", g.v.name, labelString(g.v.labels, s.values), formatFloat(s.v.Value()))
	}
}

// gaugeFunc is a gauge read at scrape time.
type gaugeFunc struct {
	name, help string
	f          func() float64
}

// NewGaugeFunc registers a gauge whose value f returns at each scrape.
func (r *Registry) NewGaugeFunc(name, help string, f func() float64) {
	r.register(name, &gaugeFunc{name: name, help: help, f: f})
}

func (g *gaugeFunc) write(b *bytes.Buffer) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", g.name, escapeHelp(g.help), g.name, g.name, formatFloat(g.f()))
}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	bounds  []float64
	counts  []atomic.Uint64 // one per bound, plus +Inf
	sumBits atomic.Uint64
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound ≥ v
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// HistogramVec is a family of histograms told apart by labels.
type HistogramVec struct {
	v      *vec[Histogram]
	bounds []float64
}

// DefaultBuckets suit request latencies in seconds, from 100µs to 10s.
var DefaultBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewHistogramVec registers a histogram family with these upper bounds
// (ascending; nil means DefaultBuckets).
func (r *Registry) NewHistogramVec(name, help string, bounds []float64, labels ...string) *HistogramVec {
	if bounds == nil {
		bounds = DefaultBuckets
	}
	if !sort.Float64sAreSorted(bounds) {
		panic(fmt.Sprintf("metrics: %s buckets not ascending", name))
	}
	bounds = slices.Clone(bounds)
	h := &HistogramVec{bounds: bounds}
	h.v = newVec(name, help, "histogram", labels, func() *Histogram {
		return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
	})
	r.register(name, h)
	return h
}

// With returns the histogram for these label values.
func (h *HistogramVec) With(values ...string) *Histogram { return h.v.with(values...) }

func (h *HistogramVec) write(b *bytes.Buffer) {
	h.v.header(b)
	for _, s := range h.v.sorted() {
		var cum uint64
		for i, bound := range h.bounds {
			cum += s.v.counts[i].Load()
			fmt.Fprintf(b, "%s_bucket%s %d\n", h.v.name, labelString(h.v.labels, s.values, "le", formatFloat(bound)), cum)
		}
		cum += s.v.counts[len(h.bounds)].Load()
		fmt.Fprintf(b, "%s_bucket%s %d\n", h.v.name, labelString(h.v.labels, s.values, "le", "+Inf"), cum)
		fmt.Fprintf(b, "%s_sum%s %s\n", h.v.name, labelString(h.v.labels, s.values), formatFloat(math.Float64frombits(s.v.sumBits.Load())))
		fmt.Fprintf(b, "%s_count%s %d\n", h.v.name, labelString(h.v.labels, s.values), cum)
	}
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
