package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentbroker/agentbroker/internal/adminapi"
	"github.com/agentbroker/agentbroker/internal/secretfile"
	"github.com/agentbroker/agentbroker/store/sqlite"
)

// The CLI reaches the broker one way: its HTTP API, at the URL the broker
// wrote into its data directory (BrokerURLFile, next to the admin token),
// or at --url. Only what must work with the broker stopped (token inspect)
// opens the data directory's store, and its help says so.

// BrokerURLFile is the file in the data directory where serve writes the
// URL it serves, for the CLI; it is removed when serve stops.
const BrokerURLFile = "broker-url"

// writeBrokerURL records where the broker serves; the returned function
// removes the file if it still holds this URL.
func writeBrokerURL(dataDir, u string) (remove func(), err error) {
	path := filepath.Join(dataDir, BrokerURLFile)
	if err := secretfile.Write(path, []byte(u+"\n")); err != nil {
		return nil, fmt.Errorf("broker URL file: %w", err)
	}
	return func() {
		if got, err := readSecretFile(path); err == nil && got == u {
			os.Remove(path)
		}
	}, nil
}

// brokerURL is --url, or the URL the broker serving the data directory
// wrote there. A URL file left by a broker that no longer runs is refused,
// so the admin token goes nowhere else.
func (c *config) brokerURL() (string, error) {
	if c.BrokerURL != "" {
		return checkBrokerURL(c.BrokerURL)
	}
	path := filepath.Join(c.DataDir, BrokerURLFile)
	u, err := readSecretFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no broker serves %s (no %s there): start one with 'agentbroker serve --data-dir %s', or give its --url",
			c.DataDir, BrokerURLFile, c.DataDir)
	}
	if err != nil {
		return "", fmt.Errorf("broker URL: %w", err)
	}
	if !serveLockHeld(c.DataDir) {
		return "", fmt.Errorf("the broker that wrote %s no longer runs: start one with 'agentbroker serve --data-dir %s', or give its --url",
			path, c.DataDir)
	}
	return checkBrokerURL(u)
}

func checkBrokerURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "", fmt.Errorf("broker URL %q: want http://host:port or https://host:port", oneLine(u, 200))
	}
	return strings.TrimSuffix(u, "/"), nil
}

// serveLockHeld says whether a broker holds the data directory's serve
// lock (sqlite.LockServe): a shared lock cannot be had while it does.
func serveLockHeld(dataDir string) bool {
	f, err := os.Open(filepath.Join(dataDir, sqlite.LockFileName))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// printJSON writes v as indented JSON: every list and get has --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func jsonFlag(fs *flag.FlagSet, p *bool) {
	fs.BoolVar(p, "json", false, "print JSON (the API's objects)")
}

// projectClient is the API client and the ID of the project ref names (an
// ID or a name).
func projectClient(ctx context.Context, c *config, ref string) (*apiClient, string, error) {
	a, err := newAPIClient(c)
	if err != nil {
		return nil, "", err
	}
	id, err := a.projectID(ctx, ref)
	return a, id, err
}

// projectID resolves a project given by ID or by name: the CLI takes
// either wherever it takes a project. A name two projects share is
// refused, naming their IDs.
func (a *apiClient) projectID(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	var out struct {
		Projects []adminapi.ProjectJSON `json:"projects"`
	}
	if err := a.call(ctx, "GET", "/v1/projects", nil, &out); err != nil {
		return "", err
	}
	var byName []string
	for _, p := range out.Projects {
		if p.ID == ref {
			return p.ID, nil
		}
		if p.Name == ref {
			byName = append(byName, p.ID)
		}
	}
	switch len(byName) {
	case 1:
		return byName[0], nil
	case 0:
		return "", fmt.Errorf("no project %q (neither a project's ID nor its name; see agentbroker project list)", oneLine(ref, 100))
	}
	return "", fmt.Errorf("%d projects are named %q: give one of their IDs: %s", len(byName), oneLine(ref, 100), strings.Join(byName, ", "))
}

// sessionStopper stops every session once (their turns cancelled, their
// agents shut down, resumable by the next broker) within timeout: as the
// HTTP server's shutdown hook, so that requests waiting on a turn end, and
// again at serve's end, which waits for it.
type sessionStopper struct {
	once sync.Once
	done chan struct{}
	stop func()
}

func newSessionStopper(ctx context.Context, mgr interface{ Close(context.Context) error }, timeout time.Duration, log *slog.Logger) *sessionStopper {
	s := &sessionStopper{done: make(chan struct{})}
	s.stop = func() {
		defer close(s.done)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		if err := mgr.Close(cctx); err != nil {
			log.Warn("stopping sessions", "err", err)
		}
	}
	return s
}

// Stop stops the sessions, or waits for the stop under way.
func (s *sessionStopper) Stop() {
	s.once.Do(s.stop)
	<-s.done
}
