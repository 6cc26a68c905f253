package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentbroker/agentbroker/sessions"
	"github.com/agentbroker/agentbroker/store/sqlite"
)

// smallFS mounts a tmpfs of size bytes at a new directory (as root on
// Linux); it skips the test, saying why, where that cannot be done.
func smallFS(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root on Linux): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v %s", dir, mode, err, out)
	}
}

// fill writes a ballast file until the filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// The last partial blocks too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// integrity runs PRAGMA integrity_check on a broker's database, read-only.
func integrity(t *testing.T, dataDir string) string {
	t.Helper()
	u := url.URL{Scheme: "file", Path: filepath.Join(dataDir, sqlite.FileName), RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res []string
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return "integrity_check: " + err.Error()
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		rows.Scan(&s)
		res = append(res, s)
	}
	return strings.Join(res, "; ")
}

// TestStoreDiskFull runs a real broker on a tiny filesystem, fills it, and
// checks what a user sees: writes refused with a clear 5xx (no hang, no
// panic), reads and /healthz still answered, the database intact
// (integrity_check ok), nothing half-written, and writes working again
// once space returns. Then the same with the filesystem read-only.
func TestStoreDiskFull(t *testing.T) {
	t.Parallel()
	mnt := smallFS(t, 32<<20)
	dataDir := filepath.Join(mnt, "data")
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	admin := adminToken(t, dataDir)
	fx := newFixtures(t, b, admin)
	desc := strings.Repeat("d", 40<<10)
	countProjects := func() int {
		resp, body := b.do("GET", "/v1/projects", admin, nil)
		var l struct{ Projects []json.RawMessage }
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &l) != nil {
			t.Fatalf("list projects = %d %.300s", resp.StatusCode, body)
		}
		return len(l.Projects)
	}
	refused := func(when string) {
		t.Helper()
		before := countProjects()
		for i := range 50 { // the WAL may hold a few pages' worth still
			resp, body := b.do("POST", "/v1/projects", admin, strings.NewReader(fmt.Sprintf(`{"name":"p%d","description":%q}`, i, desc)))
			if resp.StatusCode == 201 {
				before++
				continue
			}
			msg, ok := jsonErrorMessage(body)
			t.Logf("%s: POST /v1/projects = %d %s", when, resp.StatusCode, msg)
			if resp.StatusCode < 500 || !ok {
				t.Fatalf("%s: POST /v1/projects = %d %.300s; want a 5xx with a JSON error", when, resp.StatusCode, body)
			}
			// A session's write path too: creating one records it first.
			resp, body = b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(
				`{"project":%q,"agent":"custom","credential":{"kind":"none"},"cwd":%q}`, fx.project, agentDir(t))))
			msg, ok = jsonErrorMessage(body)
			t.Logf("%s: POST /v1/sessions = %d %s", when, resp.StatusCode, msg)
			if resp.StatusCode < 500 || !ok {
				t.Fatalf("%s: POST /v1/sessions = %d %.300s; want a 5xx with a JSON error", when, resp.StatusCode, body)
			}
			if resp, body := b.do("GET", "/healthz", "", nil); resp.StatusCode != 200 {
				t.Fatalf("%s: /healthz = %d %s", when, resp.StatusCode, body)
			}
			if got := countProjects(); got != before {
				t.Fatalf("%s: %d projects listed; %d were acknowledged", when, got, before)
			}
			if res := integrity(t, dataDir); res != "ok" {
				t.Fatalf("%s: integrity_check: %s", when, res)
			}
			return
		}
		t.Fatalf("%s: 50 writes of 40 KiB accepted on a full disk", when)
	}
	recovered := func(when string) {
		t.Helper()
		before := countProjects()
		resp, body := b.do("POST", "/v1/projects", admin, strings.NewReader(`{"name":"after"}`))
		if resp.StatusCode != 201 {
			t.Fatalf("%s: POST /v1/projects = %d %.300s; want 201", when, resp.StatusCode, body)
		}
		if got := countProjects(); got != before+1 {
			t.Fatalf("%s: %d projects; want %d", when, got, before+1)
		}
		if res := integrity(t, dataDir); res != "ok" {
			t.Fatalf("%s: integrity_check: %s", when, res)
		}
	}

	live := newSessionOn(t, b, admin, fx.project, "")
	ballast := fill(t, mnt)
	refused("disk full")
	// A live session's prompt while the disk is full is refused (it
	// cannot be recorded), the session stays usable.
	code, res := live.prompt(t, "during the full disk", true)
	t.Logf("a prompt on a full disk: %d %v", code, res)
	if code != 507 || res["error"] != "insufficient_storage" {
		t.Fatalf("a prompt on a full disk = %d %v; want 507 insufficient_storage", code, res)
	}
	// A disk that fills during a turn: the turn ends, and the updates the
	// store refused are counted where a person sees them.
	if err := os.Truncate(ballast, fileSize(t, ballast)-256<<10); err != nil {
		t.Fatal(err)
	}
	if code, res := live.prompt(t, "fault:flood 20000", true); code != 200 {
		t.Fatalf("a flood filling the disk = %d %v", code, res)
	}
	in := live.info(t)
	t.Logf("a flood filling the disk: %s, %d events dropped", in.State, in.DroppedEvents)
	if in.DroppedEvents == 0 || in.State.Final() {
		t.Fatalf("after a turn that filled the disk: %s, dropped_events %d; want it live and counting", in.State, in.DroppedEvents)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	recovered("space back")
	live.waitFor(t, "between turns", func(in sessions.Info) bool {
		return in.State == sessions.StateIdle || in.State == sessions.StateReady
	})
	if code, res := live.prompt(t, "space is back", true); code != 200 || res["reply"] != "You said: space is back" {
		t.Fatalf("a turn after space returned = %d %v", code, res)
	}
	evs := live.events(t) // in order, without a gap (events checks)
	if last := ofType(evs, "turn_end"); len(last) == 0 {
		t.Fatalf("no turn_end in the log after space returned")
	}

	// Read-only: a filesystem with the database open for writing cannot be
	// remounted read-only (EBUSY), so the broker is killed, the filesystem
	// made read-only, and the broker started on it: it refuses to start,
	// saying why, and touches nothing; once writable again it starts with
	// everything there.
	projects := countProjects()
	b.cmd.Process.Kill()
	<-b.exited
	remount(t, mnt, "ro")
	cmd := exec.Command(binary, "serve")
	cmd.Env = []string{"HOME=" + t.TempDir(), "AGENTBROKER_LISTEN=127.0.0.1:0", "AGENTBROKER_DATA_DIR=" + dataDir}
	out, err := cmd.CombinedOutput()
	var xe *exec.ExitError
	if !errors.As(err, &xe) || !strings.Contains(string(out), "read-only") && !strings.Contains(string(out), "cannot open") && !strings.Contains(string(out), "writ") {
		t.Fatalf("serve on a read-only data directory: %v\n%s", err, out)
	}
	t.Logf("serve on a read-only data directory: %v: %s", err, lastLine(string(out)))
	remount(t, mnt, "rw")
	if res := integrity(t, dataDir); res != "ok" {
		t.Fatalf("after the read-only start: integrity_check: %s", res)
	}
	b = startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin)
	if got := countProjects(); got != projects {
		t.Fatalf("after the restart %d projects; %d were acknowledged", got, projects)
	}
	recovered("writable again")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
