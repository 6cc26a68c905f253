package tokens_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

// TestSQLiteTwoProcesses runs two services on two handles to one SQLite
// data directory, as the server and the CLI do: a revocation by one is
// refused by the other on the very next call, and a rotation by one
// reaches the other on Refresh.
func TestSQLiteTwoProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *tokens.Service {
		db, err := sqlite.Open(ctx, sqlite.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		s, err := tokens.New(ctx, db, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	server, cli := open(), open()
	if server.KeyRing().SigningKeyID() != cli.KeyRing().SigningKeyID() || len(cli.KeyRing().Keys()) != 1 {
		t.Fatal("the second start created another key")
	}
	grant := tokens.Grant{Subject: "alice", Project: "p", Session: "s1", Audience: tokens.AudienceMCP,
		Scopes: []tokens.Scope{tokens.ScopeTasksRead}}
	raw, c, err := server.Mint(ctx, grant)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Verify(ctx, raw, tokens.AudienceMCP); err != nil {
		t.Fatalf("the other process: %v", err)
	}
	if _, err := server.Verify(ctx, raw, tokens.AudienceMCP); err != nil { // now cached
		t.Fatal(err)
	}
	if err := cli.Revoke(ctx, c.ID, c.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Verify(ctx, raw, tokens.AudienceMCP); !errors.Is(err, tokens.ErrRevoked) {
		t.Fatalf("revoked by the other process: %v", err)
	}

	old := server.KeyRing().SigningKeyID()
	kid, err := cli.KeyRing().Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.KeyRing().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if server.KeyRing().SigningKeyID() != kid {
		t.Fatalf("after the CLI rotated and the server refreshed, the server signs with %s; want %s",
			server.KeyRing().SigningKeyID(), kid)
	}
	raw2, _, err := server.Mint(ctx, grant)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.KeyRing().Retire(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := server.KeyRing().Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Verify(ctx, raw2, tokens.AudienceMCP); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if err := server.RevokeSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Verify(ctx, raw2, tokens.AudienceMCP); !errors.Is(err, tokens.ErrRevoked) {
		t.Fatalf("session revoked by the server: %v", err)
	}
}

// The SQLite benchmarks measure Verify as serve runs it: the revocation
// check is a query on the store's read pool on every call.
func benchSQLite(b *testing.B, cacheSize int) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := tokens.New(ctx, db, db, &tokens.Options{CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	raw, _, err := s.Mint(ctx, tokens.Grant{Subject: "alice", Project: "p", Session: "s1",
		Audience: tokens.AudienceMCP, Scopes: []tokens.Scope{tokens.ScopeTasksRead}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Verify(ctx, raw, tokens.AudienceMCP); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVerifyColdSQLite(b *testing.B)   { benchSQLite(b, -1) }
func BenchmarkVerifyCachedSQLite(b *testing.B) { benchSQLite(b, 0) }
