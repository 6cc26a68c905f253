//go:build linux

package sandbox_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentbroker/agentbroker/acp/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.MaybeRunLauncher() // the test binary is the launcher
	if addr := os.Getenv("SANDBOX_TEST_MPTCP_DIAL"); addr != "" {
		os.Exit(mptcpDial(addr)) // the test binary as a confined program
	}
	os.Exit(m.Run())
}

// mptcpDial connects to addr over a Multipath TCP socket and prints what
// happened.
func mptcpDial(addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 262)
	if err != nil {
		fmt.Println("socket:", err)
		return 0
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		fmt.Println("connect:", err)
		return 0
	}
	fmt.Println("MPTCP-CONNECTED")
	return 0
}

// nobody is the agent user when the tests run as root.
func nobody() *sandbox.User {
	if os.Geteuid() != 0 {
		return nil
	}
	return &sandbox.User{Name: "nobody", UID: 65534, GID: 65534}
}

// openDir is a temporary directory any user can write, as a session's
// directories are for its agent.
func openDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// run starts sh -c script under policy and returns its output and error.
func run(t *testing.T, p sandbox.Policy, dir, script string) (string, error) {
	t.Helper()
	return runProgramEnv(t, p, dir, []string{"PATH=/usr/bin:/bin", "HOME=" + dir}, "/bin/sh", "-c", script)
}

func requireLandlock(t *testing.T) {
	t.Helper()
	if s := sandbox.Probe(); s.ABI == 0 {
		t.Skipf("no Landlock here: %s", s)
	}
}

func basePolicy(write ...string) sandbox.Policy {
	return sandbox.Policy{
		Read:    sandbox.SystemRead,
		Devices: sandbox.SystemDevices,
		Write:   write,
		User:    nobody(),
	}
}

