package sandbox_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/agentbroker/agentbroker/acp/sandbox"
)

// FuzzDecodePolicy: whatever reaches the launcher's fd 3, it never panics,
// and what it accepts is a valid policy: absolute clean paths, no root.
func FuzzDecodePolicy(f *testing.F) {
	good, _ := json.Marshal(map[string]any{"policy": sandbox.Policy{Read: sandbox.SystemRead, Write: []string{"/tmp/x"},
		RestrictNet: true, ConnectTCP: []uint16{7420}, User: &sandbox.User{Name: "nobody", UID: 65534, GID: 65534}}})
	for _, seed := range []string{string(good), `{}`, `{"policy":{"write":["rel"]}}`, `{"policy":{"user":{"uid":0,"gid":0}}}`,
		`{"policy":{}}{"policy":{}}`, `{"policy":{"read":["/a/../b"]}}`, `{"extra":1}`, `[`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := sandbox.DecodePolicy(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted an invalid policy: %v", err)
		}
		for _, list := range [][]string{p.Read, p.Write, p.Devices} {
			for _, path := range list {
				if !filepath.IsAbs(path) || filepath.Clean(path) != path {
					t.Fatalf("accepted path %q", path)
				}
			}
		}
		if p.User != nil && (p.User.UID == 0 || p.User.GID == 0) {
			t.Fatalf("accepted root: %+v", p.User)
		}
	})
}
