//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Probe reports the Landlock support of the running kernel.
func Probe() Support {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		reason := "the kernel does not offer Landlock (Linux 5.13 or later, with landlock in the lsm= list)"
		if err != nil {
			reason += ": " + err.Error()
		}
		return Support{Reason: reason}
	}
	return supportFor(abi)
}

// MaybeRunLauncher runs the launcher and never returns when the process
// was started as one (os.Args[1] is LauncherArg); otherwise it returns at
// once. Call it first thing in main, and in TestMain of tests that start
// confined agents with the test binary as the launcher.
func MaybeRunLauncher() {
	if len(os.Args) < 2 || os.Args[1] != LauncherArg {
		return
	}
	err := runLauncher(os.Args[2:])
	// runLauncher returns only on failure: the agent was not started.
	fmt.Fprintf(os.Stderr, "agentbroker sandbox: %v\n", err)
	os.Exit(exitLauncherFailed)
}

func runLauncher(argv []string) error {
	if len(argv) == 0 {
		return errors.New("no program to run")
	}
	pf := os.NewFile(policyFD, "policy")
	if pf == nil {
		return errors.New("no policy on fd 3")
	}
	data, err := io.ReadAll(io.LimitReader(pf, maxPolicyBytes+1))
	pf.Close()
	if err != nil {
		return fmt.Errorf("read the policy: %w", err)
	}
	p, err := decodePolicy(data)
	if err != nil {
		return err
	}

	// Everything from here runs on this one thread, which then becomes the
	// agent: credentials and the Landlock domain are per thread until
	// execve, which keeps only the calling thread.
	runtime.LockOSThread()
	if p.User != nil {
		if err := dropTo(p.User); err != nil {
			return err
		}
	} else if uid, _, _ := syscall.RawSyscall(syscall.SYS_GETUID, 0, 0, 0); uid == 0 {
		return errors.New("refusing to run an agent as root: give the policy a user")
	}
	for _, dir := range p.Write {
		if err := unix.Access(dir, unix.R_OK|unix.W_OK|unix.X_OK); err != nil {
			return fmt.Errorf("the agent (%s) cannot read and write %s: %w", p.User, dir, err)
		}
	}
	if err := unix.Access(argv[0], unix.X_OK); err != nil {
		return fmt.Errorf("the agent (%s) cannot execute %s: %w", p.User, argv[0], err)
	}

	// Whatever the broker inherited and did not mark close-on-exec (from a
	// shell, a service manager) must not reach the agent.
	closeOnExecFrom3()
	if p.Unconfined {
		err := syscall.Exec(argv[0], argv, os.Environ())
		return fmt.Errorf("exec %s: %w", argv[0], err)
	}
	rules, err := rules(&p)
	if err != nil {
		return err
	}
	cfg := landlock.V7.BestEffort()
	cfg.HandledAccessNet = 0
	if p.RestrictNet {
		cfg.HandledAccessNet = ll.AccessNetConnectTCP
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return fmt.Errorf("landlock ruleset: %w", err)
	}
	if fd < 0 {
		return ErrUnavailable
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if err := ll.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("landlock_restrict_self: %w", err)
	}
	if p.RestrictNet {
		if err := denyMPTCP(); err != nil {
			return err
		}
	}
	unix.Close(fd)
	// The environment is the agent's as the supervisor built it.
	err = syscall.Exec(argv[0], argv, os.Environ())
	return fmt.Errorf("exec %s: %w", argv[0], err)
}

// dropTo makes this thread the unprivileged user u, with no supplementary
// groups. It is per thread on purpose (raw syscalls, not the all-threads
// wrappers): the thread execs the agent right after.
func dropTo(u *User) error {
	if uid, _, _ := syscall.RawSyscall(syscall.SYS_GETEUID, 0, 0, 0); uid != 0 {
		return fmt.Errorf("running agents as %s needs the broker to run as root", u)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	gid, uid := uintptr(u.GID), uintptr(u.UID)
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, gid, gid, gid); e != 0 {
		return fmt.Errorf("setresgid %d: %w", u.GID, e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uid, uid, uid); e != 0 {
		return fmt.Errorf("setresuid %d: %w", u.UID, e)
	}
	if r, _, _ := syscall.RawSyscall(syscall.SYS_GETEUID, 0, 0, 0); r != uid {
		return fmt.Errorf("still uid %d after setresuid %d", r, u.UID)
	}
	return nil
}

// rules turns the policy into Landlock rules, as the agent's user sees
// the paths.
func rules(p *Policy) ([]landlock.Rule, error) {
	var dirs, files []string
	for _, path := range p.Read {
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("the agent (%s) cannot reach %s: %w", p.User, path, err)
		case fi.IsDir():
			dirs = append(dirs, path)
		default:
			files = append(files, path)
		}
	}
	out := []landlock.Rule{
		landlock.RODirs(dirs...),
		landlock.ROFiles(files...),
		landlock.RWDirs(p.Write...).WithRefer(),
		landlock.RWFiles(p.Devices...).WithIoctlDev().IgnoreIfMissing(),
	}
	for _, port := range p.ConnectTCP {
		out = append(out, landlock.ConnectTCP(port))
	}
	return out, nil
}

// closeOnExecFrom3 marks every descriptor above stderr close-on-exec.
func closeOnExecFrom3() {
	if unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Before Linux 5.11: one by one.
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// ProtectSelf makes the calling process non-dumpable: its /proc entries
// (environ, mem, fd, maps…) become root's, and no process of the same user
// may ptrace it. Agents are other processes of that user when the broker
// is not root; this closes what they could otherwise read of the broker.
// It also marks every descriptor the process inherited close-on-exec.
func ProtectSelf() error {
	closeOnExecFrom3() // nothing the broker inherited reaches any child
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: PR_SET_DUMPABLE: %w", err)
	}
	return nil
}
