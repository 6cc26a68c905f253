package proxy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxKeyFile bounds a key file.
const maxKeyFile = 64 << 10

// Errors of LoadKey.
var (
	// ErrNoKey: neither the environment variable nor the file gives a key.
	ErrNoKey = errors.New("proxy: no key")
	// ErrKeyFileMode: the key file can be read or written by group or others.
	ErrKeyFileMode = errors.New("proxy: key file is accessible to others")
	// ErrBadKey: the key is empty or holds characters a header cannot carry.
	ErrBadKey = errors.New("proxy: malformed key")
)

// LoadKey reads a platform key for an upstream: from the environment
// variable envName when it is set and not empty, else from filePath. The
// file must be a regular file that neither group nor others can access
// (mode 0600 or stricter: ErrKeyFileMode otherwise); surrounding white
// space is trimmed. Either argument may be empty to skip that source;
// nothing found is ErrNoKey. Errors name the variable and the file, never
// the key.
func LoadKey(envName, filePath string) (string, error) {
	if envName != "" {
		if v := os.Getenv(envName); v != "" {
			k, err := checkKey(v)
			if err != nil {
				return "", fmt.Errorf("%w (environment variable %s)", err, envName)
			}
			return k, nil
		}
	}
	if filePath == "" {
		if envName == "" {
			return "", fmt.Errorf("%w: no environment variable or file given", ErrNoKey)
		}
		return "", fmt.Errorf("%w: %s is not set", ErrNoKey, envName)
	}
	f, err := os.Open(filePath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && envName != "" {
			return "", fmt.Errorf("%w: %s is not set and %w", ErrNoKey, envName, err)
		}
		return "", fmt.Errorf("proxy: read key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("proxy: read key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("proxy: read key: %s is not a regular file", filePath)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrKeyFileMode, filePath, perm, filePath)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("proxy: read key %s: %w", filePath, err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%w: %s is larger than %d bytes", ErrBadKey, filePath, maxKeyFile)
	}
	k, err := checkKey(string(b))
	if err != nil {
		return "", fmt.Errorf("%w (file %s)", err, filePath)
	}
	return k, nil
}

// checkKey trims a key and refuses an empty one or one with characters
// outside printable ASCII (a header value cannot carry them; a newline
// would inject a header).
func checkKey(k string) (string, error) {
	k = strings.TrimSpace(k)
	if k == "" {
		return "", fmt.Errorf("%w: empty", ErrBadKey)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("%w: it holds a space, a control or a non-ASCII character", ErrBadKey)
		}
	}
	return k, nil
}
