package acp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func fsConn(t *testing.T, opts ConnOptions) (*Conn, string, string) {
	t.Helper()
	base := t.TempDir()
	cwd := filepath.Join(base, "work")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{cwd, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts.WorkDir = cwd
	c, _ := newPipeConn(t, &opts)
	c.addSession("s1", cwd, nil)
	return c, cwd, outside
}

func ptr(i int) *int { return &i }

func TestFSRead(t *testing.T) {
	t.Parallel()
	c, cwd, outside := fsConn(t, ConnOptions{MaxReadBytes: 64})
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(cwd, "a.txt"), "one\ntwo\nthree\nfour")
	write(filepath.Join(cwd, "big.txt"), strings.Repeat("0123456789\n", 20))
	write(filepath.Join(outside, "secret.txt"), "secret")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(cwd, "link-out")))
	must(os.Symlink(outside, filepath.Join(cwd, "dir-out")))
	must(os.Symlink(filepath.Join(cwd, "a.txt"), filepath.Join(cwd, "link-in")))
	must(syscall.Mkfifo(filepath.Join(cwd, "fifo"), 0o644))

	for _, tc := range []struct {
		name        string
		path        string
		abs         string
		line, limit *int
		want        string
		err         error
		code        int64
	}{
		{name: "whole", path: "a.txt", want: "one\ntwo\nthree\nfour"},
		{name: "line", path: "a.txt", line: ptr(2), want: "two\nthree\nfour"},
		{name: "line limit", path: "a.txt", line: ptr(2), limit: ptr(2), want: "two\nthree\n"},
		{name: "limit", path: "a.txt", limit: ptr(1), want: "one\n"},
		{name: "line 0 is 1", path: "a.txt", line: ptr(0), limit: ptr(1), want: "one\n"},
		{name: "past the end", path: "a.txt", line: ptr(10), want: ""},
		{name: "symlink inside", path: "link-in", limit: ptr(1), want: "one\n"},
		{name: "too big whole", path: "big.txt", err: ErrTooLarge, code: CodeInvalidParams},
		{name: "big in parts", path: "big.txt", line: ptr(20), limit: ptr(1), want: "0123456789\n"},
		{name: "parts too big", path: "big.txt", line: ptr(1), limit: ptr(10), err: ErrTooLarge},
		{name: "negative line", path: "a.txt", line: ptr(-1), err: ErrInvalidParams},
		{name: "missing", path: "nope.txt", code: CodeResourceNotFound},
		{name: "dot-dot", path: "../outside/secret.txt", err: ErrOutsideWorkDir, code: CodeInvalidParams},
		{name: "absolute outside", abs: filepath.Join(outside, "secret.txt"), err: ErrOutsideWorkDir},
		{name: "symlink out", path: "link-out", err: ErrOutsideWorkDir},
		{name: "through a dir symlink", path: "dir-out/secret.txt", err: ErrOutsideWorkDir},
		{name: "fifo", path: "fifo", err: ErrInvalidParams},
		{name: "directory", path: ".", err: ErrInvalidParams},
	} {
		p := filepath.Join(cwd, tc.path)
		if tc.abs != "" {
			p = tc.abs
		}
		if strings.HasPrefix(tc.path, "..") {
			p = cwd + "/" + tc.path // not cleaned by the caller
		}
		got, err := c.readTextFile(ReadTextFileRequest{SessionID: "s1", Path: p, Line: tc.line, Limit: tc.limit})
		switch {
		case tc.err == nil && tc.code == 0:
			if err != nil || got != tc.want {
				t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
			}
		default:
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
			}
			if tc.code != 0 && (err == nil || wireError(err).Code != tc.code) {
				t.Errorf("%s: err %v maps to %v, want code %d", tc.name, err, wireError(err), tc.code)
			}
			if strings.Contains(got, "secret") {
				t.Errorf("%s: read the secret", tc.name)
			}
		}
	}
	if _, err := c.readTextFile(ReadTextFileRequest{SessionID: "s1", Path: "a.txt"}); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("relative path: %v", err)
	}
	if _, err := c.readTextFile(ReadTextFileRequest{SessionID: "nope", Path: filepath.Join(cwd, "a.txt")}); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("unknown session: %v", err)
	}
}

func TestFSWrite(t *testing.T) {
	t.Parallel()
	c, cwd, outside := fsConn(t, ConnOptions{MaxWriteBytes: 32})
	if err := os.Symlink(outside, filepath.Join(cwd, "dir-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "victim.txt"), filepath.Join(cwd, "dangling-out")); err != nil {
		t.Fatal(err)
	}
	w := func(p, s string) error {
		return c.writeTextFile(WriteTextFileRequest{SessionID: "s1", Path: p, Content: s})
	}
	if err := w(filepath.Join(cwd, "new/dir/f.txt"), "hello"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(cwd, "new/dir/f.txt")); string(b) != "hello" {
		t.Fatalf("wrote %q", b)
	}
	if err := w(filepath.Join(cwd, "new/dir/f.txt"), "bye"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(cwd, "new/dir/f.txt")); string(b) != "bye" {
		t.Fatalf("overwrote with %q", b)
	}
	for _, tc := range []struct {
		name, path, content string
		err                 error
	}{
		{"too big", filepath.Join(cwd, "big.txt"), strings.Repeat("x", 33), ErrTooLarge},
		{"outside", filepath.Join(outside, "x.txt"), "x", ErrOutsideWorkDir},
		{"dot-dot", cwd + "/../outside/x.txt", "x", ErrOutsideWorkDir},
		{"through a dir symlink", filepath.Join(cwd, "dir-out/x.txt"), "x", ErrOutsideWorkDir},
		{"dangling symlink out", filepath.Join(cwd, "dangling-out"), "x", ErrOutsideWorkDir},
		{"the cwd itself", cwd, "x", ErrInvalidParams},
	} {
		if err := w(tc.path, tc.content); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("files were written outside: %v", ents)
	}
}

func TestWireError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		code int64
	}{
		{ErrMethodNotFound, CodeMethodNotFound},
		{ErrOutsideWorkDir, CodeInvalidParams},
		{ErrTooLarge, CodeInvalidParams},
		{ErrInvalidParams, CodeInvalidParams},
		{ErrUnknownSession, CodeInvalidParams},
		{os.ErrNotExist, CodeResourceNotFound},
		{ErrAuthRequired, CodeAuthRequired},
		{&RPCError{Code: -32042}, -32042},
		{errors.New("disk on fire"), CodeInternalError},
	} {
		if got := wireError(tc.err); got.Code != tc.code || got.Message == "" {
			t.Errorf("%v -> %v, want %d", tc.err, got, tc.code)
		}
	}
	e := &RPCError{Method: "session/new", Code: CodeAuthRequired, Message: "Authentication required"}
	if !errors.Is(e, ErrAuthRequired) || errors.Is(e, ErrMethodNotFound) {
		t.Fatal("RPCError.Is")
	}
}
