// Package secretfile writes files that hold secrets: mode 0600 from the
// start, replaced atomically.
package secretfile

import (
	"os"
	"path/filepath"
)

// Write replaces path atomically with a 0600 file holding data: a temporary
// file beside it, synced, then renamed over it. A reader sees the old
// content or the new, never a part, and nobody else ever can.
func Write(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
