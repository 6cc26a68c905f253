package sessions

import (
	"context"
	"errors"
	"time"

	"github.com/agentbroker/agentbroker/store"
)

// A fleet: several brokers on one shared store (store/postgres). Each live
// session is owned by one node, through a lease in the store
// (store.Leases) that the owner renews every LeaseTTL/3. A node acquires
// the lease of a session it creates, and of a session it recovers: at its
// start (Recover) it takes only the sessions no live node holds — its own
// from before a restart (its node ID is stable), and those of nodes whose
// leases expired — and, every LeaseTTL, it looks again for sessions whose
// owner stopped renewing (a node killed with SIGKILL) and takes them over
// as Recover does: session/load where the agent can, otherwise
// interrupted with the reason, the dead process's tokens revoked.
//
// Without Options.Leases (one broker, SQLite) the broker owns every session
// of its store and nothing here runs.

// DefaultLeaseTTL is how long a session's lease lasts unrenewed.
const DefaultLeaseTTL = 15 * time.Second

// ErrOwnedElsewhere reports a request for a live session that another node
// of the fleet owns.
var ErrOwnedElsewhere = errors.New("sessions: the session is owned by another broker of the fleet")

// fleet reports whether sessions are shared with other nodes.
func (m *Manager) fleet() bool { return m.opts.Leases != nil }

// own acquires (or renews) the lease of a session: false when another
// live node holds it.
func (m *Manager) own(ctx context.Context, id string) (bool, error) {
	if !m.fleet() {
		return true, nil
	}
	owner, err := m.opts.Leases.AcquireLease(ctx, id, m.opts.Node, m.opts.LeaseTTL)
	if err != nil {
		return false, err
	}
	return owner == m.opts.Node, nil
}

// release gives up the lease of a session that has ended here.
func (m *Manager) release(id string) {
	if !m.fleet() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.opts.Leases.ReleaseLease(ctx, id, m.opts.Node); err != nil {
		m.log.Warn("sessions: release lease", "session", id, "err", err)
	}
}

// owner is the node holding a session's lease ("" when none, or no fleet).
func (m *Manager) owner(ctx context.Context, id string) string {
	if !m.fleet() {
		return ""
	}
	o, err := m.opts.Leases.LeaseOwner(ctx, id)
	if err != nil {
		return ""
	}
	return o
}

// Node is this broker's node ID ("" without a fleet).
func (m *Manager) Node() string { return m.opts.Node }

// Owned is the number of sessions live on this node.
func (m *Manager) Owned() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

// startLeases renews this node's leases and takes over the sessions of
// nodes that stopped renewing theirs, until the Manager closes.
func (m *Manager) startLeases() {
	if !m.fleet() {
		return
	}
	if m.opts.Nodes != nil && m.opts.NodeURL != "" {
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		if err := m.opts.Nodes.PutNode(ctx, m.opts.Node, m.opts.NodeURL); err != nil {
			m.log.Warn("sessions: this node's address not recorded: commands for its sessions are not forwarded to it", "err", err)
		}
		cancel()
	}
	if w, ok := m.st.(store.EventWatcher); ok {
		w.WatchEvents(m.eventsCommitted)
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		renew := time.NewTicker(m.opts.LeaseTTL / 3)
		defer renew.Stop()
		takeover := time.NewTicker(m.opts.LeaseTTL)
		defer takeover.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-renew.C:
				m.renewLeases()
			case <-takeover.C:
				m.takeOver()
			}
		}
	}()
}

func (m *Manager) renewLeases() {
	ctx, cancel := context.WithTimeout(m.ctx, m.opts.LeaseTTL/3)
	defer cancel()
	held, err := m.opts.Leases.RenewLeases(ctx, m.opts.Node, m.opts.LeaseTTL)
	if err != nil {
		m.log.Warn("sessions: leases not renewed; other brokers take the sessions over if this lasts", "err", err)
		return
	}
	have := make(map[string]bool, len(held))
	for _, id := range held {
		have[id] = true
	}
	m.mu.Lock()
	var lost, idle []string
	for id := range m.live {
		if !have[id] {
			lost = append(lost, id)
		}
	}
	for _, id := range held {
		if m.live[id] == nil && !m.creating[id] {
			idle = append(idle, id) // a start or recovery that failed early
		}
	}
	m.mu.Unlock()
	for _, id := range idle {
		m.release(id)
	}
	for _, id := range lost {
		// Taken while it was ours (renewals failed for longer than the
		// lease) or not yet recorded: try to keep it; a session now owned
		// elsewhere is another broker's, whose log this one must not write.
		if ok, err := m.own(ctx, id); err == nil && !ok {
			// Its events and record are the new owner's now: appends
			// from here are refused (the log's seqs are taken).
			m.log.Error("sessions: lease lost to another broker", "session", id)
		}
	}
}

// takeOver recovers the sessions whose owners stopped renewing.
func (m *Manager) takeOver() {
	finish, err := m.BeginRecovery(m.ctx)
	if err != nil && !errors.Is(err, ErrClosed) {
		m.log.Warn("sessions: takeover", "err", err)
	}
	if finish == nil {
		return
	}
	got, err := finish()
	if err != nil {
		m.log.Warn("sessions: takeover", "err", err)
	}
	for _, r := range got {
		m.log.Warn("sessions: taken over from a broker that stopped renewing its leases", "session", r.ID, "from", r.From,
			"state", r.State, "err", r.Error)
	}
}

// checkOwner turns "not live here" into ErrOwnedElsewhere for a session
// another node owns.
func (m *Manager) checkOwner(ctx context.Context, id string) error {
	if o := m.owner(ctx, id); o != "" && o != m.opts.Node {
		return &ownedElsewhere{node: o}
	}
	return nil
}
