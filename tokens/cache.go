package tokens

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// verifyCache remembers the claims of verified tokens, keyed by the SHA-256
// of the raw token (never the token itself). It is a bounded LRU: a hit
// moves the entry to the front, a put beyond the capacity evicts the least
// recently used entry, and the service removes an entry it finds expired or
// signed by a key no longer known. Claims are values, so what a caller does
// with its copy cannot change the cache.
type verifyCache struct {
	mu      sync.Mutex
	cap     int
	order   *list.List // front: most recently used; values are *cacheEntry
	entries map[[sha256.Size]byte]*list.Element
}

type cacheEntry struct {
	key    [sha256.Size]byte
	claims Claims
}

func newVerifyCache(capacity int) *verifyCache {
	return &verifyCache{
		cap:     capacity,
		order:   list.New(),
		entries: make(map[[sha256.Size]byte]*list.Element, min(capacity, 1024)),
	}
}

func (c *verifyCache) get(key [sha256.Size]byte) (Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return Claims{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).claims, true
}

func (c *verifyCache) put(key [sha256.Size]byte, claims Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		el.Value.(*cacheEntry).claims = claims
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.cap {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, claims: claims})
}

func (c *verifyCache) remove(key [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.Remove(el)
		delete(c.entries, key)
	}
}

func (c *verifyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