func TestConfinesFiles(t *testing.T) {
	requireLandlock(t)
	work, outside := openDir(t), openDir(t)
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Without a sandbox the same script reads the secret: the test can fail.
	if out, err := exec.Command("/bin/sh", "-c", "cat "+secret).CombinedOutput(); err != nil || !strings.Contains(string(out), "s3cret") {
		t.Fatalf("control: cat without a sandbox: %v %s", err, out)
	}
	out, err := run(t, basePolicy(work), work, `
		cat `+secret+` && echo READ-OUTSIDE
		echo x >`+outside+`/new && echo WROTE-OUTSIDE
		ls `+outside+` && echo LISTED-OUTSIDE
		echo hello >inside && cat inside && echo WROTE-INSIDE
		mkdir -p sub/deeper && mv inside sub/deeper/moved && echo MOVED-INSIDE
		echo x >/dev/null && echo DEVNULL
		cat /etc/hostname >/dev/null && echo READ-SYSTEM
		true`)
	if err != nil {
		t.Fatalf("sh: %v\n%s", err, out)
	}
	for _, bad := range []string{"READ-OUTSIDE", "WROTE-OUTSIDE", "LISTED-OUTSIDE", "s3cret"} {
		if strings.Contains(out, bad) {
			t.Errorf("the sandbox let through %s:\n%s", bad, out)
		}
	}
	for _, good := range []string{"WROTE-INSIDE", "MOVED-INSIDE", "DEVNULL", "READ-SYSTEM"} {
		if !strings.Contains(out, good) {
			t.Errorf("the sandbox refused %s:\n%s", good, out)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Error("a file was created outside the policy")
	}
}

func TestConfinesSignalsAndPtrace(t *testing.T) {
	requireLandlock(t)
	if !sandbox.Probe().Full() {
		t.Skip("signal scoping needs Landlock ABI 6")
	}
	work := openDir(t)
	// A process outside the sandbox, of the agent's own user when not root.
	victim := exec.Command("/bin/sleep", "30")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer victim.Process.Kill()
	pid := strconv.Itoa(victim.Process.Pid)
	out, err := run(t, basePolicy(work), work, `
		kill -0 `+pid+` && echo SIGNALLED
		cat /proc/`+pid+`/environ >/dev/null && echo READ-ENVIRON
		readlink /proc/`+pid+`/fd/0 && echo FOLLOWED-FD
		head -c1 /proc/`+pid+`/mem && echo READ-MEM
		sh -c 'kill -0 $$' && echo OWN-CHILD
		true`)
	if err != nil {
		t.Fatalf("sh: %v\n%s", err, out)
	}
	for _, bad := range []string{"SIGNALLED", "READ-ENVIRON", "FOLLOWED-FD", "READ-MEM"} {
		if strings.Contains(out, bad) {
			t.Errorf("the sandbox let through %s:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "OWN-CHILD") {
		t.Errorf("the agent could not signal its own child:\n%s", out)
	}
}

func TestConfinesTCPConnect(t *testing.T) {
	requireLandlock(t)
	if sandbox.Probe().ABI < 4 {
		t.Skip("TCP rules need Landlock ABI 4")
	}
	allowed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer allowed.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go acceptAll(allowed)
	go acceptAll(other)
	port := func(l net.Listener) uint16 { return uint16(l.Addr().(*net.TCPAddr).Port) }
	work := openDir(t)
	p := basePolicy(work)
	p.RestrictNet, p.ConnectTCP = true, []uint16{port(allowed)}
	bash := "/bin/bash"
	if _, err := os.Stat(bash); err != nil {
		t.Skip("needs bash for /dev/tcp")
	}
	out, err := runProgram(t, p, work, bash, "-c", `
		(exec 3<>/dev/tcp/127.0.0.1/`+strconv.Itoa(int(port(allowed)))+`) && echo ALLOWED-OK
		(exec 3<>/dev/tcp/127.0.0.1/`+strconv.Itoa(int(port(other)))+`) && echo OTHER-OK
		true`)
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ALLOWED-OK") || strings.Contains(out, "OTHER-OK") {
		t.Errorf("want only the allowed port reachable:\n%s", out)
	}

	// Landlock's TCP rules do not cover Multipath TCP: a seccomp filter
	// refuses such sockets. The test binary, copied where the agent user
	// can run it, tries; without the sandbox it gets through.
	prog := filepath.Join(openDir(t), "sandbox.test")
	copyFile(t, os.Args[0], prog)
	cmd := exec.Command(prog)
	cmd.Env = []string{"SANDBOX_TEST_MPTCP_DIAL=" + other.Addr().String()}
	control, _ := cmd.CombinedOutput()
	t.Logf("MPTCP without the sandbox: %s", control)
	p.Write = append(p.Write, filepath.Dir(prog))
	out, err = runProgramEnv(t, p, work, []string{"SANDBOX_TEST_MPTCP_DIAL=" + other.Addr().String()}, prog)
	if err != nil || strings.Contains(out, "MPTCP-CONNECTED") {
		t.Errorf("an MPTCP socket reached a port the policy does not allow: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func acceptAll(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func runProgram(t *testing.T, p sandbox.Policy, dir, program string, args ...string) (string, error) {
	t.Helper()
	return runProgramEnv(t, p, dir, []string{"PATH=/usr/bin:/bin"}, program, args...)
}

func runProgramEnv(t *testing.T, p sandbox.Policy, dir string, env []string, program string, args ...string) (string, error) {
	t.Helper()
	self, _ := os.Executable()
	c, err := sandbox.Wrap(self, p, program, args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.ExtraFiles = []*os.File{c.PolicyFile}
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	c.PolicyFile.Close()
	return out.String(), err
}

func TestLauncherFailsClosed(t *testing.T) {
	requireLandlock(t)
	work := openDir(t)
	// A write directory that does not exist: the launcher refuses, and the
	// program never runs.
	out, err := run(t, basePolicy(filepath.Join(work, "missing")), work, "echo RAN")
	if err == nil || strings.Contains(out, "RAN") {
		t.Fatalf("want a refusal, got %v:\n%s", err, out)
	}
	if !strings.Contains(out, "cannot read and write") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
	if os.Geteuid() == 0 {
		// As root, a policy without a user is refused: agents never run as root.
		p := basePolicy(work)
		p.User = nil
		out, err := run(t, p, work, "echo RAN")
		if err == nil || strings.Contains(out, "RAN") || !strings.Contains(out, "as root") {
			t.Fatalf("want a refusal to run as root, got %v:\n%s", err, out)
		}
	} else {
		// Not root, a policy with a user is refused.
		p := basePolicy(work)
		p.User = &sandbox.User{Name: "nobody", UID: 65534, GID: 65534}
		out, err := run(t, p, work, "echo RAN")
		if err == nil || strings.Contains(out, "RAN") {
			t.Fatalf("want a refusal, got %v:\n%s", err, out)
		}
	}
}

func TestRunsAsAgentUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	requireLandlock(t)
	work := openDir(t)
	out, err := run(t, basePolicy(work), work, "id -u; id -g; id -G")
	if err != nil {
		t.Fatalf("sh: %v\n%s", err, out)
	}
	if got := strings.Fields(out); len(got) != 3 || got[0] != "65534" || got[1] != "65534" || got[2] != "65534" {
		t.Errorf("want uid, gid and groups 65534, got %q", out)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []sandbox.Policy{
		{Write: []string{"relative"}},
		{Read: []string{"/a/../b"}},
		{Devices: []string{"/dev/null\x00"}},
		{User: &sandbox.User{Name: "root"}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: want an error", p)
		}
	}
	if _, err := sandbox.Wrap("/bin/true", sandbox.Policy{}, "sh", nil); err == nil {
		t.Error("a relative program: want an error")
	}
}

func TestExclude(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"opt/tool/bin", "opt/agentbroker/data", "opt/agentbroker/agents", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	j := func(p string) string { return filepath.Join(root, p) }
	got := sandbox.Exclude([]string{j("opt"), j("usr"), j("opt/agentbroker/data/x")}, []string{j("opt/agentbroker/data")})
	want := []string{j("opt/agentbroker/agents"), j("opt/tool"), j("usr")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Exclude = %q, want %q", got, want)
	}
	if got := sandbox.Exclude([]string{j("opt")}, []string{j("opt")}); len(got) != 0 {
		t.Errorf("the protected path itself: %q", got)
	}
}
