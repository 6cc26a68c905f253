package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"

	"github.com/agentbroker/agentbroker/store"
	"github.com/agentbroker/agentbroker/store/postgres"
	"github.com/agentbroker/agentbroker/store/sqlite"
)

// databaseFlag is --database (AGENTBROKER_DATABASE): a PostgreSQL URL puts
// the broker on a database it can share with other brokers (a fleet);
// empty keeps the default, SQLite in --data-dir. The URL may hold a
// password: it is never logged, nor put in an error.
func databaseFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Database, "database", c.Database,
		"PostgreSQL connection URL (postgres://user@host/db) for a fleet of brokers sharing one database; empty: SQLite in --data-dir (prefer the environment variable for a URL with a password)")
}

// isPostgres reports whether a --database value names PostgreSQL.
func isPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// brokerStore is an open store and how to name it in logs.
type brokerStore interface {
	store.Store
}

// openBrokerStore opens the store c says: PostgreSQL at --database, or
// SQLite in --data-dir. where names it for a person (no password).
func openBrokerStore(ctx context.Context, c *config, log *slog.Logger) (st brokerStore, where string, err error) {
	switch {
	case c.Database == "":
		db, err := sqlite.Open(ctx, sqlite.Options{Dir: c.DataDir, Logger: log})
		if err != nil {
			return nil, "", err
		}
		return db, db.Path(), nil
	case isPostgres(c.Database):
		db, err := postgres.Open(ctx, postgres.Options{URL: c.Database, Logger: log})
		if err != nil {
			return nil, "", err
		}
		return db, db.String(), nil
	}
	// Not echoed: it may be a mistyped URL with a password in it.
	return nil, "", errors.New("--database: not a PostgreSQL URL (want postgres://…, or nothing for SQLite in --data-dir)")
}
