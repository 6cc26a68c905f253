package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"

	"github.com/agentbroker/agentbroker/acp/sandbox"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/sessions"
)

// defaultAgentUser is who agents run as when the broker runs as root.
const defaultAgentUser = "nobody"

func sandboxFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.SessionsDir, "sessions-dir", c.SessionsDir, "where each session's private directory (the agent's HOME, TMPDIR, config files) is made (default <data-dir>-sessions)")
	fs.StringVar(&c.AgentSandbox, "agent-sandbox", c.AgentSandbox, "confine every agent with Landlock: on (said loudly when the kernel cannot), required (refuse to start without it) or off")
	fs.StringVar(&c.AgentUser, "agent-user", c.AgentUser, "the unprivileged user agents run as when the broker runs as root (default "+defaultAgentUser+"; never root)")
	fs.StringVar(&c.AgentNetwork, "agent-network", c.AgentNetwork, "what TCP an agent may connect to: broker (the broker's port; sessions with their own key also 443) or open")
	fs.Var(&c.AgentRead, "agent-read", "a path every agent may also read (repeatable)")
	fs.Var(&c.AgentWrite, "agent-write", "a directory every agent may also write (repeatable)")
	fs.Var(&c.AgentPorts, "agent-allow-port", "a TCP port every agent may also connect to, with --agent-network=broker (repeatable)")
}

// sessionsDir is where the sessions' directories go: apart from the data
// directory, whose files agents must never reach.
func (c *config) sessionsDir() string {
	if c.SessionsDir != "" {
		return c.SessionsDir
	}
	return filepath.Clean(c.DataDir) + "-sessions"
}

// confinement turns the flags into the sessions' confinement, says loudly
// when agents are not confined, and returns what /readyz shows.
func (c *config) confinement(publicURL string, log *slog.Logger) (*sessions.Confinement, map[string]any, error) {
	switch c.AgentSandbox {
	case "on", "off", "required":
	default:
		return nil, nil, fmt.Errorf("--agent-sandbox %q: want on, required or off", c.AgentSandbox)
	}
	switch c.AgentNetwork {
	case "broker", "open":
	default:
		return nil, nil, fmt.Errorf("--agent-network %q: want broker or open", c.AgentNetwork)
	}
	conf := &sessions.Confinement{Launcher: launcherPath()}
	// An agent's working directory, and the paths every agent may write
	// or read, must keep clear of the broker's own files.
	conf.Protected = []string{filepath.Clean(c.DataDir), c.sessionsDir()}
	for _, p := range catalog.Providers() {
		if f := c.Providers[p.Name].KeyFile; f != "" {
			conf.Protected = append(conf.Protected, filepath.Clean(f))
		}
	}
	u, err := agentUser(c.AgentUser)
	if err != nil {
		return nil, nil, err
	}
	conf.Policy.User = u

	p := &conf.Policy
	p.Read = slices.Clone(sandbox.SystemRead)
	// The resolver's configuration may be a link out of /etc.
	if target, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil {
		p.Read = append(p.Read, target)
	}
	p.Devices = slices.Clone(sandbox.SystemDevices)
	for _, path := range c.AgentRead {
		if !filepath.IsAbs(path) {
			return nil, nil, fmt.Errorf("--agent-read %q: want an absolute path", path)
		}
		if err := conf.CheckOpen(path); err != nil {
			return nil, nil, fmt.Errorf("--agent-read: %w", err)
		}
		p.Read = append(p.Read, filepath.Clean(path))
	}
	for _, path := range c.AgentWrite {
		if fi, err := os.Stat(path); err != nil || !fi.IsDir() || !filepath.IsAbs(path) {
			return nil, nil, fmt.Errorf("--agent-write %q: want an existing directory, by its absolute path", path)
		}
		if err := conf.CheckOpen(path); err != nil {
			return nil, nil, fmt.Errorf("--agent-write: %w", err)
		}
		p.Write = append(p.Write, filepath.Clean(path))
	}
	// The system's directories may hold the broker's (data in /opt/…):
	// an agent reads around them, never them.
	p.Read = sandbox.Exclude(p.Read, conf.Protected)
	if c.AgentNetwork == "broker" {
		port, err := sandbox.PortOf(publicURL)
		if err != nil {
			return nil, nil, fmt.Errorf("public URL: %w", err)
		}
		p.RestrictNet, p.ConnectTCP = true, []uint16{port}
		for _, s := range c.AgentPorts {
			n, err := strconv.ParseUint(s, 10, 16)
			if err != nil || n == 0 {
				return nil, nil, fmt.Errorf("--agent-allow-port %q: want a TCP port", s)
			}
			p.ConnectTCP = append(p.ConnectTCP, uint16(n))
		}
		conf.DirectPorts = []uint16{443}
	} else if len(c.AgentPorts) > 0 {
		return nil, nil, errors.New("--agent-allow-port needs --agent-network=broker")
	}

	support := sandbox.Probe()
	switch {
	case c.AgentSandbox == "off":
		conf.Off, conf.Reason = true, "turned off (--agent-sandbox=off)"
	case support.ABI == 0 && c.AgentSandbox == "required":
		return nil, nil, fmt.Errorf("--agent-sandbox=required: agents cannot be confined here: %s", support.Reason)
	case support.ABI == 0:
		conf.Off, conf.Reason = true, "unavailable: "+support.Reason
	}
	conf.Enforced = support.String()
	info := map[string]any{"agent_sandbox": conf.Mode()}
	switch {
	case conf.Off:
		msg := "AGENTS ARE NOT CONFINED: an agent can read and write whatever the broker's user can, its data directory and keys included"
		if u != nil {
			msg = "AGENTS ARE NOT CONFINED: an agent can read and write whatever " + u.String() + " can, other sessions' files included"
		}
		log.Warn(msg, "reason", conf.Reason)
		info["warnings"] = []string{msg + " (" + conf.Reason + ")"}
	case !support.Full():
		msg := "agents are only partly confined: " + support.Reason
		log.Warn(msg, "landlock_abi", support.ABI)
		info["warnings"] = []string{msg}
	default:
		log.Info("agents are confined", "sandbox", conf.Mode())
	}
	return conf, info, nil
}

