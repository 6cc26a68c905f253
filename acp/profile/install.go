package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxPackageJSON bounds an installed package.json read by Installed.
const maxPackageJSON = 1 << 20

// PackageName is the npm package's name without its version ("" when the
// profile installs nothing).
func (p Profile) PackageName() string {
	if i := strings.LastIndex(p.Package, "@"); i > 0 {
		return p.Package[:i]
	}
	return p.Package
}

// Version is the pinned version of the profile's package, or "".
func (p Profile) Version() string { return packageVersion(p.Package) }

// requiredFiles are the files an install in dir must provide.
func (p Profile) requiredFiles(dir string) []string {
	out := []string{filepath.Join(dir, filepath.FromSlash(p.Entry))}
	for _, f := range p.alsoInstalled {
		out = append(out, filepath.Join(dir, filepath.FromSlash(f)))
	}
	return out
}

// Installed reports whether the profile's adapter is installed in dir at
// its pinned version, and when not, why.
func (p Profile) Installed(dir string) (bool, string) {
	if !p.Installable() {
		return false, "configured by command"
	}
	for _, f := range p.requiredFiles(dir) {
		if _, err := os.Stat(f); err != nil {
			rel, _ := filepath.Rel(dir, f)
			return false, "missing " + rel
		}
	}
	fh, err := os.Open(filepath.Join(dir, "node_modules", filepath.FromSlash(p.PackageName()), "package.json"))
	if err != nil {
		return false, "no package.json: " + err.Error()
	}
	defer fh.Close()
	var pj struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(io.LimitReader(fh, maxPackageJSON)).Decode(&pj); err != nil {
		return false, "unreadable package.json: " + err.Error()
	}
	if pj.Version != p.Version() {
		return false, fmt.Sprintf("version %s installed, %s pinned", pj.Version, p.Version())
	}
	return true, ""
}

// PostInstall is a command to run once after npm installed the package,
// or nil. Copilot's native binary unpacks its package into the shared
// cache (COPILOT_PKG_CACHE_HOME) that sessions then read.
type PostInstall struct {
	Path string
	Args []string
	Env  []string // complete environment, no secret
	What string
}

// PostInstallFor returns the profile's post-install step for dir, or nil.
func (p Profile) PostInstallFor(dir string) *PostInstall {
	if p.postInstall == nil {
		return nil
	}
	return p.postInstall(p, dir)
}

// copilotPostInstall runs Copilot's binary once to unpack its package into
// the shared cache.
func copilotPostInstall(p Profile, dir string) *PostInstall {
	return &PostInstall{
		Path: filepath.Join(dir, filepath.FromSlash(p.Entry)),
		Args: []string{"--binary-version"},
		Env: []string{"PATH=" + DefaultPATH, "HOME=" + filepath.Join(dir, ".cache", "copilot-home"),
			"COPILOT_SEA_EXTRACT_ONLY=1", "COPILOT_PKG_CACHE_HOME=" + filepath.Join(dir, CopilotPkgCache)},
		What: "unpack Copilot's package into the shared cache " + filepath.Join(dir, CopilotPkgCache),
	}
}
