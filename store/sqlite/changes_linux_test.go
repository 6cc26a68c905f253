package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A full disk must not crash the process through the counters' mapping:
// had the file been grown sparse, the first write to a counter's page on a
// full filesystem would fault (SIGBUS) instead of failing. Needs root (a
// tmpfs mount); CI runs as root.
func TestCountersOnFullDisk(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root on Linux): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.changes == nil {
		t.Fatal("no change counters")
	}
	// Fill the filesystem.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	f.Close()
	// Bump every counter (a write to every page of the mapping): the
	// writes may fail for want of space, the process must not.
	for i := range numTables * stripes {
		db.changes.changed(i)
	}
	for i := range 50 {
		db.RevokeToken(ctx, fmt.Sprintf("j%d", i), time.Now().Add(time.Hour)) // may fail: the disk is full
	}
	if _, err := db.IsRevoked(ctx, "j0", ""); err != nil {
		t.Fatalf("a read on a full disk: %v", err)
	}
}
