package sessions

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/acp/sandbox"
)

// Confinement configures how every agent process is confined (see package
// acp/sandbox).
type Confinement struct {
	// Launcher is the binary that runs sandbox.MaybeRunLauncher: the
	// broker's own. Required.
	Launcher string
	// Policy is what every agent may do besides its session's own
	// directories (HOME, TMPDIR, the working directory) and its adapter:
	// the system's paths, devices, the operator's extra paths, the agent
	// user, and the network rule (RestrictNet, with the broker's own port
	// in ConnectTCP).
	Policy sandbox.Policy
	// DirectPorts are the TCP ports a session whose credential reaches its
	// vendor directly (api-key, oauth-token) may also connect to when the
	// network is restricted; a credential's own base URL adds its port.
	DirectPorts []uint16
	// Off: no Landlock (turned off, or unavailable); Reason says why, and
	// every session records it. An agent user still applies.
	Off    bool
	Reason string
	// Enforced says what the kernel enforces ("landlock ABI 7", or partial
	// with what is missing), for the sessions' records.
	Enforced string
	// Protected are the broker's own paths (its data directory, key and
	// token files): an agent's working directory, which it may write, may
	// be none of them, inside one, or above one. New adds the sessions'
	// root.
	Protected []string
}

// Mode is the line every session records: whether its agent is confined,
// by what, as whom, and its network rule.
func (c *Confinement) Mode() string {
	if c == nil {
		return "off: the broker confines no agent"
	}
	as := ""
	if c.Policy.User != nil {
		as = "; agents run as " + c.Policy.User.String()
	}
	if c.Off {
		return "off: " + c.Reason + as
	}
	network := "; network open"
	if c.Policy.RestrictNet {
		network = "; tcp connect limited to the broker"
		if len(c.DirectPorts) > 0 {
			network += " (and the vendor's port for sessions with their own key)"
		}
	}
	return "on: " + c.Enforced + as + network
}

// CheckOpen refuses a path to open to agents (a working directory, or an
// operator's --agent-read/--agent-write) that would give the agent the
// broker's files: one of the protected paths or the sessions' root, a
// directory inside one (another session's home), or one that holds one
// ($HOME, with the data directory below it). Links are resolved first, as
// Landlock resolves them.
func (c *Confinement) CheckOpen(cwd string) error {
	if c == nil {
		return nil
	}
	real, err := filepath.EvalSymlinks(cwd)
	if err != nil {
		return fmt.Errorf("cwd %q: %w", cwd, err)
	}
	for _, p := range c.Protected {
		rp, err := filepath.EvalSymlinks(p)
		if err != nil {
			rp = filepath.Clean(p) // not there yet: compare as given
		}
		if sandbox.Within(real, rp) || sandbox.Within(rp, real) {
			return fmt.Errorf("cwd %q overlaps %s, which holds the broker's own files: an agent may write its working directory, so give it one apart from them", cwd, p)
		}
	}
	return nil
}

// prepareRoot creates the sessions' root: 0700, or 0711 when agents run as
// another user (who must reach their own directory inside, but not list
// the others).
func (c *Confinement) prepareRoot(dir string) error {
	mode := fs.FileMode(0o700)
	if c != nil && c.Policy.User != nil {
		mode = 0o711
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	return nil
}

// policy is the confinement of one launch, nil for none, with the line a
// session records about it.
func (c *Confinement) policy(sessionDir string, l *profile.Launch, ac AgentConfig, cred profile.Credential, bridge string) (*sandbox.Policy, string) {
	if c == nil {
		return nil, "off: the broker confines no agent"
	}
	p := c.Policy.Clone()
	if c.Off {
		if p.User == nil {
			return nil, "off: " + c.Reason
		}
		p.Unconfined = true
		return &p, "off: " + c.Reason + "; as " + p.User.String()
	}
	// The session's own directory holds its HOME and TMPDIR (and what a
	// custom agent is told is {session_dir}); then its working directory.
	p.Write = appendNew(p.Write, sessionDir, l.Dir)
	if ac.InstallDir != "" {
		p.Read = appendNew(p.Read, ac.InstallDir)
	}
	if bridge != "" {
		p.Read = appendNew(p.Read, bridge)
	}
	if p.RestrictNet {
		// The agent's own loopback server (OpenCode's ACP mode).
		for _, port := range l.LoopbackPorts {
			if !slices.Contains(p.ConnectTCP, port) {
				p.ConnectTCP = append(p.ConnectTCP, port)
			}
		}
	}
	if p.RestrictNet && (cred.Kind == profile.KindAPIKey || cred.Kind == profile.KindOAuthToken) {
		ports := slices.Clone(c.DirectPorts)
		if port, err := sandbox.PortOf(cred.BaseURL); err == nil {
			ports = append(ports, port)
		}
		for _, port := range ports {
			if !slices.Contains(p.ConnectTCP, port) {
				p.ConnectTCP = append(p.ConnectTCP, port)
			}
		}
	}
	return &p, p.Summary()
}

// takeBack makes the session's directory the broker's again before the
// profile writes into it (a relaunch): as root, the broker must not work in
// a directory another user can change under it, and a process of the last
// launch that escaped its process group could. Prepare then refuses any
// symlink it finds, with nobody left to swap one in.
func (c *Confinement) takeBack(dir string) error {
	if c == nil || c.Policy.User == nil {
		return nil
	}
	return chownTree(dir, os.Geteuid(), os.Getegid())
}

// giveTo makes the session's directory the agent user's, once the profile
// has written its files there (as the broker's user).
func (c *Confinement) giveTo(dir string) error {
	if c == nil || c.Policy.User == nil {
		return nil
	}
	return chownTree(dir, c.Policy.User.UID, c.Policy.User.GID)
}

// chownTree changes the owner of dir and everything below it, symlinks
// themselves rather than what they point to.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func appendNew(list []string, paths ...string) []string {
	for _, p := range paths {
		if p != "" && !slices.Contains(list, p) {
			list = append(list, p)
		}
	}
	return list
}
