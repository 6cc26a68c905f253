package sessions

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/acp/sandbox"
	"github.com/agentbroker/agentbroker/catalog"
)

// agentCatalogs reads agents' own model catalogs (Codex's `debug models
// --bundled`) once per installed program, so that a session's agent
// configuration can add the broker catalog's facts for the models the agent
// lacks, instead of the agent warning about unknown metadata in every reply.
type agentCatalogs struct {
	mu    sync.Mutex
	cache map[string]agentCatalog // the command line and its entry's stat → result
}

type agentCatalog struct {
	data []byte
	err  error
}

// agentCatalogTimeout bounds one read (Codex prints its catalog in 0.2 s).
const agentCatalogTimeout = 30 * time.Second

// modelFacts are the catalog's facts about the session's model and its
// side models, for the agent's configuration.
func modelFacts(models Models, agent, model string) []profile.ModelFacts {
	if agent == "" || model == "" {
		return nil
	}
	ids := []string{model}
	if p, err := models.Policy(agent); err == nil {
		for _, sm := range p.SideModels {
			ids = append(ids, sm.ID)
		}
	}
	var out []profile.ModelFacts
	for _, id := range ids {
		r, err := models.Resolve(agent, id)
		if err != nil || slices.ContainsFunc(out, func(f profile.ModelFacts) bool { return f.ID == r.Model.ID }) {
			continue
		}
		out = append(out, factsOf(r.Model, id))
	}
	return out
}

// factsOf is what an agent should know of m, asked for as wireID. The input
// window stops below the first long-context price tier: an agent that plans
// for the whole window would pay the higher price on every call past it
// (Codex's own metadata does the same: 272,000 for GPT-5.5).
func factsOf(m *catalog.Model, wireID string) profile.ModelFacts {
	window := m.Limits.MaxInput
	if window == 0 {
		window = m.Limits.Context
	}
	if len(m.Prices.Tiers) > 0 && m.Prices.Tiers[0].AboveInputTokens > 0 && m.Prices.Tiers[0].AboveInputTokens < window {
		window = m.Prices.Tiers[0].AboveInputTokens
	}
	return profile.ModelFacts{ID: wireID, DisplayName: m.DisplayName, InputWindow: window, ReasoningEfforts: slices.Clone(m.ReasoningEfforts)}
}

// read returns the agent's own model catalog for a launch of p with spec,
// nil when the profile has none. The command runs in a scratch directory
// made in root, its home, which it may write and which is removed after;
// conf, when set, confines it like an agent, with no network at all.
func (a *agentCatalogs) read(ctx context.Context, p profile.Profile, spec profile.LaunchSpec, root string, conf *Confinement) ([]byte, error) {
	path, args, ok := p.ModelCatalogCommand(spec)
	if !ok {
		return nil, nil
	}
	entry := args[0]
	if !p.RunWithNode {
		entry = path
	}
	st, err := os.Stat(entry)
	if err != nil {
		return nil, fmt.Errorf("the agent's model catalog: %w", err)
	}
	key := fmt.Sprintf("%s\x00%s\x00%d\x00%d", path, strings.Join(args, "\x00"), st.Size(), st.ModTime().UnixNano())
	a.mu.Lock()
	if a.cache == nil {
		a.cache = map[string]agentCatalog{}
	}
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok {
		return c.data, c.err
	}
	data, err := runCatalogCommand(ctx, path, args, spec, root, conf)
	if err != nil && ctx.Err() != nil {
		return nil, err // not the agent's fault: do not remember it
	}
	a.mu.Lock()
	a.cache[key] = agentCatalog{data: data, err: err}
	a.mu.Unlock()
	return data, err
}

func runCatalogCommand(ctx context.Context, path string, args []string, spec profile.LaunchSpec, root string, conf *Confinement) ([]byte, error) {
	dir, err := os.MkdirTemp(root, ".agent-models-")
	if err != nil {
		return nil, fmt.Errorf("the agent's model catalog: %w", err)
	}
	defer os.RemoveAll(dir)
	if !filepath.IsAbs(path) {
		resolved, err := exec.LookPath(path)
		if err != nil {
			return nil, fmt.Errorf("the agent's model catalog: %w", err)
		}
		path = resolved
	}
	ctx, cancel := context.WithTimeout(ctx, agentCatalogTimeout)
	defer cancel()
	program, argv := path, args
	var policyFile *os.File
	if conf != nil {
		p := conf.Policy.Clone()
		p.Unconfined = conf.Off
		if !p.Unconfined || p.User != nil {
			p.Write = appendNew(p.Write, dir)
			p.Read = appendNew(p.Read, spec.InstallDir, path)
			p.RestrictNet, p.ConnectTCP = true, nil
			w, err := sandbox.Wrap(conf.Launcher, p, path, args)
			if err != nil {
				return nil, fmt.Errorf("the agent's model catalog: %w", err)
			}
			program, argv, policyFile = w.Path, w.Args, w.PolicyFile
			defer policyFile.Close()
			if p.User != nil {
				if err := os.Chown(dir, p.User.UID, p.User.GID); err != nil {
					return nil, fmt.Errorf("the agent's model catalog: %w", err)
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, program, argv...)
	// A home of its own and nothing of the broker's environment: the
	// command reads no credential and writes only in dir.
	cmd.Env = []string{"PATH=" + profile.DefaultPATH, "HOME=" + dir, "CODEX_HOME=" + dir, "TMPDIR=" + dir, "LANG=C.UTF-8"}
	cmd.Dir = dir
	if policyFile != nil {
		cmd.ExtraFiles = []*os.File{policyFile}
	}
	var out limitedBuffer
	out.max = profile.MaxAgentCatalogBytes
	var stderr limitedBuffer
	stderr.max = 4 << 10
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("the agent's model catalog: %s: %w%s", filepath.Base(path), err, tailText(lastLines(stderr.String(), 3)))
	}
	if out.over {
		return nil, fmt.Errorf("the agent's model catalog is over %d bytes", out.max)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps the first max bytes written to it and notes the rest.
// It is only an io.Writer: an embedded bytes.Buffer would lend it ReadFrom,
// which io.Copy prefers, and the limit would never be consulted.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) Bytes() []byte  { return b.buf.Bytes() }
func (b *limitedBuffer) String() string { return b.buf.String() }

var _ io.Writer = (*limitedBuffer)(nil)

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}
