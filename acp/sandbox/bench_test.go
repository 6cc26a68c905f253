//go:build linux

package sandbox_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/agentbroker/agentbroker/acp/sandbox"
)

// BenchmarkStart is what confinement adds to an agent's start: /bin/true
// run directly (the baseline) and through the launcher, interleaved in the
// same loop, so the ratio holds on a busy machine. An agent's own start
// (Node, an adapter, the ACP handshake) takes one to three seconds.
func BenchmarkStart(b *testing.B) {
	if sandbox.Probe().ABI == 0 {
		b.Skip("no Landlock here")
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	work, err := os.MkdirTemp("", "sandbox-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o777)
	p := basePolicy(work)
	p.RestrictNet, p.ConnectTCP = true, []uint16{7420}
	var direct, confined time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		c, err := sandbox.Wrap(self, p, "/bin/true", nil)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(c.Path, c.Args...)
		cmd.ExtraFiles = []*os.File{c.PolicyFile}
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		c.PolicyFile.Close()
		direct += t1.Sub(t0)
		confined += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(direct.Microseconds())/n, "µs/direct")
	b.ReportMetric(float64(confined.Microseconds())/n, "µs/confined")
	b.ReportMetric(float64(confined)/float64(direct), "x-direct")
}
