// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb
// in a temporary directory, postgres on a unix socket there (no TCP port),
// fsync off, owned by an unprivileged user (nobody, when the tests run as
// root: initdb refuses root). Each test gets a database of its own, owned
// by a role that is not a superuser, as an operator would give a broker.
//
// The binaries are found in $AGENTBROKER_PG_BIN, else the newest
// /usr/lib/postgresql/*/bin (Debian's postgresql package), else $PATH.
// Without them a test is skipped, except in CI (CI=true), where it fails:
// CI installs them (.ci/run).
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is the unprivileged role that owns the tests' databases.
const Role = "agentbroker"

// Cluster is a running throwaway cluster.
type Cluster struct {
	dir  string // the data directory's parent, also the socket's directory
	cmd  *exec.Cmd
	exit chan struct{}
	log  *bytes.Buffer
}

var (
	once    sync.Once
	cluster *Cluster
	failure error
	dbs     atomic.Int64
)

// BinDir finds the PostgreSQL server binaries ("" when none).
func BinDir() string {
	if d := os.Getenv("AGENTBROKER_PG_BIN"); d != "" {
		return d
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
		sort.Slice(m, func(i, j int) bool { return version(m[i]) > version(m[j]) })
		return filepath.Dir(m[0])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p)
		}
	}
	return ""
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Require skips the test when PostgreSQL is not installed, or fails it in
// CI, and returns the binaries' directory.
func Require(t testing.TB) string {
	t.Helper()
	dir := BinDir()
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL server binaries not found (initdb, postgres): CI must install them (apt-get install postgresql)")
	}
	t.Skip("PostgreSQL server binaries not found (apt-get install postgresql, or set AGENTBROKER_PG_BIN)")
	return ""
}

// Main runs the tests of a package and stops the cluster afterwards. Call
// it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop stops the cluster, if one was started (for a TestMain that cannot
// use Main).
func Stop() {
	if cluster != nil {
		cluster.Stop()
		cluster = nil
	}
}

// NewDatabase creates an empty database for one test and returns its
// connection string (a unix socket, the unprivileged role).
func NewDatabase(t testing.TB) string {
	t.Helper()
	bin := Require(t)
	once.Do(func() { cluster, failure = Start(bin) })
	if failure != nil {
		t.Fatalf("start PostgreSQL: %v", failure)
	}
	url, err := cluster.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// NewDatabase creates an empty database owned by Role and returns its
// connection string.
func (c *Cluster) NewDatabase() (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres", "postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to the throwaway cluster: %w\n%s", err, c.log)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" OWNER "+Role); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return c.URL(Role, name), nil
}

// Superuser returns a connection string to db as the cluster's superuser
// (for tests that reach behind a store's back).
func Superuser(t testing.TB, db string) string {
	t.Helper()
	if cluster == nil {
		t.Fatal("pgtest: no cluster (call NewDatabase first)")
	}
	return cluster.URL("postgres", db)
}

// URL is a connection string to the cluster.
func (c *Cluster) URL(role, db string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&sslmode=disable", role, db, c.dir)
}

// Start starts a throwaway cluster with the binaries in bin (BinDir);
// Stop ends and removes it. (Tests use NewDatabase, which starts one
// cluster per test binary; the benchmarks call Start.)
func Start(bin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "agentbroker-pg-")
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no user nobody to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	c := &Cluster{dir: dir, exit: make(chan struct{}), log: &bytes.Buffer{}}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-F",
		"-c", "listen_addresses=", "-c", "max_connections=400", "-c", "shared_buffers=32MB",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { c.cmd.Wait(); close(c.exit) }()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres", "postgres"))
		if err == nil {
			_, err = conn.Exec(ctx, "CREATE ROLE "+Role+" LOGIN")
			conn.Close(ctx)
			if err != nil {
				c.Stop()
				return nil, fmt.Errorf("create role: %w", err)
			}
			return c, nil
		}
		select {
		case <-c.exit:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited: %s", c.log)
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("postgres did not accept connections: %w\n%s", err, c.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the cluster down (fast shutdown) and removes it.
func (c *Cluster) Stop() {
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exit:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.exit
	}
	os.RemoveAll(c.dir)
}
