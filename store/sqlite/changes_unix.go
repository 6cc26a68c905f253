//go:build unix

package sqlite

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// openCounters maps the changes file at path, creating it (0600) when
// missing.
func openCounters(path string) (*counters, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open change counters %s: %w", path, err)
	}
	defer f.Close() // the mapping outlives the descriptor
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("change counters %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("change counters %s: not a regular file", path)
	}
	if size := fi.Size(); size < changesFileSize {
		// Grow it with written zeros, not a sparse truncate: a page of the
		// mapping with no block behind it would fault (SIGBUS) when first
		// written on a full disk. Only the missing tail is written, so the
		// counters another process already bumped are kept.
		if _, err := f.WriteAt(make([]byte, changesFileSize-size), size); err != nil {
			return nil, fmt.Errorf("change counters %s: %w", path, err)
		}
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, changesFileSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map change counters %s: %w", path, err)
	}
	// Never unmapped: a read may still be loading a counter when the
	// store closes, and the page is 4 KiB for the life of the process.
	return &counters{mem: mem}, nil
}

// counter is the i-th counter. The mapping is page-aligned, so each 8-byte
// slot is aligned for atomic access.
func (c *counters) counter(i int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[i*8]))
}
