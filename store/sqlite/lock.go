package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFileName is the file in a data directory that one serving broker
// holds locked (flock) for as long as it runs, with its pid inside.
const LockFileName = "serve.lock"

// ErrLocked: another process holds the data directory.
var ErrLocked = errors.New("the data directory is in use")

// LockedError says who holds the data directory.
type LockedError struct {
	Dir string
	PID int // 0 when the holder did not say
}

func (e *LockedError) Error() string {
	who := "another broker"
	if e.PID > 0 {
		who = fmt.Sprintf("another broker (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s serves the data directory %s: one broker per SQLite data directory (stop it, or give this one its own --data-dir)", who, e.Dir)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// LockServe makes this process the one broker that serves dir, until
// release is called or the process ends (the kernel drops the lock of a
// dead process, so a broker killed with SIGKILL does not leave it held).
// The CLI's commands that open the store while a broker runs do not take
// it.
func LockServe(dir string) (release func(), err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// openLockName serializes, across processes, the first connection to a
// database (which sets WAL mode) and its migrations: SQLite answers a
// second process doing the same at that moment SQLITE_BUSY at once,
// without waiting for its busy timeout.
const openLockName = "open.lock"

// withOpenLock runs fn holding dir's open lock, waiting for it at most
// wait (polling: a blocking flock cannot be cancelled).
func withOpenLock(ctx context.Context, dir string, wait time.Duration, fn func() error) error {
	f, err := os.OpenFile(filepath.Join(dir, openLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer f.Close()
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("open store: lock %s: %w", openLockName, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("open store: another process kept %s for %s", filepath.Join(dir, openLockName), wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("open store: %w", context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
