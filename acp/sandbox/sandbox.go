// Package sandbox confines an agent process and everything it spawns.
//
// The broker does not confine agents from its own process: it starts a
// small launcher, which is the broker's own binary re-executed with
// [LauncherArg] as its first argument. The launcher reads a [Policy] from
// file descriptor 3, drops to the policy's uid and gid when it has one,
// checks that the agent can reach every path the policy names, applies a
// Landlock ruleset to itself (so it holds for every process the agent
// starts, and cannot be undone) and then executes the agent in its own
// place. Its process ID is the agent's: the supervisor's process group,
// pipes and signals work as they would without it.
//
// What the ruleset allows, on Linux with Landlock:
//   - read and execute: [Policy.Read] (the system's directories, the
//     adapter's install directory, the agent's program);
//   - read, write and create: [Policy.Write] (the session's working
//     directory, its HOME and its private TMPDIR) and a few device files;
//   - TCP connect: only [Policy.ConnectTCP] when [Policy.RestrictNet]
//     (and then no Multipath TCP socket, which Landlock does not cover:
//     a seccomp filter refuses to create one);
//   - no signals to, and no ptrace of, any process outside the agent's own
//     Landlock domain (the broker, other sessions), and no abstract UNIX
//     sockets outside it.
//
// [Probe] says what the running kernel supports; a caller reports it
// rather than failing silently when confinement is partial or missing.
package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// LauncherArg is the first argument that turns the broker's binary into
// the launcher. A main function calls [MaybeRunLauncher] before anything
// else.
const LauncherArg = "__agentbroker-sandbox-exec"

// policyFD is the launcher's file descriptor that carries the policy: the
// first of exec.Cmd.ExtraFiles.
const policyFD = 3

// maxPolicyBytes bounds the policy: it is written into a pipe before the
// launcher starts, and a pipe holds 64 KiB.
const maxPolicyBytes = 60 << 10

// exitLauncherFailed is the launcher's exit status when it cannot confine
// the agent; it never runs the agent unconfined.
const exitLauncherFailed = 126

// Policy is what one confined agent process may do.
type Policy struct {
	// Read lists paths (directories or files) the agent may read and
	// execute. A missing path is skipped.
	Read []string `json:"read,omitempty"`
	// Write lists directories the agent may read, write, create in and
	// execute from. Each must exist and be reachable by the agent.
	Write []string `json:"write,omitempty"`
	// Devices lists device files the agent may read, write and use ioctl
	// on (/dev/null, /dev/tty, …). A missing one is skipped.
	Devices []string `json:"devices,omitempty"`
	// RestrictNet limits TCP connect to ConnectTCP's ports; false leaves
	// the network as it is.
	RestrictNet bool     `json:"restrict_net,omitempty"`
	ConnectTCP  []uint16 `json:"connect_tcp,omitempty"`
	// User, when set, is the unprivileged user the agent runs as; the
	// launcher must then start as root.
	User *User `json:"user,omitempty"`
	// Unconfined skips Landlock: the launcher only changes the user. For a
	// broker whose confinement is off or unavailable, which still never
	// runs an agent as root.
	Unconfined bool `json:"unconfined,omitempty"`
}

