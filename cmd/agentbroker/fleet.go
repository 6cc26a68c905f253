package main

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/internal/cliflag"
	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/sessions"
	"github.com/agentbroker/agentbroker/store"
)

// NodeIDFile holds a broker's node ID in its data directory: the same
// node after a restart, so that it finds the sessions it owned.
const NodeIDFile = "node-id"

// fleetFlags are serve's flags for a fleet of brokers on one PostgreSQL.
func fleetFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "this broker's name in a fleet (default: one made at first start, kept in <data-dir>/"+NodeIDFile+")")
	cliflag.DurationVar(fs, &c.LeaseTTL, "lease-ttl", c.LeaseTTL, "with --database: how long a session stays owned by a broker that stopped renewing (then another takes it over)")
}

// nodeID is --node-id, or the data directory's, made at first start.
func nodeID(c *config) (string, error) {
	if c.NodeID != "" {
		if len(c.NodeID) > store.MaxIDLen || strings.ContainsFunc(c.NodeID, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return "", errors.New("--node-id: at most 128 characters, no spaces or control characters")
		}
		return c.NodeID, nil
	}
	path := filepath.Join(c.DataDir, NodeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("node ID: %w", err)
	}
	var r [8]byte
	rand.Read(r[:])
	id := "node-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(r[:]))
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("node ID: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node ID: %w", err)
	}
	return id, nil
}

// storeKind names the store for /readyz and /metrics.
func storeKind(c *config) string {
	if c.Database != "" {
		return "postgres"
	}
	return "sqlite"
}

// fleetOptions completes the session broker's options: leases when the
// store is shared (PostgreSQL).
func fleetOptions(o *sessions.Options, st brokerStore, node, publicURL string, ttl time.Duration) {
	o.Node, o.LeaseTTL = node, ttl
	if l, ok := st.(store.Leases); ok {
		o.Leases = l
	}
	if n, ok := st.(store.Nodes); ok {
		// The other nodes forward commands for this node's sessions to
		// its public URL: it must be one they reach (--public-url).
		o.Nodes, o.NodeURL = n, publicURL
	}
}

// nodeMetrics exposes the node's identity and owned sessions.
func nodeMetrics(reg *metrics.Registry, c *config, node string, mgr *sessions.Manager) {
	reg.NewGaugeVec("agentbroker_node_info", "This broker: its node ID in the fleet and its store (always 1).", "node", "store").
		With(node, storeKind(c)).Set(1)
	reg.NewGaugeFunc("agentbroker_node_owned_sessions", "Live sessions this broker owns (runs the agents of).",
		func() float64 { return float64(mgr.Owned()) })
}

// nodeReady is /readyz's node fields.
func nodeReady(c *config, node string, mgr *sessions.Manager) func() map[string]any {
	return func() map[string]any {
		return map[string]any{"node": node, "store": storeKind(c), "owned_sessions": mgr.Owned()}
	}
}
