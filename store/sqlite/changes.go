package sqlite

import (
	"sync"
	"time"
)

// The two reads every MCP tool call makes (is this token revoked? the
// task) are answered from memory while nothing has changed, in this process
// or in another one on the same data directory (the CLI writes the same
// database while `serve` runs).
//
// What "changed" means is kept in a small file beside the database,
// FileName+ChangesSuffix, mapped shared into every process that opens the
// store: one counter per watched table, bumped by whichever process wrote
// the table, after its commit. A read loads the counter before it queries
// and files its answer under that value; an answer filed under an older
// value is never used. So a write that has returned is seen by every
// read that starts after it, in any process, at the cost of one atomic
// load: the same arrangement SQLite's own WAL index uses.
//
// A writer that bypasses this package (the sqlite3 shell) or dies between
// its commit and its bump would go unseen: answers are also dropped after
// cacheTTL, which bounds that.

// ChangesSuffix names the change counters' file: FileName+ChangesSuffix.
const ChangesSuffix = "-changes"

// The watched tables, each one counter (8 bytes) in the changes file.
const (
	changedRevocations = iota
	changedTasks
	numCounters
)

const (
	// changesFileSize is the size the file is given: one page, room for
	// the counters of later tables.
	changesFileSize = 4096
	// cacheTTL bounds how long an answer is used, changes seen or not.
	cacheTTL = 2 * time.Second
	// cacheMax bounds each cache; when full it starts again, empty.
	cacheMax = 8192
)

// counters is the mapped changes file. A nil *counters (the mapping is not
// available on this platform, or failed) makes every read go to the
// database.
type counters struct {
	mem []byte
}

// version loads counter i before a read; ok is false when the read must go
// to the database.
func (c *counters) version(i int) (v uint64, ok bool) {
	if c == nil {
		return 0, false
	}
	return c.counter(i).Load(), true
}

// version is counters.version, unless the cache is off.
func (db *DB) version(i int) (uint64, bool) {
	if db.noCache {
		return 0, false
	}
	return db.changes.version(i)
}

// changed bumps counter i after a write to its table, committed or not.
func (c *counters) changed(i int) {
	if c != nil {
		c.counter(i).Add(1)
	}
}

// readCache holds answers of one kind, each filed under the counter value
// loaded before its query.
type readCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]cached[V]
}

type cached[V any] struct {
	version uint64
	at      time.Time
	v       V
}

// readThrough answers key from c while counter i is unchanged, and from
// query otherwise (errors are not kept).
func readThrough[K comparable, V any](db *DB, i int, c *readCache[K, V], key K, query func() (V, error)) (V, error) {
	version, cache := db.version(i)
	if cache {
		if v, ok := c.get(key, version); ok {
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

func (c *readCache[K, V]) get(k K, version uint64) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.version != version || time.Since(e.at) >= cacheTTL {
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
