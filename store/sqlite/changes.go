package sqlite

import (
	"hash/fnv"
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
// store: for each watched table a row of counters (stripes), one of which
// a row's key hashes to, bumped by whichever process wrote that row, after
// its commit. A read loads the counters of the rows it depends on before it
// queries and files its answer under their sum (they only grow, so the sum
// changes when any does); an answer filed under an older value is never
// used. So a write that has returned is seen by every read that starts
// after it, in any process, at the cost of an atomic load or two: the same
// arrangement SQLite's own WAL index uses. Striping keeps a write from
// emptying the whole cache: an update of one task leaves the other tasks'
// answers valid.
//
// A writer that bypasses this package (the sqlite3 shell) or dies between
// its commit and its bump would go unseen: answers are also dropped after
// cacheTTL, which bounds that.

// ChangesSuffix names the change counters' file: FileName+ChangesSuffix.
const ChangesSuffix = "-changes"

// The watched tables, each a row of stripes counters (8 bytes each) in the
// changes file.
const (
	changedRevocations = iota // keyed by jti, and by session ID
	changedTasks              // keyed by project ID and task ID
	numTables
)

const stripes = 128

// Every table's stripes fit in the file (a negative length does not compile).
var _ [changesFileSize - numTables*stripes*8]struct{}

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

// slot is the counter of the row of table whose key is parts.
func slot(table int, parts ...string) int {
	h := fnv.New32a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return table*stripes + int(h.Sum32()%stripes)
}

// version loads the counters of slots before a read; ok is false when the
// read must go to the database.
func (db *DB) version(slots ...int) (v uint64, ok bool) {
	if db.changes == nil || db.noCache {
		return 0, false
	}
	for _, s := range slots {
		v += db.changes.counter(s).Load()
	}
	return v, true
}

// changed bumps the counter of slot after a write to its row, committed or
// not.
func (c *counters) changed(slot int) {
	if c != nil {
		c.counter(slot).Add(1)
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

// readThrough answers key from c while the counters of slots are
// unchanged, and from query otherwise (errors are not kept).
func readThrough[K comparable, V any](db *DB, c *readCache[K, V], key K, query func() (V, error), slots ...int) (V, error) {
	version, cache := db.version(slots...)
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
