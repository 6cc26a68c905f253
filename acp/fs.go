package acp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// serveFS answers fs/read_text_file and fs/write_text_file. Paths must be
// absolute and inside the working directory of the session they name:
// the check resolves symlinks of the longest existing prefix
// (filepath.EvalSymlinks) and the file is then opened through an os.Root
// of that directory, so neither ".." nor a symlink (even one swapped in
// after the check) reaches outside.
func (c *Conn) serveFS(method string, params json.RawMessage) (any, error) {
	switch method {
	case MethodFSReadTextFile:
		var req ReadTextFileRequest
		if err := json.Unmarshal(params, &req); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidParams, method, err)
		}
		content, err := c.readTextFile(req)
		if err != nil {
			return nil, err
		}
		return ReadTextFileResponse{Content: content}, nil
	case MethodFSWriteTextFile:
		var req WriteTextFileRequest
		if err := json.Unmarshal(params, &req); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidParams, method, err)
		}
		if err := c.writeTextFile(req); err != nil {
			return nil, err
		}
		return WriteTextFileResponse{}, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrMethodNotFound, method)
}

// resolve maps an absolute path to a path relative to the session's root.
func (c *Conn) resolve(sessionID, path string) (*os.Root, string, error) {
	s, ok := c.session(sessionID)
	if !ok {
		return nil, "", fmt.Errorf("%w %q", ErrUnknownSession, sessionID)
	}
	if path == "" || !filepath.IsAbs(path) {
		return nil, "", fmt.Errorf("%w: path %q is not absolute", ErrInvalidParams, path)
	}
	if strings.ContainsRune(path, 0) {
		return nil, "", fmt.Errorf("%w: path contains NUL", ErrInvalidParams)
	}
	path = filepath.Clean(path)
	rel, ok := within(s.cwd, path)
	if !ok && s.realCwd != "" {
		rel, ok = within(s.realCwd, path)
	}
	if !ok {
		return nil, "", fmt.Errorf("%w: %s is not under %s", ErrOutsideWorkDir, path, s.cwd)
	}
	// Resolve the longest existing prefix and check that it stays inside;
	// os.Root then opens the resolved path (it refuses absolute symlinks,
	// even those pointing inside, and catches a symlink swapped in later).
	if s.realCwd != "" {
		probe, suffix := filepath.Join(s.realCwd, rel), ""
		for {
			real, err := filepath.EvalSymlinks(probe)
			if err == nil {
				r, in := within(s.realCwd, real)
				if !in {
					return nil, "", fmt.Errorf("%w: %s resolves to %s", ErrOutsideWorkDir, path, real)
				}
				rel = filepath.Join(r, suffix)
				break
			}
			parent := filepath.Dir(probe)
			if parent == probe || !errors.Is(err, fs.ErrNotExist) {
				break
			}
			suffix = filepath.Join(filepath.Base(probe), suffix)
			probe = parent
		}
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, "", fmt.Errorf("acp: open working directory %s: %w", s.cwd, err)
	}
	return root, rel, nil
}

// within reports whether path is dir or under it, and the relative path.
func within(dir, path string) (string, bool) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return rel, true
}

// rootErr names escapes that os.Root caught (a symlink swapped in after
// the check) as ErrOutsideWorkDir.
func rootErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "escapes") {
		return fmt.Errorf("%w: %s %s: %v", ErrOutsideWorkDir, op, path, err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("acp: %s %s: %w", op, path, pe.Err)
	}
	return fmt.Errorf("acp: %s %s: %w", op, path, err)
}

func (c *Conn) readTextFile(req ReadTextFileRequest) (string, error) {
	root, rel, err := c.resolve(req.SessionID, req.Path)
	if err != nil {
		return "", err
	}
	if req.Line != nil && *req.Line < 0 {
		return "", fmt.Errorf("%w: line %d", ErrInvalidParams, *req.Line)
	}
	if req.Limit != nil && *req.Limit < 0 {
		return "", fmt.Errorf("%w: limit %d", ErrInvalidParams, *req.Limit)
	}
	fi, err := root.Stat(rel)
	if err != nil {
		return "", rootErr("read", req.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrInvalidParams, req.Path)
	}
	max := c.opts.MaxReadBytes
	whole := req.Line == nil && req.Limit == nil
	if whole && fi.Size() > int64(max) {
		return "", fmt.Errorf("%w: %s is %d bytes, over the read limit of %d; read it in parts with line and limit",
			ErrTooLarge, req.Path, fi.Size(), max)
	}
	f, err := root.Open(rel)
	if err != nil {
		return "", rootErr("read", req.Path, err)
	}
	defer f.Close()
	if whole {
		b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
		if err != nil {
			return "", rootErr("read", req.Path, err)
		}
		if len(b) > max {
			return "", fmt.Errorf("%w: %s grew over the read limit of %d bytes", ErrTooLarge, req.Path, max)
		}
		return string(b), nil
	}
	first := 1
	if req.Line != nil && *req.Line > 0 {
		first = *req.Line
	}
	limit := -1
	if req.Limit != nil {
		limit = *req.Limit
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var out bytes.Buffer
	for n := 1; limit != 0; n++ {
		var err error
		if n < first { // skip without keeping the line
			for {
				_, err = br.ReadSlice('\n')
				if !errors.Is(err, bufio.ErrBufferFull) {
					break
				}
			}
		} else {
			for {
				var chunk []byte
				chunk, err = br.ReadSlice('\n')
				out.Write(chunk)
				if out.Len() > max {
					return "", fmt.Errorf("%w: lines %d.. of %s are over the read limit of %d bytes; ask for fewer lines",
						ErrTooLarge, first, req.Path, max)
				}
				if !errors.Is(err, bufio.ErrBufferFull) {
					break
				}
			}
			if limit > 0 {
				limit--
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", rootErr("read", req.Path, err)
		}
	}
	return out.String(), nil
}

func (c *Conn) writeTextFile(req WriteTextFileRequest) error {
	if len(req.Content) > c.opts.MaxWriteBytes {
		return fmt.Errorf("%w: %d bytes for %s, over the write limit of %d", ErrTooLarge, len(req.Content), req.Path, c.opts.MaxWriteBytes)
	}
	root, rel, err := c.resolve(req.SessionID, req.Path)
	if err != nil {
		return err
	}
	if rel == "." {
		return fmt.Errorf("%w: %s is the working directory", ErrInvalidParams, req.Path)
	}
	if fi, err := root.Stat(rel); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s exists and is not a regular file", ErrInvalidParams, req.Path)
	}
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return rootErr("create directory for", req.Path, err)
		}
	}
	return rootErr("write", req.Path, root.WriteFile(rel, []byte(req.Content), 0o644))
}
