package profile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxExistingFile bounds an existing file Prepare merges into.
const maxExistingFile = 1 << 20

// Prepare checks the session directory, the working directory and the
// install, creates Dirs (0700) and writes Files (0600) atomically, merging
// into existing files where a File says so. Call it before the agent starts,
// on every start: it is idempotent, and a second run writes the same bytes.
func (l *Launch) Prepare() error {
	if err := l.prepare(); err != nil {
		return fmt.Errorf("prepare %s launch: %w", l.Profile, err)
	}
	return nil
}

// PrepareLoad readies the agent's own files for session/load of the ACP
// session acpID, where its profile knows they need it (Gemini CLI); call
// it after Prepare, before a relaunch that resumes. It does nothing for
// other profiles.
func (l *Launch) PrepareLoad(acpID string) error {
	if l.loadPrep == nil {
		return nil
	}
	if err := l.loadPrep(l.home, acpID); err != nil {
		return fmt.Errorf("prepare %s launch for session/load: %w", l.Profile, err)
	}
	return nil
}

// CheckInstall reports, as an error wrapping ErrNotInstalled that says how
// to install it, an adapter whose entry point is missing; nil when it is
// there or the launch runs a command of its own. Prepare checks it too; a
// caller checks it earlier to refuse a session before anything is started.
func (l *Launch) CheckInstall() error {
	if l.requires == "" {
		return nil
	}
	for _, f := range append([]string{l.requires}, l.alsoRequires...) {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: %s is missing (%s)", ErrNotInstalled, f, l.install)
		}
	}
	return nil
}

func (l *Launch) prepare() error {
	fi, err := os.Lstat(l.sessionDir)
	switch {
	case err != nil:
		return fmt.Errorf("%w: session directory: %v", ErrBadValue, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: session directory %s is not a directory", ErrBadValue, l.sessionDir)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%w: session directory %s has mode %04o: create it 0700", ErrBadValue, l.sessionDir, fi.Mode().Perm())
	}
	if fi, err := os.Stat(l.Dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: working directory %s is not a directory", ErrBadValue, l.Dir)
	}
	if err := l.CheckInstall(); err != nil {
		return err
	}
	// Every merge and check runs before anything is written, so that a
	// refused config leaves no half-prepared session behind.
	contents := make([][]byte, len(l.Files))
	keep := make([]bool, len(l.Files))
	for i, f := range l.Files {
		var err error
		if contents[i], keep[i], err = l.content(f); err != nil {
			return err
		}
	}
	for _, d := range l.Dirs {
		if err := l.mkdir(d); err != nil {
			return err
		}
	}
	for i, f := range l.Files {
		if err := l.write(f, contents[i], keep[i]); err != nil {
			return err
		}
	}
	return nil
}

// content returns what to write for f: Content, or Content merged into the
// existing file; keep reports an existing file to keep as it is.
func (l *Launch) content(f File) (data []byte, keep bool, err error) {
	if !l.inside(f.Path) {
		return nil, false, fmt.Errorf("%w: %s is outside the session directory", ErrBadValue, f.Path)
	}
	existing, exists, err := readExisting(f.Path)
	switch {
	case err != nil:
		return nil, false, err
	case exists && f.KeepExisting:
		return nil, true, nil
	case exists && f.merge != nil:
		c, err := f.merge(existing)
		if err != nil {
			return nil, false, fmt.Errorf("merge into %s: %w", f.Path, err)
		}
		return c, false, nil
	}
	return f.Content, false, nil
}

// inside reports whether p is the session directory or below it.
func (l *Launch) inside(p string) bool {
	rel, err := filepath.Rel(l.sessionDir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// mkdir creates d (and its parents inside the session directory) as 0700
// directories and refuses a symlink in its place.
func (l *Launch) mkdir(d string) error {
	if !l.inside(d) {
		return fmt.Errorf("%w: %s is outside the session directory", ErrBadValue, d)
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", d, err)
	}
	fi, err := os.Lstat(d)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrBadValue, d)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

func (l *Launch) write(f File, content []byte, keep bool) error {
	dir := filepath.Dir(f.Path)
	if err := l.mkdir(dir); err != nil {
		return err
	}
	if keep {
		return os.Chmod(f.Path, f.Mode.Perm())
	}
	tmp, err := os.CreateTemp(dir, ".agentbroker-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	if err := tmp.Chmod(f.Mode.Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return nil
}

// readExisting reads a regular file of bounded size; a symlink or another
// kind of file in its place is an error.
func readExisting(path string) (content []byte, exists bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%w: %s exists and is not a regular file", ErrBadValue, path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer fh.Close()
	content, err = io.ReadAll(io.LimitReader(fh, maxExistingFile+1))
	if err != nil {
		return nil, false, err
	}
	if len(content) > maxExistingFile {
		return nil, false, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadValue, path, maxExistingFile)
	}
	return content, true, nil
}
