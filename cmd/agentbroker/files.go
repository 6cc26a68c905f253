package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/internal/secretfile"
	"github.com/agentbroker/agentbroker/tokens"
)

// AdminTokenFile is the admin token's name inside the data directory.
const AdminTokenFile = "admin-token"

// ensureAdminToken keeps a valid admin token in the data directory: it
// reuses the one there while it verifies and has more than a tenth of ttl
// left, and mints a new one otherwise. It reports the file's path and
// whether it wrote a new token. The token itself is never returned to the
// caller's log.
func ensureAdminToken(ctx context.Context, svc *tokens.Service, dataDir string, ttl time.Duration) (string, bool, error) {
	path := filepath.Join(dataDir, AdminTokenFile)
	if raw, err := readSecretFile(path); err == nil {
		claims, verr := svc.Verify(ctx, raw, tokens.AudienceAdmin)
		if verr == nil && time.Until(claims.ExpiresAt) > ttl/10 {
			return path, false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	raw, _, err := svc.Mint(ctx, tokens.Grant{
		Subject:  "admin",
		Audience: tokens.AudienceAdmin,
		Scopes:   []tokens.Scope{tokens.ScopeAdmin},
		Lifetime: ttl,
	})
	if err != nil {
		return "", false, fmt.Errorf("mint admin token: %w", err)
	}
	if err := secretfile.Write(path, []byte(raw+"\n")); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	return path, true, nil
}

// maxSecretFile bounds every secret file we read.
const maxSecretFile = 64 << 10

// readSecretFile reads a small secret file, refusing symlinks and files
// others can read, and trims surrounding whitespace.
func readSecretFile(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := readLimited(path, maxSecretFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readLimited reads a file, refusing one larger than limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