// launcherPath is the binary that confines an agent: the broker's own. On
// Linux /proc/self/exe names it in the forked child even if the file was
// replaced on disk since the broker started.
func launcherPath() string {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe"
	}
	self, _ := os.Executable()
	return self
}

// agentUser is who agents run as: nil (the broker's own user) unless the
// broker runs as root, then the named user, never root.
func agentUser(name string) (*sandbox.User, error) {
	if os.Geteuid() != 0 {
		if name == "" {
			return nil, nil
		}
		if cur, err := user.Current(); err == nil && (cur.Username == name || cur.Uid == name) {
			return nil, nil
		}
		return nil, fmt.Errorf("--agent-user %s: only a broker running as root can run agents as another user", name)
	}
	if name == "" {
		name = defaultAgentUser
	}
	lookup := user.Lookup
	if _, err := strconv.Atoi(name); err == nil {
		lookup = user.LookupId
	}
	found, err := lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--agent-user %s: %w", name, err)
	}
	uid, err1 := strconv.Atoi(found.Uid)
	gid, err2 := strconv.Atoi(found.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--agent-user %s: uid %q gid %q are not numbers", name, found.Uid, found.Gid)
	}
	if uid == 0 || gid == 0 {
		return nil, fmt.Errorf("--agent-user %s: agents never run as root (uid 0 or gid 0)", name)
	}
	return &sandbox.User{Name: found.Username, UID: uid, GID: gid}, nil
}

// checkReachable reports the paths the agent user cannot reach. The
// sessions' root must be reachable (its parent directories searchable);
// an adapter's directory or a command that is not only fails those agents.
func checkReachable(u *sandbox.User, sessionsDir string, others map[string]string, log *slog.Logger) error {
	if u == nil {
		return nil
	}
	if err := searchable(filepath.Dir(sessionsDir), u); err != nil {
		return fmt.Errorf("agents run as %s, who cannot reach the sessions directory %s (%v): pass --sessions-dir on a path they can reach, e.g. /var/lib/agentbroker-sessions", u, sessionsDir, err)
	}
	for what, path := range others {
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if err := searchable(filepath.Dir(path), u); err != nil {
			log.Warn("agents cannot reach "+what+": those agents will fail to start", "path", path, "agent_user", u.String(), "err", err)
		}
	}
	return nil
}

// searchable checks, by mode bits, that u may search dir and every
// directory above it.
func searchable(dir string, u *sandbox.User) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if d == filepath.Dir(d) {
					return nil
				}
				continue // made later, by the broker
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		var bit fs.FileMode = 0o001
		switch {
		case int(st.Uid) == u.UID:
			bit = 0o100
		case int(st.Gid) == u.GID:
			bit = 0o010
		}
		if fi.Mode().Perm()&bit == 0 {
			return fmt.Errorf("%s is mode %04o, owned by uid %d", d, fi.Mode().Perm(), st.Uid)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