// User is a uid and gid, with no supplementary groups.
type User struct {
	Name string `json:"name"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

// String says "name (uid U, gid G)".
func (u *User) String() string {
	if u == nil {
		return "the broker's user"
	}
	return fmt.Sprintf("%s (uid %d, gid %d)", u.Name, u.UID, u.GID)
}

// Validate checks the policy the launcher is about to apply.
func (p *Policy) Validate() error {
	for _, list := range [][]string{p.Read, p.Write, p.Devices} {
		for _, path := range list {
			if !filepath.IsAbs(path) || strings.ContainsRune(path, 0) || filepath.Clean(path) != path {
				return fmt.Errorf("sandbox: path %q is not absolute and clean", path)
			}
		}
	}
	if p.User != nil && (p.User.UID <= 0 || p.User.GID <= 0) {
		return fmt.Errorf("sandbox: agent user %s: uid and gid must be other than root's", p.User)
	}
	return nil
}

// Clone returns a deep copy, to extend per session.
func (p Policy) Clone() Policy {
	p.Read = slices.Clone(p.Read)
	p.Write = slices.Clone(p.Write)
	p.Devices = slices.Clone(p.Devices)
	p.ConnectTCP = slices.Clone(p.ConnectTCP)
	if p.User != nil {
		u := *p.User
		p.User = &u
	}
	return p
}

// Summary describes the policy in one line, for a session's record.
func (p *Policy) Summary() string {
	if p.Unconfined {
		return "unconfined, as " + p.User.String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "write %s", strings.Join(p.Write, ", "))
	if p.RestrictNet {
		ports := make([]string, len(p.ConnectTCP))
		for i, port := range p.ConnectTCP {
			ports[i] = strconv.Itoa(int(port))
		}
		fmt.Fprintf(&b, "; tcp connect to port %s only", strings.Join(ports, ", "))
	} else {
		b.WriteString("; network open")
	}
	if p.User != nil {
		fmt.Fprintf(&b, "; as %s", p.User)
	}
	return b.String()
}

// SystemRead are the system directories an agent reads: its interpreter,
// libraries, certificates, /proc and /sys (other processes' /proc entries
// stay closed: Landlock refuses ptrace access outside the domain).
var SystemRead = []string{"/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc", "/sys", "/dev"}

// SystemDevices are the device files an agent may write.
var SystemDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx", "/dev/pts"}

// ErrUnavailable: the kernel cannot confine processes (no Landlock, or not
// Linux).
var ErrUnavailable = errors.New("sandbox: Landlock is not available")

// Support is what the running kernel can enforce.
type Support struct {
	// ABI is the Landlock ABI version, 0 when Landlock is unavailable.
	ABI int
	// Reason says why confinement is missing or partial; "" when full.
	Reason string
}

// Full reports whether every part of a policy is enforced: files (ABI 1),
// TCP connect (ABI 4), truncation and device ioctl (ABI 3, 5), signals and
// abstract sockets (ABI 6).
func (s Support) Full() bool { return s.ABI >= 6 }

// String says what is enforced.
func (s Support) String() string {
	switch {
	case s.ABI == 0:
		return "unavailable: " + s.Reason
	case s.Full():
		return fmt.Sprintf("landlock ABI %d", s.ABI)
	default:
		return fmt.Sprintf("partial (landlock ABI %d): %s", s.ABI, s.Reason)
	}
}

func supportFor(abi int) Support {
	var missing []string
	if abi < 4 {
		missing = append(missing, "TCP connect is not restricted (needs ABI 4)")
	}
	if abi < 5 {
		missing = append(missing, "device ioctl is not restricted (needs ABI 5)")
	}
	if abi < 6 {
		missing = append(missing, "signals to the broker and abstract UNIX sockets are not restricted (needs ABI 6)")
	}
	return Support{ABI: abi, Reason: strings.Join(missing, "; ")}
}

// PortOf is the TCP port a URL connects to: its own, or its scheme's
// (http 80, https 443).
func PortOf(rawURL string) (uint16, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return 0, fmt.Errorf("sandbox: %q is not a URL with a host", rawURL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("sandbox: %q has no TCP port", rawURL)
	}
	return uint16(n), nil
}

// launch is what the broker sends the launcher.
type launch struct {
	Policy Policy `json:"policy"`
}

// decodePolicy reads what the broker sent the launcher: one JSON object,
// no unknown field, at most maxPolicyBytes, a valid policy.
func decodePolicy(data []byte) (Policy, error) {
	if len(data) > maxPolicyBytes {
		return Policy{}, errors.New("sandbox: the policy is too large")
	}
	var l launch
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Policy{}, fmt.Errorf("sandbox: decode the policy: %w", err)
	}
	if dec.More() {
		return Policy{}, errors.New("sandbox: more than one policy")
	}
	if err := l.Policy.Validate(); err != nil {
		return Policy{}, err
	}
	return l.Policy, nil
}

// Command is how to start an agent under a policy.
type Command struct {
	// Path and Args (without the program name) start the launcher.
	Path string
	Args []string
	// PolicyFile is to be passed as the child's first extra file (fd 3).
	// The caller closes it once the child has started.
	PolicyFile *os.File
}

// Wrap returns the command that runs program (a resolved path) with args
// under policy, through launcher (the broker's own binary).
func Wrap(launcher string, policy Policy, program string, args []string) (*Command, error) {
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(program) {
		return nil, fmt.Errorf("sandbox: program %q is not an absolute path", program)
	}
	data, err := json.Marshal(launch{Policy: policy})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if len(data) > maxPolicyBytes {
		return nil, fmt.Errorf("sandbox: the policy is %d bytes, over %d", len(data), maxPolicyBytes)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	_, err = w.Write(data)
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return &Command{Path: launcher, Args: append([]string{LauncherArg, program}, args...), PolicyFile: r}, nil
}

// Exclude returns paths with every protected path left out: a path that is
// a protected one, or lies inside one, is dropped; a directory that holds
// one is replaced by its entries, recursively, so that everything around
// the protected path stays reachable and the path itself does not
// (Landlock grants whole hierarchies, it cannot carve a hole). /opt with
// the broker's data in /opt/agentbroker/data becomes /opt's other entries,
// plus /opt/agentbroker's other entries.
func Exclude(paths, protected []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, exclude(filepath.Clean(p), protected)...)
	}
	return out
}

func exclude(path string, protected []string) []string {
	holds := false
	for _, p := range protected {
		p = filepath.Clean(p)
		if Within(path, p) {
			return nil
		}
		if Within(p, path) {
			holds = true
		}
	}
	if !holds {
		return []string{path}
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, exclude(filepath.Join(path, e.Name()), protected)...)
	}
	return out
}

// Within reports whether path is dir or below it (lexically).
func Within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
