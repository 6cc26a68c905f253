package postgres

import (
	"context"
	"database/sql"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reads every MCP tool call makes (the task; for revocations see
// IsRevoked) are answered from memory while nothing they depend on changed,
// on this broker or on any other of the fleet.
//
// It is the SQLite store's arrangement (store/sqlite/changes.go) with the
// shared counters file replaced by PostgreSQL's NOTIFY: each watched table
// has stripes counters in memory, one of which a row's key hashes to. A
// write sends, in its transaction, NOTIFY agentbroker_changes with the
// stripe it changed (delivered to every listening session when, and only
// if, it commits) and bumps the counter itself once committed; every store
// LISTENs on a connection of its own and bumps the counter of each stripe
// it is told of. A read loads the counters of the rows it depends on
// before it queries and files its answer under their sum; an answer filed
// under an older sum is never used. So a task written on one broker is read
// afresh on the others as soon as the notice reaches them. Revocation is
// stricter (tokens.go): only "revoked" answers are kept, so a token revoked
// on one broker is refused by every other on its next request, with no
// notice to wait for.
//
// Answers are used only while the listening connection is up: when it
// drops, every read goes to the database until it is back (and the answers
// cached before are dropped: notices sent meanwhile were missed). Answers
// are also dropped after cacheTTL.

// notifyChannel is the channel of the change notices; eventsChannel that
// of the events committed (the payload is the session's ID), which wakes
// the viewers of a session on the brokers that do not own it.
const (
	notifyChannel = "agentbroker_changes"
	eventsChannel = "agentbroker_events"
)

const (
	changedRevocations = iota
	changedTasks
	numTables
)

const (
	stripes  = 128
	cacheTTL = 2 * time.Second
	cacheMax = 8192
)

func slot(table int, parts ...string) int {
	h := fnv.New32a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return table*stripes + int(h.Sum32()%stripes)
}

// changes is the counters and the listener.
type changes struct {
	db       *DB
	counters [numTables * stripes]atomic.Uint64
	// epoch is bumped whenever the listener (re)connects: what was cached
	// before may have missed notices.
	epoch     atomic.Uint64
	listening atomic.Bool
	notices   atomic.Int64 // notices received (tests)
	watch     atomic.Pointer[func(string)]

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func newChanges(db *DB) *changes {
	return &changes{db: db, done: make(chan struct{})}
}

// start connects the listener and keeps it connected until stop.
func (c *changes) start(ctx context.Context) error {
	conn, err := c.listen(ctx)
	lctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(lctx, conn)
	return err
}

func (c *changes) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, c.db.cfg.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel+"; LISTEN "+eventsChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	c.epoch.Add(1)
	c.listening.Store(true)
	return conn, nil
}

func (c *changes) run(ctx context.Context, conn *pgx.Conn) {
	defer close(c.done)
	backoff := 100 * time.Millisecond
	for {
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			var err error
			if conn, err = c.listen(ctx); err != nil {
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			c.db.log.Info("store: listening for changes again")
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			c.listening.Store(false)
			c.epoch.Add(1)
			conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return
			}
			c.db.log.Warn("store: change notices lost; reads go to the database until they are back", "error", err)
			continue
		}
		if n.Channel == eventsChannel {
			if f := c.watch.Load(); f != nil {
				(*f)(n.Payload)
			}
			continue
		}
		c.notices.Add(1)
		if i, err := strconv.Atoi(n.Payload); err == nil && i >= 0 && i < len(c.counters) {
			c.counters[i].Add(1)
		}
	}
}

func (c *changes) stop() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
			<-c.done
		}
	})
}

// notify announces, in tx, a change to the row of slot; changed bumps its
// counter here once the transaction has ended (committed or not).
func notify(ctx context.Context, tx *sql.Tx, s int) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, strconv.Itoa(s))
	return err
}

func (c *changes) changed(s int) {
	if c != nil {
		c.counters[s].Add(1)
	}
}

// version loads the counters of slots before a read; ok is false when the
// read must go to the database.
func (db *DB) version(slots ...int) (v uint64, ok bool) {
	c := db.changes
	if c == nil || db.noCache || !c.listening.Load() {
		return 0, false
	}
	v = c.epoch.Load() << 40
	for _, s := range slots {
		v += c.counters[s].Load()
	}
	return v, true
}

type readCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]cached[V]
}

type cached[V any] struct {
	version uint64
	at      time.Time
	v       V
}

func readThrough[K comparable, V any](db *DB, c *readCache[K, V], key K, query func() (V, error), slots ...int) (V, error) {
	version, cache := db.version(slots...)
	if cache {
		if v, ok := c.get(key, version, db.ttl); ok {
			return v, nil
		}
	}
	at := time.Now()
	v, err := query()
	if err == nil && cache {
		c.put(key, version, at, v)
	}
	return v, err
}

func (c *readCache[K, V]) get(k K, version uint64, ttl time.Duration) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.version != version || time.Since(e.at) >= ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *readCache[K, V]) put(k K, version uint64, at time.Time, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheMax {
		c.m = make(map[K]cached[V])
	}
	c.m[k] = cached[V]{version: version, at: at, v: v}
}

// WatchEvents calls f with the session of each batch of events committed
// by any broker on the database (store.EventWatcher).
func (db *DB) WatchEvents(f func(sessionID string)) {
	if db.changes != nil {
		db.changes.watch.Store(&f)
	}
}
