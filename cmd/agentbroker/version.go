package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is stamped at build time: go build -ldflags "-X main.version=v1.2.3".
// Left "dev", the module version from the build info stands in: the tag
// for `go install …@v1.2.3`, a pseudo-version for a build in a checkout.
var version = "dev"

func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(version, bi)
}

// versionFrom is the version line: the stamped version, else the main
// module's, then the VCS revision, the Go version and the platform.
func versionFrom(stamped string, bi *debug.BuildInfo) string {
	v := stamped
	rev, dirty := "", false
	if bi != nil {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	s := "agentbroker " + v
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && !strings.Contains(v, rev) {
		s += " (" + rev
		if dirty {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version (also: agentbroker --version)",
		run: func(_ context.Context, _ *config, e *env, args []string) error {
			if len(args) > 0 {
				return usageError(e, "version takes no arguments")
			}
			fmt.Fprintln(e.stdout, versionString())
			return nil
		},
	}
}
