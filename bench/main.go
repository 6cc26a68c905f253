// Command bench measures how far one broker goes on this machine: sessions
// with the reference agent, a mixed MCP tool load, WebSocket viewers and
// the inference proxy, each against a baseline measured in the same run
// (a bare ACP client on a raw pipe, a bare mcp-go server, a bare WebSocket
// fan-out, the model upstream called directly). It builds the binaries
// under test, runs them as separate processes on loopback, and writes
// Markdown (BENCHMARKS.md is its output).
//
//	go run ./bench                       # everything, to stdout
//	go run ./bench -o BENCHMARKS.md      # everything, into the file
//	go run ./bench -quick sessions mcp   # small sizes, a smoke run (CI)
//	go run ./bench fleet                 # SQLite, PostgreSQL, three nodes on PostgreSQL
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type scenario struct {
	name string
	run  func(ctx context.Context, e *env) error
}

// env is what every scenario shares.
type env struct {
	bin   binaries
	root  string
	quick bool
	out   *bytes.Buffer
}

func (e *env) printf(format string, a ...any) { fmt.Fprintf(e.out, format, a...) }

var scenarios = []scenario{
	{"sessions", runSessions},
	{"mcp", runMCP},
	{"viewers", runViewers},
	{"proxy", runProxy},
	{"fleet", runFleet},
	{"gobench", runGoBench},
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare-mcp" {
		serveBareMCP() // the MCP baseline's own process
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "bare-ws" {
		serveBareWS()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "fake-upstream" {
		serveFakeUpstream()
		return
	}
	outPath := flag.String("o", "", "write the Markdown here instead of stdout")
	quick := flag.Bool("quick", false, "small sizes and short runs: a smoke test, not figures")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./bench [-quick] [-o FILE] [scenario…]\nscenarios:")
		for _, s := range scenarios {
			fmt.Fprintf(os.Stderr, " %s", s.name)
		}
		fmt.Fprintln(os.Stderr)
		flag.PrintDefaults()
	}
	flag.Parse()
	want := map[string]bool{}
	for _, a := range flag.Args() {
		want[a] = true
	}
	for a := range want {
		if !strings.Contains(" sessions mcp viewers proxy fleet gobench ", " "+a+" ") {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q\n", a)
			flag.Usage()
			os.Exit(2)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := os.MkdirTemp("", "agentbroker-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(root)
	// The broker confines its agents, and as root runs them as nobody, who
	// must reach their programs and working directories here.
	if err := os.Chmod(root, 0o711); err != nil {
		fatal(err)
	}
	bin, err := build(ctx, root)
	if err != nil {
		fatal(err)
	}
	e := &env{bin: bin, root: root, quick: *quick, out: &bytes.Buffer{}}
	e.printf("# Benchmarks\n\n")
	e.printf("Written by `go run ./bench%s` on %s: %s, %d CPUs, %s, %s.\n", argsNote(), time.Now().UTC().Format("2006-01-02"),
		cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version())
	e.printf("Every figure comes with its baseline, measured in the same run on the same machine; the ratio is what\n")
	e.printf("matters, the absolute numbers move with whatever else the machine is doing. Each section names the\n")
	e.printf("command that reproduces it alone.\n")
	if *quick {
		e.printf("\n**Quick run: small sizes, a smoke test. These are not figures to quote.**\n")
	}
	for _, s := range scenarios {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s …\n", s.name)
		t0 := time.Now()
		if err := s.run(ctx, e); err != nil {
			fatal(fmt.Errorf("%s: %w", s.name, err))
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", s.name, time.Since(t0).Round(time.Second))
	}
	if *outPath == "" {
		os.Stdout.Write(e.out.Bytes())
		return
	}
	if err := os.WriteFile(*outPath, e.out.Bytes(), 0o644); err != nil {
		fatal(err)
	}
}

func argsNote() string {
	var b strings.Builder
	for _, a := range os.Args[1:] {
		b.WriteString(" " + a)
	}
	return b.String()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for l := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	for l := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return "? RAM"
}

func runSessions(ctx context.Context, e *env) error {
	sizes := []int{10, 100, 1000}
	if e.quick {
		sizes = []int{5}
	}
	e.printf("\n## Sessions\n\n")
	e.printf("`go run ./bench sessions`: a broker (`agentbroker serve`, SQLite, loopback) starts N sessions with the\n")
	e.printf("reference agent (each a real process with its ACP handshake and MCP connection), 8 starts in flight;\n")
	e.printf("they idle 3 s; then each is prompted once, 32 at a time, with a `get_task` call through the broker's MCP\n")
	e.printf("server, and every reply is checked for the task's value. The baseline drives the same agent over a raw\n")
	e.printf("pipe with our bare ACP client (spawn, handshake, the same turn against the same MCP server; N agents,\n")
	e.printf("closed before the broker's sessions start). Broker memory is the broker process's RSS growth per idle session; the agents' memory is\n")
	e.printf("their own (separate processes).\n\n")
	e.printf("| N | started/s (bare client) | ratio | broker RSS per idle session | broker RSS | agent PSS (each) | turns with an MCP call/s | turn p50 / p99 | bare p50 / p99 | live after | failed |\n")
	e.printf("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range sizes {
		r, err := benchSessions(ctx, e.bin, e.root, n)
		if err != nil {
			//lint:ignore ST1005 N is the table's column, named as there
			return fmt.Errorf("N=%d: %w", n, err)
		}
		e.printf("| %d | %.0f (%.0f) | %s | %s | %s | %s | %.0f | %s / %s | %s / %s | %d | %d |\n",
			n, r.started, r.direct, ratio(r.started, r.direct), kib(r.idlePerSession), mib(r.brokerRSS), mib(r.agentPSS),
			r.mcpPerSec, ms(r.turnP50), ms(r.turnP99), ms(r.directTurnP50), ms(r.directTurnP99), r.live, r.failed)
		fmt.Fprintf(os.Stderr, "bench: sessions N=%d: %+v\n", n, r)
	}
	return nil
}
