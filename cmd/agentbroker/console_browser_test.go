package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/fakemodel"
)

// The browser tests drive the web console in headless Chromium against a
// real `agentbroker serve` with the reference agent. They skip when no
// Chromium is installed, unless AGENTBROKER_BROWSER_TESTS=1 (CI), where a
// missing browser fails. AGENTBROKER_CHROMIUM names the browser (default:
// chromium on PATH); screenshots go to AGENTBROKER_ARTIFACTS, or to the
// test's artifact directory (kept with go test -artifacts).

func chromiumPath(t *testing.T) string {
	t.Helper()
	required := os.Getenv("AGENTBROKER_BROWSER_TESTS") == "1"
	name := os.Getenv("AGENTBROKER_CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		if required {
			t.Fatalf("AGENTBROKER_BROWSER_TESTS=1 but no browser: %v (apt-get install chromium)", err)
		}
		t.Skipf("no Chromium (%v); set AGENTBROKER_BROWSER_TESTS=1 to make this a failure", err)
	}
	return path
}

// relay stands between the browser and the broker, byte for byte, so that
// a test can drop the network: sever closes every connection from the
// server's side and refuses new ones until resume.
type relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	paused bool
	closed bool
}

// startRelay listens at once; it relays to the target set with to. The
// browser reaches the broker through it, so its origin is the relay's: the
// broker allows it (--allowed-origin), as it would a reverse proxy's.
func startRelay(t *testing.T) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, conns: map[net.Conn]struct{}{}}
	t.Cleanup(r.close)
	return r
}

// to starts relaying to target.
func (r *relay) to(target string) {
	r.mu.Lock()
	r.target = target
	r.mu.Unlock()
	r.wg.Go(r.accept)
}

func (r *relay) origin() string { return "http://" + r.ln.Addr().String() }

func (r *relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.paused || r.closed {
			r.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns[c], r.conns[up] = struct{}{}, struct{}{}
		r.wg.Go(func() { r.pipe(c, up) })
		r.wg.Go(func() { r.pipe(up, c) })
		r.mu.Unlock()
	}
}

func (r *relay) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

// sever drops every connection and refuses new ones.
func (r *relay) sever() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = true
	for c := range r.conns {
		c.Close()
	}
}

func (r *relay) resume() {
	r.mu.Lock()
	r.paused = false
	r.mu.Unlock()
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.sever()
	r.ln.Close()
	r.wg.Wait()
}

// page is one browser tab on the console, with what the test checks.
type page struct {
	t        *testing.T
	ctx      context.Context
	shots    string
	origin   string
	mu       sync.Mutex
	urls     []string // every request and WebSocket the page made
	ws       []string // WebSocket URLs, in order
	errors   []string // console errors and exceptions outside tolerated windows
	refused  int      // 401s from /v1/projects: the sign-in with a wrong token
	tolerate *atomic.Bool
}

func (p *page) listen() {
	err := chromedp.Listen(p.ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			p.urls = append(p.urls, ev.Request.URL)
		case *network.EventWebSocketCreated:
			p.urls = append(p.urls, ev.URL)
			p.ws = append(p.ws, ev.URL)
		case *runtime.EventExceptionThrown:
			p.errors = append(p.errors, "exception: "+ev.ExceptionDetails.Text+" "+exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				p.errors = append(p.errors, "console.error")
			}
		case *cdplog.EventEntryAdded:
			// Failed loads while the network is down are expected; a CSP
			// violation or anything else is not.
			network := ev.Entry.Source == cdplog.EntrySourceNetwork
			if network && strings.Contains(ev.Entry.Text, "status of 401") && strings.HasSuffix(ev.Entry.URL, "/v1/projects") {
				p.refused++
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError && !(p.tolerate.Load() && network) {
				p.errors = append(p.errors, fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		p.t.Fatalf("listen to the browser: %v", err)
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// set gives a form control a value and fires its change event, as a
// person's choice would.
func (p *page) set(id, value string) {
	p.t.Helper()
	ok := evalJS[bool](p, `(() => {
		const el = document.getElementById(`+strconv.Quote(id)+`);
		if (!el) return false;
		el.value = `+strconv.Quote(value)+`;
		el.dispatchEvent(new Event("input", {bubbles: true}));
		el.dispatchEvent(new Event("change", {bubbles: true}));
		return el.value === `+strconv.Quote(value)+`;
	})()`)
	if !ok {
		p.fail("could not set #%s to %q", id, value)
	}
}

// wait polls a JavaScript predicate until it is true.
func (p *page) wait(what, expr string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		p.fail("waiting for %s: %v", what, err)
	}
}

func evalJS[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// fail saves a screenshot and the page's text, then fails the test.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	p.screenshot("failure")
	text, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	p.t.Fatalf(format+"\npage text:\n%s", append(args, text)...)
}

func (p *page) screenshot(name string) {
	p.t.Helper()
	// A full-page capture draws what sticks to the window (the composer,
	// a pinned question) where the window's edge was: mid-page. They go
	// back to their place in the flow for the capture.
	const sticky = `document.querySelectorAll(".composer, .pinned").forEach((e) => { e.style.position = %q; })`
	chromedp.Run(p.ctx, chromedp.Evaluate[any](fmt.Sprintf(sticky, "static")))
	defer chromedp.Run(p.ctx, chromedp.Evaluate[any](fmt.Sprintf(sticky, "")))
	img, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(p.shots, name+".png")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
	}
}

// accessible checks that every control has an accessible name and that
// all visible text meets WCAG AA contrast.
func (p *page) accessible(where string) {
	p.t.Helper()
	unnamed := evalJS[[]string](p, `(() => {
		const name = (el) => {
			const aria = el.getAttribute("aria-label");
			if (aria && aria.trim()) return aria;
			const by = el.getAttribute("aria-labelledby");
			if (by) return by.split(/\s+/).map((id) => document.getElementById(id)?.textContent || "").join(" ").trim();
			if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(" ").trim();
			if (el.tagName === "BUTTON" || el.tagName === "A") return el.textContent.trim();
			return (el.getAttribute("title") || "").trim();
		};
		return [...document.querySelectorAll("input, select, textarea, button, a[href]")]
			.filter((el) => el.type !== "hidden" && !name(el)).map((el) => el.outerHTML.slice(0, 160));
	})()`)
	if len(unnamed) > 0 {
		p.fail("%s: controls without an accessible name: %q", where, unnamed)
	}
	lowContrast := evalJS[[]string](p, `(() => {
		const parse = (c) => {
			const m = c.match(/rgba?\(([^)]+)\)/);
			if (!m) return null;
			const v = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
			return { r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1 };
		};
		const lum = (c) => {
			const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
			return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
		};
		const background = (el) => {
			for (let e = el; e; e = e.parentElement) {
				const c = parse(getComputedStyle(e).backgroundColor);
				if (c && c.a > 0) return c;
			}
			return { r: 255, g: 255, b: 255, a: 1 };
		};
		const bad = [];
		const seen = new Set();
		const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
		for (let n = walk.nextNode(); n; n = walk.nextNode()) {
			const el = n.parentElement;
			if (!n.textContent.trim() || seen.has(el)) continue;
			seen.add(el);
			const cs = getComputedStyle(el);
			if (cs.visibility === "hidden" || !el.getClientRects().length) continue;
			const a = lum(parse(cs.color)), b = lum(background(el));
			const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
			const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
			const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
			if (ratio < need) bad.push(el.tagName + " " + JSON.stringify(n.textContent.trim().slice(0, 40)) + " " + ratio.toFixed(2));
		}
		return bad;
	})()`)
	if len(lowContrast) > 0 {
		p.fail("%s: text below WCAG AA contrast: %q", where, lowContrast)
	}
}

// noOverflow checks that nothing is wider than the viewport.
func (p *page) noOverflow(where string) {
	p.t.Helper()
	type dims struct{ Scroll, Inner int }
	d := evalJS[dims](p, `({Scroll: document.documentElement.scrollWidth, Inner: window.innerWidth})`)
	if d.Scroll > d.Inner {
		p.fail("%s: the page is %d px wide in a %d px viewport", where, d.Scroll, d.Inner)
	}
}

// seqs returns the sequence numbers of the rendered events, in DOM order.
func (p *page) seqs() []int64 {
	return evalJS[[]int64](p, `[...document.querySelectorAll("#events [data-seq]")].map((e) => Number(e.dataset.seq))`)
}

// contiguous checks that the rendered events are 1..last, each once.
func contiguous(t *testing.T, seqs []int64, last int64) {
	t.Helper()
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	for i, s := range sorted {
		if s != int64(i+1) {
			t.Fatalf("rendered events are not 1..%d, each once: at position %d there is %d (all: %v)", last, i, s, sorted)
		}
	}
	if int64(len(sorted)) != last {
		t.Fatalf("rendered %d events; the log has %d (%v)", len(sorted), last, sorted)
	}
}

type pickerOption struct {
	ID          string `json:"id"`
	Text        string `json:"text"`
	Status      string `json:"status"`
	Replacement string `json:"replacement"`
	Selected    bool   `json:"selected"`
}

// TestConsoleBrowser: sign in, browse a project, check the model picker
// against the catalog, start a session with the reference agent, watch the
// streamed reply and our MCP tool call, answer the permission request from
// the keyboard, survive a network drop without a gap or a duplicate, open
// the viewer link in another tab, stop the session; every page accessible,
// readable at 375 px, and nothing loaded from elsewhere.
func TestConsoleBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	shots := os.Getenv("AGENTBROKER_ARTIFACTS")
	if shots == "" {
		shots = t.ArtifactDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	override, err := filepath.Abs("testdata/console-catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	overrideData, err := os.ReadFile(override)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(overrideData)
	if err != nil {
		t.Fatal(err)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	// Amp is offered only with a command; the picker test needs it offered,
	// and its command exits at once: a session of it fails to start.
	rl := startRelay(t)
	origin := rl.origin()
	// Claude Code's adapter is the reference agent (claudeShimAgents), its
	// model calls go through the proxy to a fake upstream: the console
	// shows their cost.
	up := fakemodel.New(&fakemodel.Options{Usage: fakemodel.Usage{Input: 1000, Output: 500, CacheRead: 2000, CacheWrite: 300}})
	upURL, err := up.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	b := startBroker(t, dataDir, "AGENTBROKER_CUSTOM_AGENT="+refagentBin, "AGENTBROKER_CATALOG_FILE="+override,
		"AGENTBROKER_AMP_COMMAND=/bin/false", "AGENTBROKER_ALLOWED_ORIGIN="+origin,
		"AGENTBROKER_AGENTS_DIR="+claudeShimAgents(t), "AGENTBROKER_ANTHROPIC_UPSTREAM="+upURL, "ANTHROPIC_API_KEY="+fakemodel.DefaultAPIKey)
	rl.to(b.addr)
	admin := adminToken(t, dataDir)
	var proj, task, know struct{ ID string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(
		`{"name":"Console demo","description":"A project for the browser test","instructions":"Always answer in haiku."}`))
	json.Unmarshal([]byte(body), &proj)
	_, body = b.do("POST", "/v1/projects/"+proj.ID+"/tasks", admin, strings.NewReader(
		`{"title":"Fix the login bug","description":"the answer is marker-b7q2"}`))
	json.Unmarshal([]byte(body), &task)
	_, body = b.do("POST", "/v1/projects/"+proj.ID+"/knowledge", admin, strings.NewReader(
		`{"title":"Deploys","body":"We deploy on Tuesdays.","tags":["ops"]}`))
	json.Unmarshal([]byte(body), &know)
	if proj.ID == "" || task.ID == "" || know.ID == "" {
		t.Fatalf("fixtures not created: %+v %+v %+v", proj, task, know)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(browserCtx, 4*time.Minute)
	defer cancel()

	var tolerate atomic.Bool
	p := &page{t: t, ctx: ctx, shots: shots, origin: origin, tolerate: &tolerate}
	p.listen()

	// Sign in, with the keyboard.
	p.do("open the console", chromedp.Navigate(origin+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.accessible("sign-in")
	p.screenshot("01-sign-in")
	p.do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token\r"))
	p.wait("the refusal", `document.getElementById("signin-error")?.textContent.includes("not an admin token")`)
	p.set("token", "")
	p.do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), admin+"\r"))
	p.wait("the sessions page", `location.hash === "#/sessions" && document.querySelector("h1")?.textContent === "Sessions"`)
	if stored := evalJS[string](p, `sessionStorage.getItem("agentbroker.credential") || ""`); !strings.Contains(stored, admin) {
		t.Fatalf("the admin token is not in sessionStorage")
	}
	if n := evalJS[int](p, `localStorage.length`); n != 0 {
		t.Fatalf("the console wrote %d items to localStorage", n)
	}

	// The renderer, with events the reference agent does not produce; the
	// stream, with closes the test cannot cause from outside.
	checkRenderer(p)
	checkStream(p)

	// Projects: list, then instructions, tasks and knowledge.
	p.do("projects", chromedp.Click(chromedp.CSS(`nav a[href="#/projects"]`)))
	p.wait("the project list", `!!document.querySelector('#projects a[href="#/projects/`+proj.ID+`"]')`)
	p.do("open the project", chromedp.Click(chromedp.CSS(`#projects a[href="#/projects/`+proj.ID+`"]`)))
	p.wait("the project", `document.getElementById("instructions")?.textContent === "Always answer in haiku."`)
	p.do("open the task", chromedp.Click(chromedp.CSS(`#tasks details summary`)), chromedp.Click(chromedp.CSS(`#knowledge details summary`)))
	for _, want := range []string{"Fix the login bug", "marker-b7q2", "draft", "Deploys", "We deploy on Tuesdays.", "ops"} {
		if !evalJS[bool](p, `document.querySelector("main").innerText.includes(`+strconv.Quote(want)+`)`) {
			p.fail("the project page lacks %q", want)
		}
	}
	p.accessible("project")
	p.screenshot("02-project")

	// Knowledge and the project itself, edited in the console; what was
	// typed stays text.
	knowTitle, knowBody := `<script>window.__pwned = "k"</script>Release notes`, `<img src=x onerror="window.__pwned='kb'"> **not bold** <b>x</b>`
	evalJS[bool](p, `(document.getElementById("new-knowledge").parentElement.open = true)`)
	p.set("new-knowledge-title", knowTitle)
	p.set("new-knowledge-body", knowBody)
	p.set("new-knowledge-tags", "release, docs")
	p.do("add knowledge", chromedp.Click(chromedp.CSS("#new-knowledge-save")))
	p.wait("the new knowledge", `[...document.querySelectorAll("#knowledge .knowledge-title")].some((e) => e.textContent === `+strconv.Quote(knowTitle)+`)`)
	if !evalJS[bool](p, `[...document.querySelectorAll("#knowledge .knowledge-body")].some((e) => e.textContent === `+strconv.Quote(knowBody)+` && e.children.length === 0) && `+
		`["ops", "release", "docs"].every((tag) => [...document.querySelectorAll("#knowledge .badge.tag")].some((e) => e.textContent === tag))`) {
		p.fail("the knowledge added is not shown as typed")
	}
	inert(p, "#knowledge li > p, #knowledge pre")
	evalJS[bool](p, `(document.getElementById("edit-project").parentElement.open = true)`)
	p.set("edit-project-description", "Edited in the console")
	p.do("save the project", chromedp.Click(chromedp.CSS("#edit-project-save")))
	p.wait("the project edited", `document.getElementById("project-description")?.textContent === "Edited in the console" && `+
		`document.getElementById("instructions")?.textContent === "Always answer in haiku."`)
	p.accessible("project, edited")
	p.screenshot("02b-project-edited")

	// The model picker is exactly ForUI(agent), deprecated ones marked.
	p.do("start form", chromedp.Click(chromedp.CSS(`nav a[href="#/new"]`)))
	p.wait("the start form", `document.getElementById("model")?.dataset.loaded === "claude-code"`)
	// The agents offered are the profiles this broker launches, each with
	// the credential kinds its profile accepts.
	var profiles []string
	for _, pr := range profile.All() {
		profiles = append(profiles, string(pr.Name))
	}
	if got := evalJS[[]string](p, `[...document.querySelectorAll("#agent option")].map((o) => o.value)`); !slices.Equal(got, profiles) {
		p.fail("agents offered %q; want %q", got, profiles)
	}
	for _, name := range profiles {
		p.set("agent", name)
		p.wait("the credentials of "+name, `document.getElementById("model").dataset.loaded === `+strconv.Quote(name))
		got := evalJS[[]string](p, `[...document.querySelectorAll("#credential option")].map((o) => o.value)`)
		pr, _ := profile.Lookup(profile.Name(name))
		var want []string
		for _, k := range pr.Credentials {
			want = append(want, string(k))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("credentials offered for %s: %q; the profile accepts %q", name, got, want)
		}
	}

	deprecated := 0
	for _, c := range []struct{ profile, agent string }{
		{"claude-code", "claude-code"}, {"codex", "codex"}, {"amp", "amp"}, {"codex-zed", "codex"},
	} {
		p.set("agent", c.profile)
		p.wait("the models of "+c.profile, `document.getElementById("model").dataset.loaded === `+strconv.Quote(c.profile))
		got := evalJS[[]pickerOption](p, `[...document.querySelectorAll("#model option")].map((o) => ({
			id: o.value, text: o.textContent, status: o.dataset.status || "", replacement: o.dataset.replacement || "", selected: o.selected}))`)
		want, err := cat.ForUI(c.agent)
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs, wantIDs []string
		for _, o := range got {
			gotIDs = append(gotIDs, o.ID)
		}
		for _, e := range want {
			wantIDs = append(wantIDs, e.ID)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			p.fail("picker for %s shows %q; ForUI(%s) is %q", c.profile, gotIDs, c.agent, wantIDs)
		}
		for i, e := range want {
			o := got[i]
			marked := strings.Contains(o.Text, "deprecated")
			switch {
			case o.Status != string(e.Status):
				t.Errorf("%s %s: status %q; catalog %q", c.profile, e.ID, o.Status, e.Status)
			case o.Selected != e.Default:
				t.Errorf("%s %s: selected %v; catalog default %v", c.profile, e.ID, o.Selected, e.Default)
			case !strings.Contains(o.Text, e.DisplayName):
				t.Errorf("%s %s: option %q lacks the name %q", c.profile, e.ID, o.Text, e.DisplayName)
			case e.Status == catalog.StatusDeprecated && (!marked || e.Replacement == "" ||
				!strings.Contains(o.Text, "use "+e.Replacement) || o.Replacement != e.Replacement):
				t.Errorf("%s %s: deprecated, replaced by %q, shown as %q (data-replacement %q)", c.profile, e.ID, e.Replacement, o.Text, o.Replacement)
			case e.Status != catalog.StatusDeprecated && marked:
				t.Errorf("%s %s: %s but shown as %q", c.profile, e.ID, e.Status, o.Text)
			}
			if e.Status == catalog.StatusDeprecated {
				deprecated++
			}
		}
	}
	if deprecated == 0 {
		t.Fatalf("no deprecated model in any picker: testdata/console-catalog.json no longer exercises the marking")
	}
	// Picking a deprecated model says what replaces it.
	p.set("agent", "claude-code")
	p.wait("the models of claude-code", `document.getElementById("model").dataset.loaded === "claude-code"`)
	if note := evalJS[string](p, `document.getElementById("model-note").textContent`); note != "" {
		t.Fatalf("a note for the default model: %q", note)
	}
	p.set("model", "claude-sonnet-4-6")
	if note := evalJS[string](p, `document.getElementById("model-note").textContent`); !strings.Contains(note, "deprecated") || !strings.Contains(note, "claude-sonnet-5") {
		t.Fatalf("the note for a deprecated model: %q", note)
	}
	p.screenshot("03-model-picker")

	// Start a session with the reference agent, under the "ask" policy.
	p.set("agent", "custom")
	p.wait("the custom agent's picker", `document.getElementById("model").dataset.loaded === "custom"`)
	if v := evalJS[string](p, `document.getElementById("credential").value`); v != "none" {
		t.Fatalf("credential for the custom agent = %q; want none", v)
	}
	p.set("project", proj.ID)
	p.set("policy", "ask")
	p.do("fill the form",
		chromedp.SendKeys(chromedp.CSS("#cwd"), agentDir(t)),
		chromedp.SendKeys(chromedp.CSS("#title"), "browser test"))
	p.accessible("start form")
	p.do("start the session", chromedp.Click(chromedp.CSS("#start")))
	p.wait("the session view", `location.hash.startsWith("#/sessions/ses_") && document.getElementById("conn")?.dataset.conn === "live"`)
	sessionID := strings.TrimPrefix(evalJS[string](p, `location.hash`), "#/sessions/")
	p.wait("the ready state", `document.getElementById("state").dataset.state === "ready"`)

	// A prompt that calls our MCP tool: the permission request, answered
	// from the keyboard; the streamed reply with the task.
	prompt := fmt.Sprintf(`call get_task with {"id":%q}`, task.ID)
	p.do("prompt", chromedp.SendKeys(chromedp.CSS("#prompt-text"), prompt), chromedp.Click(chromedp.CSS("#send")))
	allow := `#events .permission[data-answered="false"] button[data-kind="allow_once"]`
	p.wait("the permission request", `!!document.querySelector(`+strconv.Quote(allow)+`)`)
	// Where it cannot be missed: pinned at the top with its buttons, in the
	// tab's title, and inside the card of the tool call it is about.
	p.wait("the pinned question and the title", `!!document.querySelector('#pinned .pinned-permission button[data-kind="allow_once"]') && `+
		`document.title.startsWith("(1) Waiting for you") && `+
		`!!document.querySelector('#events li.tool[data-ours="true"] .permission[data-answered="false"]')`)
	if evalJS[bool](p, `(() => { const r = document.getElementById("pinned").getBoundingClientRect(); return r.top < 0 || r.bottom > innerHeight; })()`) {
		p.fail("the pinned question is not in the window")
	}
	p.accessible("permission request")
	p.screenshot("04-permission-request")
	p.do("allow, from the keyboard", chromedp.Focus(chromedp.CSS(allow)), chromedp.KeyEvent("\r"))
	p.wait("the answer", `document.querySelector("#events .permission").dataset.answered === "true"`)
	p.wait("the pin gone, the title back", `document.getElementById("pinned").children.length === 0 && document.title === "agentbroker console"`)
	p.wait("the reply", `[...document.querySelectorAll("#events li.agent")].some((li) => li.textContent.includes("get_task returned") && li.textContent.includes("marker-b7q2"))`)
	p.wait("our MCP tool call, completed", `!!document.querySelector('#events li.tool[data-ours="true"][data-status="completed"] .badge.ours')`)
	p.wait("the broker's record of the MCP call", `[...document.querySelectorAll("#events li.mcp-call")].some((li) => li.textContent.includes("get_task") && li.textContent.includes("ok"))`)
	p.wait("the idle state", `document.getElementById("state").dataset.state === "idle"`)
	for what, expr := range map[string]string{
		"the result in the tool card":        `document.querySelector('#events li.tool[data-ours="true"] pre.result')?.textContent.includes("marker-b7q2")`,
		"thinking, folded in the quiet line": `[...document.querySelectorAll("#events > li.quiet")].some((q) => q.querySelector("li.thought")) && [...document.querySelectorAll("#events > li.quiet details")].every((d) => !d.open)`,
		"plumbing out of sight":              `![...document.querySelectorAll("#events > li:not(.quiet)")].some((li) => /Agent process started|Agent session opened|Update: |tok_|Configured:/.test(li.textContent))`,
		"the plan":                           `[...document.querySelectorAll("#events li.plan li")].some((li) => li.textContent.includes("Call get_task"))`,
		"the answer in the event list":       `[...document.querySelectorAll("#events li")].some((li) => li.textContent.includes("Permission selected: allow once"))`,
		"state changes":                      `["ready", "prompting", "idle"].every((s) => [...document.querySelectorAll("#events li.state")].some((li) => li.textContent.includes("State: " + s)))`,
	} {
		if !evalJS[bool](p, expr) {
			p.fail("the session view lacks %s", what)
		}
	}
	p.screenshot("05-reply-and-tool-call")

	// After a reload the question sits in its tool call's card, answered,
	// and the answer is said once.
	p.do("reload", chromedp.Reload())
	p.wait("the session again", `document.getElementById("conn")?.dataset.conn === "live" && `+
		`!!document.querySelector('#events li.tool[data-ours="true"][data-status="completed"] .permission[data-answered="true"]')`)
	if n := evalJS[int](p, `[...document.querySelectorAll("#events *")].filter((e) => [...e.childNodes].some((c) => c.nodeType === 3 && c.textContent.includes("Permission selected"))).length`); n != 1 {
		p.fail("the permission's answer is said %d times; want once", n)
	}
	if evalJS[bool](p, `!!document.querySelector("#events > li.permission") || document.getElementById("pinned").children.length > 0`) {
		p.fail("after the reload the question stands apart from its tool call, or is pinned")
	}
	p.screenshot("05b-after-reload")

	// A reply in Markdown is rendered; the markup an agent may send is
	// inert (no element, no handler, no script URL), and the page's CSP
	// saw nothing to refuse (any violation is a console error).
	evalJS[bool](p, `(() => {
		const t = document.getElementById("prompt-text");
		t.value = `+strconv.Quote(markdownPrompt)+`;
		document.getElementById("send").click();
		return true;
	})()`)
	p.wait("the Markdown rendered", `[...document.querySelectorAll("#events li.agent[data-rendered=true]")].some((li) => `+
		`li.querySelector("h1")?.textContent === "Heading one" && li.querySelector("strong")?.textContent === "bold words" && `+
		`li.querySelector("code")?.textContent === "go test" && li.querySelectorAll("ul > li").length === 2 && `+
		`li.querySelector('a[href="https://example.com/docs"]')?.relList.contains("noopener") && `+
		`li.querySelector("pre code")?.textContent.includes("fmt.Println"))`)
	p.screenshot("05c-markdown")
	evalJS[bool](p, `(() => {
		document.getElementById("prompt-text").value = `+strconv.Quote(xssPrompt)+`;
		document.getElementById("send").click();
		return true;
	})()`)
	p.wait("the markup rendered", `[...document.querySelectorAll("#events li.agent[data-rendered=true]")].some((li) => li.textContent.includes("xss-corpus-end"))`)
	inert(p, "#events")
	p.screenshot("05d-xss-inert")

	// A file the agent writes shows as a diff.
	for _, text := range []string{"fs:write notes.md alpha\nbeta\ngamma", "fs:write notes.md alpha\nBETA\ngamma\ndelta"} {
		body, _ := json.Marshal(map[string]any{"text": text, "wait": true})
		if resp, out := b.do("POST", "/v1/sessions/"+sessionID+"/prompt", admin, strings.NewReader(string(body))); resp.StatusCode != 200 || !strings.Contains(out, "wrote ") {
			t.Fatalf("prompt %q: %d %s", text, resp.StatusCode, out)
		}
	}
	p.wait("the diff", `(() => {
		const cards = [...document.querySelectorAll('#events li.tool[data-kind="edit"][data-status="completed"]')];
		if (cards.length !== 2) return false;
		const d = cards[1].querySelector(".diff");
		const lines = [...d.querySelectorAll(".line")].map((l) => l.className.split(" ")[1] + ":" + l.textContent.trim());
		return d.dataset.path.endsWith("/notes.md") && d.dataset.added === "2" && d.dataset.removed === "1" &&
			JSON.stringify(lines) === JSON.stringify(["ctx:alpha", "del:- beta", "add:+ BETA", "ctx:gamma", "add:+ delta"]) &&
			cards[0].querySelector(".diff .badge")?.textContent === "new file" && cards.every((c) => c.querySelectorAll(".diff").length === 1);
	})()`)
	p.accessible("diff")
	p.screenshot("05e-diff")

	// The network drops: the server side closes the socket and refuses new
	// ones while the agent works; after it comes back the view resumes from
	// the last event it rendered.
	before := evalJS[int64](p, `Number(document.getElementById("events").dataset.lastSeq)`)
	p.mu.Lock()
	wsBefore := len(p.ws)
	p.mu.Unlock()
	tolerate.Store(true)
	rl.sever()
	p.wait("the view to notice the drop", `document.getElementById("conn").dataset.conn === "reconnecting"`)
	resp, body := b.do("POST", "/v1/sessions/"+sessionID+"/prompt?wait=true", admin, strings.NewReader(`{"text":"hello after the drop"}`))
	if resp.StatusCode != 200 || !strings.Contains(body, "You said: hello after the drop") {
		t.Fatalf("prompt while the viewer is away = %d %s", resp.StatusCode, body)
	}
	// Let the view try, and be refused, at least once while the network is down.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		p.mu.Lock()
		tried := len(p.ws) > wsBefore
		p.mu.Unlock()
		if tried {
			break
		}
		if time.Now().After(deadline) {
			p.fail("the view did not try to reconnect while the network was down")
		}
	}
	if now := evalJS[int64](p, `Number(document.getElementById("events").dataset.lastSeq)`); now != before {
		t.Fatalf("the page rendered events while its network was down (%d → %d): the drop did not happen", before, now)
	}
	p.screenshot("06-reconnecting")
	rl.resume()
	p.wait("the reply sent while away", `[...document.querySelectorAll("#events li.agent")].some((li) => li.textContent.includes("You said: hello after the drop"))`)
	p.wait("the live connection", `document.getElementById("conn").dataset.conn === "live"`)
	tolerate.Store(false)
	p.mu.Lock()
	resumed := slices.Clone(p.ws[wsBefore:])
	p.mu.Unlock()
	if len(resumed) < 2 {
		t.Fatalf("%d WebSocket(s) after the drop; want a refused one and the one that resumed", len(resumed))
	}
	for _, u := range resumed {
		pu, err := url.Parse(u)
		if err != nil || pu.Query().Get("after") != strconv.FormatInt(before, 10) {
			t.Fatalf("reconnected with %s; want after=%d, the last event rendered", u, before)
		}
	}
	var info struct {
		LastEventSeq int64 `json:"last_event_seq"`
	}
	_, body = b.do("GET", "/v1/sessions/"+sessionID, admin, nil)
	json.Unmarshal([]byte(body), &info)
	p.wait("every event of the log", `Number(document.getElementById("events").dataset.lastSeq) >= `+strconv.FormatInt(info.LastEventSeq, 10))
	contiguous(t, p.seqs(), info.LastEventSeq)
	if d := evalJS[string](p, `document.getElementById("events").dataset.duplicates + "/" + document.getElementById("events").dataset.gaps`); d != "0/0" {
		t.Fatalf("the stream saw duplicates/gaps %s", d)
	}
	t.Logf("reconnected after seq %d with %d attempt(s); %d events, contiguous", before, len(resumed), info.LastEventSeq)
	p.screenshot("07-after-reconnect")

	// Cancel: a turn waiting on a permission question ends cancelled, and
	// the question with it.
	// The person allowed notifications (a stand-in records them).
	evalJS[bool](p, `(window.__notes = [], window.Notification = class { static permission = "granted"; constructor(t) { window.__notes.push(t); } }, true)`)
	p.do("prompt again", chromedp.SendKeys(chromedp.CSS("#prompt-text"), prompt), chromedp.Click(chromedp.CSS("#send")))
	p.wait("the second permission request", `document.querySelectorAll("#events .permission").length === 2 &&
		document.querySelectorAll("#events .permission")[1].dataset.answered === "false"`)
	p.wait("the desktop notification", `window.__notes?.length === 1 && window.__notes[0].startsWith("The agent is waiting")`)
	p.wait("the cancel button", `!document.getElementById("cancel").disabled`)
	p.do("cancel", chromedp.Click(chromedp.CSS("#cancel")))
	p.wait("the cancelled question", `document.querySelectorAll("#events .permission")[1].dataset.answered === "true" &&
		[...document.querySelectorAll("#events .permission")[1].querySelectorAll("button")].every((b) => b.disabled)`)
	p.wait("the cancelled turn", `[...document.querySelectorAll("#events li")].some((li) => li.textContent.includes("ended: cancelled")) &&
		document.getElementById("state").dataset.state === "idle"`)
	if !evalJS[bool](p, `document.querySelectorAll("#events .permission")[1].querySelector(".outcome").textContent.includes("cancelled")`) {
		p.fail("the second question does not say it was cancelled")
	}
	p.screenshot("08-cancelled")

	// The viewer link, in a tab of its own: the token comes from the
	// fragment and leaves the address bar.
	link := evalJS[string](p, `document.getElementById("viewer-link").value`)
	viewerToken := ""
	if frag, err := url.ParseQuery(strings.SplitN(link, "#", 2)[1]); err == nil {
		viewerToken = frag.Get("token")
	}
	if viewerToken == "" || !strings.HasPrefix(link, origin+"/#session="+sessionID+"&token=") {
		t.Fatalf("viewer link %q", link)
	}
	viewerCtx, cancelViewer := chromedp.NewContext(ctx)
	defer cancelViewer()
	v := &page{t: t, ctx: viewerCtx, shots: shots, origin: origin, tolerate: &atomic.Bool{}}
	v.listen()
	v.do("open the viewer link", chromedp.Navigate(link))
	v.wait("the viewer's session view", `document.getElementById("conn")?.dataset.conn === "live" &&
		[...document.querySelectorAll("#events li.agent")].some((li) => li.textContent.includes("You said: hello after the drop")) &&
		[...document.querySelectorAll("#events li.agent[data-rendered=true] h1")].some((e) => e.textContent === "Heading one") &&
		document.querySelectorAll('#events li.tool[data-kind="edit"] .diff').length === 2`)
	inert(v, "#events")
	if h := evalJS[string](v, `location.hash`); strings.Contains(h, "token") || h != "#/sessions/"+sessionID {
		t.Fatalf("after the viewer link the address is %q", h)
	}
	if evalJS[bool](v, `!!document.getElementById("stop") || !document.querySelector('nav a[href="#/projects"]').parentElement.hidden`) {
		t.Fatalf("a viewer token sees the admin's controls")
	}
	v.accessible("viewer")
	v.screenshot("09-viewer-link")
	cancelViewer()

	// Stop: the state ends, the log ends, nothing is missing.
	p.do("stop", chromedp.Click(chromedp.CSS("#stop")))
	p.wait("the stopped state", `document.getElementById("state").dataset.state === "stopped" && document.getElementById("conn").dataset.conn === "ended"`)
	_, body = b.do("GET", "/v1/sessions/"+sessionID, admin, nil)
	json.Unmarshal([]byte(body), &info)
	contiguous(t, p.seqs(), info.LastEventSeq)
	if d := evalJS[string](p, `document.getElementById("events").dataset.duplicates + "/" + document.getElementById("events").dataset.gaps`); d != "0/0" {
		t.Fatalf("the stream saw duplicates/gaps %s", d)
	}
	if evalJS[bool](p, `!document.getElementById("prompt-text").disabled`) {
		t.Fatalf("the prompt box is still enabled after the stop")
	}
	p.screenshot("10-stopped")

	// The sessions list shows it, with its state.
	p.do("sessions", chromedp.Click(chromedp.CSS(`nav a[href="#/sessions"]`)))
	p.wait("the session in the list", `document.querySelector('#sessions tr[data-session="`+sessionID+`"] [data-state]')?.dataset.state === "stopped"`)
	p.accessible("sessions")

	// The list is live: a session started elsewhere appears and changes
	// state on this page, pushed by the broker, without a reload.
	evalJS[bool](p, `(window.__samePage = document.querySelector("main section"), true)`)
	var other struct{ Session struct{ ID string } }
	_, body = b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(`{"project":%q,"agent":"custom","credential":{"kind":"none"},`+
		`"permission_policy":"allow-all","cwd":%q,"title":"started elsewhere"}`, proj.ID, agentDir(t))))
	json.Unmarshal([]byte(body), &other)
	if other.Session.ID == "" {
		t.Fatalf("create a session: %s", body)
	}
	otherRow := `document.querySelector('#sessions tr[data-session="` + other.Session.ID + `"]')`
	p.wait("the new session, pushed", otherRow+`?.dataset.state === "ready"`)
	if resp, body := b.do("DELETE", "/v1/sessions/"+other.Session.ID, admin, nil); resp.StatusCode != 200 {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}
	p.wait("its stop, pushed", otherRow+`?.dataset.state === "stopped"`)
	type listRow struct{ Project, Duration, Activity, Started string }
	lr := evalJS[listRow](p, `(() => { const r = `+otherRow+`; return { Project: r.querySelector(".project").textContent,
		Duration: r.querySelector(".duration").textContent, Activity: r.querySelector(".activity").textContent,
		Started: r.querySelector('[data-label="Started"]').textContent }; })()`)
	if lr.Project != "Console demo" || !strings.HasSuffix(lr.Duration, " s") || !strings.HasSuffix(lr.Activity, " ago") || lr.Started == "" {
		p.fail("the row of a stopped session: %+v", lr)
	}
	// A session that fails to start: its row says why and what to do.
	resp, body = b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(`{"project":%q,"agent":"amp",`+
		`"credential":{"kind":"api-key","secret":"test-key"},"cwd":%q}`, proj.ID, agentDir(t))))
	var failed struct{ Session struct{ ID string } }
	json.Unmarshal([]byte(body), &failed)
	if resp.StatusCode != 502 || failed.Session.ID == "" {
		t.Fatalf("a session whose agent exits at once = %d %s", resp.StatusCode, body)
	}
	failedRow := `document.querySelector('#sessions tr[data-session="` + failed.Session.ID + `"]')`
	p.wait("the failed session, why and what to do", failedRow+`?.dataset.state === "failed" && `+
		failedRow+`.querySelector(".why")?.textContent.length > 5 && `+failedRow+`.querySelector(".advice")?.textContent.startsWith("What to do: ")`)
	if !evalJS[bool](p, `window.__samePage === document.querySelector("main section")`) {
		p.fail("the sessions page was reloaded")
	}
	p.set("filter-state", "failed")
	p.wait("the state filter", `[...document.querySelectorAll("#sessions tbody tr")].map((r) => r.dataset.session).join() === `+strconv.Quote(failed.Session.ID))
	p.set("filter-state", "")
	p.set("filter-project", proj.ID)
	p.wait("the project filter", `document.querySelectorAll("#sessions tbody tr").length === 3`)
	p.accessible("sessions, live")
	p.screenshot("10b-sessions-live")
	// The failed session's own view: why, what to do, and no prompt.
	p.do("the failed session", chromedp.Click(chromedp.CSS(`#sessions tr[data-session="`+failed.Session.ID+`"] a`)))
	p.wait("the failure", `!document.getElementById("failure")?.hidden && document.querySelector("#failure .advice")?.textContent.startsWith("What to do: ") && `+
		`document.querySelector("#failure .why")?.textContent.length > 5 && document.getElementById("prompt-form").hidden`)
	p.accessible("failed session")
	p.screenshot("10c-failed-session")
	p.do("sessions", chromedp.Click(chromedp.CSS(`nav a[href="#/sessions"]`)))

	// A session whose two model calls cost 2 × $0.020375 (TestUsageCLI's
	// hand computation from the catalog's prices): its cost in its view,
	// in the list, and on the usage page.
	var costly struct{ Session struct{ ID string } }
	_, body = b.do("POST", "/v1/sessions", admin, strings.NewReader(fmt.Sprintf(`{"project":%q,"task":%q,"agent":"claude-code",`+
		`"model":"claude-opus-4-8","credential":{"kind":"platform-proxy"},"permission_policy":"allow-all","cwd":%q,"budget_usd":"1.00"}`,
		proj.ID, task.ID, agentDir(t))))
	json.Unmarshal([]byte(body), &costly)
	if costly.Session.ID == "" {
		t.Fatalf("create a proxied session: %s\n%s", body, b.log())
	}
	if resp, body := b.do("POST", "/v1/sessions/"+costly.Session.ID+"/prompt", admin, strings.NewReader(`{"text":"model:call 2","wait":true}`)); resp.StatusCode != 200 || !strings.Contains(body, "made 2 model calls") {
		t.Fatalf("prompt the proxied session: %d %s", resp.StatusCode, body)
	}
	evalJS[bool](p, `(location.hash = "#/sessions/`+costly.Session.ID+`", true)`)
	p.wait("the session's cost", `document.getElementById("session-cost")?.textContent.startsWith("$0.04075: 2 model calls")`)
	p.wait("the session's budget", `[...document.querySelectorAll(".meta dd")].some((e) => e.textContent === "$1.00")`)
	p.screenshot("15-session-cost")
	p.do("sessions again", chromedp.Click(chromedp.CSS(`nav a[href="#/sessions"]`)))
	p.wait("the cost in the list", `document.querySelector('#sessions tr[data-session="`+costly.Session.ID+`"] .cost')?.textContent === "$0.04075 (2 calls) of $1.00"`)
	p.do("usage", chromedp.Click(chromedp.CSS(`nav a[href="#/usage"]`)))
	p.wait("usage per project", `document.querySelector('#usage-by-project tr[data-key="`+proj.ID+`"] .cost')?.textContent === "$0.04075"`)
	p.wait("usage per task and model", `document.querySelector('#usage-by-task tr[data-key="`+task.ID+`"] .cost')?.textContent === "$0.04075" && `+
		`document.querySelector('#usage-by-model tr[data-key="claude-opus-4-8"] .cost')?.textContent === "$0.04075" && `+
		`document.querySelectorAll("#usage-by-day tbody tr").length === 1 && `+
		`document.querySelector('#usage-by-session tr[data-key="`+costly.Session.ID+`"] .cost')?.textContent === "$0.04075"`)
	p.accessible("usage")
	p.screenshot("16-usage")

	// A task run from the console, with the reference agent: its prompt
	// holds the task's description, whose refagent line makes the agent
	// mark the task completed. The task's status, its run (agent, state,
	// cost) and its session, seen in the project view; the title's markup
	// stays text.
	// The task is created and described from the board; its title's
	// markup stays text.
	evalJS[bool](p, `(location.hash = "#/projects/`+proj.ID+`", true)`)
	p.wait("the board", `!!document.querySelector('#tasks section[data-status="draft"]') && !!document.getElementById("new-task")`)
	runTitle := `Run me <b>now</b> <img src=x onerror="window.__pwned='task'">`
	evalJS[bool](p, `(document.getElementById("new-task").parentElement.open = true)`)
	p.set("new-task-title", runTitle)
	p.do("create the task", chromedp.Click(chromedp.CSS("#new-task-save")))
	findTask := `[...document.querySelectorAll("#tasks li.task")].find((li) => li.querySelector(".task-title").textContent === ` + strconv.Quote(runTitle) + `)`
	p.wait("the new task on the board", `!!`+findTask+` && `+findTask+`.closest("section").dataset.status === "draft"`)
	runTask := struct{ ID string }{evalJS[string](p, findTask+`.dataset.task`)}
	desc := fmt.Sprintf("Close this task.\n"+`refagent: call update_task with {"id":%q,"status":"completed","notes":"closed by refagent"}`, runTask.ID)
	evalJS[bool](p, `(document.getElementById("edit-task-`+runTask.ID+`").parentElement.open = true)`)
	p.set("edit-task-"+runTask.ID+"-description", desc)
	p.do("describe the task", chromedp.Click(chromedp.CSS("#edit-task-"+runTask.ID+"-save")))
	tp := "task-" + runTask.ID + "-"
	byID := func(suffix string) string { return `document.getElementById(` + strconv.Quote(tp+suffix) + `)` }
	card := `#tasks li[data-task="` + runTask.ID + `"]`
	p.wait("the task described", `document.querySelector(`+strconv.Quote(card+" .task-description")+`)?.textContent === `+strconv.Quote(desc))
	p.wait("the task to run", byID("status")+`?.dataset.status === "draft"`)
	if n := evalJS[int](p, `document.querySelectorAll("#tasks b, #tasks img").length`); n != 0 {
		p.fail("the task's title became markup (%d elements)", n)
	}
	inert(p, "#tasks .task-title")
	p.screenshot("17b-board")
	p.do("open the runs", chromedp.Click(chromedp.CSS(card+" details.runs summary")))
	p.wait("no runs yet", byID("runs")+`?.textContent === "No runs yet."`)
	p.do("open the run form", chromedp.Click(chromedp.CSS(card+" details.run summary")))
	p.wait("the run form's pickers", byID("run-model")+`?.dataset.loaded === "claude-code"`)
	if got := evalJS[[]string](p, `[...`+byID("run-agent")+`.options].map((o) => o.value)`); !slices.Equal(got, profiles) {
		p.fail("the run form offers %q; want %q", got, profiles)
	}
	p.set(tp+"run-agent", "custom")
	p.wait("the custom agent in the run form", byID("run-model")+`.dataset.loaded === "custom" && `+byID("run-credential")+`.value === "none"`)
	// The project has no repository path: the run needs a directory.
	p.do("the run's directory", chromedp.SendKeys(chromedp.CSS("#"+tp+"run-cwd"), agentDir(t)))
	p.accessible("run form")
	p.screenshot("18-task-run-form")
	p.do("run the task", chromedp.Click(chromedp.CSS("#"+tp+"run-start")))
	p.wait("the run, live", byID("live")+`?.dataset.session?.startsWith("ses_")`)
	runSession := evalJS[string](p, byID("live")+`.dataset.session`)
	row := card + ` tr[data-session="` + runSession + `"]`
	p.wait("the task completed, its run listed", byID("status")+`.dataset.status === "completed" && `+
		`document.querySelector(`+strconv.Quote(row)+`)?.dataset.state === "completed"`)
	p.wait("the card in the completed column", `document.querySelector(`+strconv.Quote(card)+`).closest("section").dataset.status === "completed"`)
	type runRow struct{ Agent, Model, State, Cost, Reason, Link, Notes string }
	got := evalJS[runRow](p, `(() => {
		const r = document.querySelector(`+strconv.Quote(row)+`);
		return { Agent: r.querySelector(".agent").textContent, Model: r.querySelector(".model").textContent,
			State: r.querySelector(".state").textContent, Cost: r.querySelector(".cost").textContent,
			Reason: r.querySelector(".reason").firstChild.textContent, Link: r.querySelector("a").getAttribute("href"),
			Notes: document.querySelector(`+strconv.Quote(card+" .task-notes")+`)?.textContent || "" };
	})()`)
	want := runRow{Agent: "custom", Model: "the agent's default", State: "completed", Cost: "$0.00 (0 calls)",
		Reason: "the agent marked the task completed", Link: "#/sessions/" + runSession, Notes: "closed by refagent"}
	if got != want {
		p.fail("the run's row: %+v; want %+v", got, want)
	}
	if evalJS[bool](p, `!`+byID("live")+`.textContent.includes("the run ended completed") || !`+
		`document.querySelector(`+strconv.Quote(card+" details.run")+`).hidden`) {
		p.fail("the run's end is not shown, or a completed task still offers a run")
	}
	var runs struct {
		Task struct{ Status string }
		Runs []struct{ Session, State string }
	}
	_, body = b.do("GET", "/v1/projects/"+proj.ID+"/tasks/"+runTask.ID+"/runs", admin, nil)
	json.Unmarshal([]byte(body), &runs)
	if runs.Task.Status != "completed" || len(runs.Runs) != 1 || runs.Runs[0].Session != runSession || runs.Runs[0].State != "completed" {
		t.Fatalf("the broker's record of the run: %s", body)
	}
	p.accessible("task run")
	p.screenshot("19-task-run")
	// The run's session, from its row.
	p.do("the run's session", chromedp.Click(chromedp.CSS(row+" a")))
	p.wait("the run's session view", `location.hash === "#/sessions/`+runSession+`" && document.getElementById("conn")?.dataset.conn === "ended" && `+
		`!!document.querySelector('#events [data-type="run_end"]')`)
	p.screenshot("20-task-run-session")

	// A narrow screen: nothing wider than 375 px.
	p.do("narrow", chromedp.EmulateViewport(375, 812))
	for _, c := range []struct{ hash, ready, name string }{
		{"#/sessions", `!!document.getElementById("sessions")`, "11-narrow-sessions"},
		{"#/sessions/" + sessionID, `document.getElementById("conn")?.dataset.conn === "ended" && ` +
			`[...document.querySelectorAll("#events li.agent")].every((li) => li.dataset.rendered === "true")`, "12-narrow-session"},
		{"#/new", `document.getElementById("model")?.dataset.loaded === "claude-code"`, "13-narrow-start"},
		{"#/projects/" + proj.ID, `!!document.getElementById("instructions")`, "14-narrow-project"},
		{"#/usage", `!!document.getElementById("usage-by-model")`, "17-narrow-usage"},
	} {
		evalJS[bool](p, `(location.hash = `+strconv.Quote(c.hash)+`, true)`)
		p.wait(c.hash, c.ready)
		p.noOverflow(c.hash)
		p.screenshot(c.name)
	}

	// Sign out: the token is gone from the tab.
	p.do("sign out", chromedp.Click(chromedp.CSS("#signout")))
	p.wait("the sign-in form", `!!document.getElementById("token")`)
	if n := evalJS[int](p, `sessionStorage.length`); n != 0 {
		t.Fatalf("%d items left in sessionStorage after signing out", n)
	}
	p.noOverflow("sign-in")

	// Nothing was loaded from anywhere but the broker, no token went into a
	// URL, and the page logged no error (outside the drop).
	for _, pg := range []*page{p, v} {
		pg.mu.Lock()
		urls, errs := slices.Clone(pg.urls), slices.Clone(pg.errors)
		pg.mu.Unlock()
		if len(urls) == 0 {
			t.Fatalf("no requests recorded")
		}
		host := strings.TrimPrefix(origin, "http://")
		for _, u := range urls {
			if !strings.HasPrefix(u, "http://"+host+"/") && !strings.HasPrefix(u, "ws://"+host+"/") {
				t.Errorf("request to another origin: %s", u)
			}
			if strings.Contains(u, admin) || strings.Contains(u, viewerToken) {
				t.Errorf("a token in a request URL: %.80s…", u)
			}
		}
		if len(errs) > 0 {
			t.Errorf("browser errors: %q", errs)
		}
	}
	if p.refused != 1 {
		t.Errorf("%d refusals of /v1/projects; want 1, the sign-in with a wrong token", p.refused)
	}
	if strings.Contains(b.log(), admin) || strings.Contains(b.log(), viewerToken) {
		t.Errorf("a token in the broker's log")
	}
}

// checkRenderer feeds the session view's renderer, in the page, the events
// that the reference agent does not produce: model usage and its cost, a
// tool that is not ours and fails, replayed history, a failed turn, an
// event type the console does not know, and markup in the agent's text.
func checkRenderer(p *page) {
	p.t.Helper()
	type result struct {
		Usage, Failed, Warn, Unknown string
		ModelRefused                 string
		Orphan                       []string
		Seqs                         []int64
		Ours                         []bool
		Images                       int
		Messages                     []string
	}
	r, err := chromedp.Run(p.ctx, chromedp.Evaluate[result](`(async () => {
		const { Renderer } = await import("/console/session.js");
		const list = document.createElement("ol"), usage = document.createElement("p");
		const r = new Renderer(list, document.createElement("span"), usage);
		[
			{ type: "config", data: { profile: "codex", model: "gpt-5.5", mcp: { name: "ab" } } },
			{ type: "usage", data: { model: "gpt-5.5", outcome: "ok", usage: { input_tokens: 1000, output_tokens: 200 }, cost_micro_usd: 12345 } },
			{ type: "usage", data: { model: "gpt-5.5", outcome: "ok", usage: { input_tokens: 500, output_tokens: 100 }, cost_micro_usd: 5000 } },
			{ type: "update", data: { sessionUpdate: "tool_call", toolCallId: "c1", title: "mcp__ab__list_tasks", status: "pending" } },
			{ type: "update", data: { sessionUpdate: "tool_call", toolCallId: "c2", title: "Read file", status: "pending" } },
			{ type: "update", data: { sessionUpdate: "tool_call_update", toolCallId: "c2", status: "failed", rawOutput: { error: "denied" } } },
			{ type: "update", data: { sessionUpdate: "tool_call_update", toolCallId: "c3", status: "in_progress" } },
			{ type: "update", data: { sessionUpdate: "tool_call_update", toolCallId: "c3", status: "completed", content: [{ type: "content", content: { type: "text", text: "done" } }] } },
			{ type: "replay", data: { sessionUpdate: "agent_message_chunk" } },
			{ type: "turn_failed", data: { error: "agent crashed" } },
			{ type: "something_new", data: {} },
			{ type: "update", data: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "<img src=x>" } } },
			{ type: "update", data: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: " and more" } } },
			{ type: "model_refused", data: { route: "responses", wire_model: "gpt-5.4-mini", model: "gpt-5.5", reason: "not_session_model", message: "not this session's model" } },
		].forEach((f, i) => r.frame({ seq: i + 1, ...f }));
		return {
			Usage: usage.textContent,
			Seqs: [...list.querySelectorAll("[data-seq]")].map((e) => Number(e.dataset.seq)),
			Ours: [...list.querySelectorAll("li.tool")].map((li) => li.dataset.ours === "true"),
			Failed: list.querySelector('li.tool[data-tool-call-id="c2"]').dataset.status + " " +
				list.querySelector('li.tool[data-tool-call-id="c2"] pre.result').textContent.includes("denied"),
			Orphan: [...list.querySelectorAll('li.tool[data-tool-call-id="c3"]')].map((li) => li.dataset.status + " " + li.querySelector("pre.result")?.textContent),
			Warn: list.querySelector("li.warn")?.textContent || "",
			Unknown: list.querySelector('[data-type="something_new"]')?.textContent || "",
			ModelRefused: list.querySelector('[data-type="model_refused"]')?.textContent || "",
			Images: list.querySelectorAll("img").length,
			Messages: [...list.querySelectorAll("li.agent")].map((li) => li.textContent),
		};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("run the renderer: %v", err)
	}
	t := p.t
	if want := "Usage so far: 2 model calls, 1500 input and 300 output tokens, $0.0173"; r.Usage != want {
		t.Errorf("usage = %q; want %q", r.Usage, want)
	}
	contiguous(t, r.Seqs, 14)
	if !strings.Contains(r.ModelRefused, "Model refused") || !strings.Contains(r.ModelRefused, "gpt-5.4-mini") ||
		!strings.Contains(r.ModelRefused, "gpt-5.5") || !strings.Contains(r.ModelRefused, "not this session's model") {
		t.Errorf("model_refused line = %q", r.ModelRefused)
	}
	if !slices.Equal(r.Ours, []bool{true, false, false}) || r.Failed != "failed true" {
		t.Errorf("tool cards: ours %v, the other's status and result %q", r.Ours, r.Failed)
	}
	// Updates of a call whose start was never seen share one card.
	if !slices.Equal(r.Orphan, []string{"completed done"}) {
		t.Errorf("cards of a call seen only by its updates: %q", r.Orphan)
	}
	if !strings.Contains(r.Warn, "turn failed") || !strings.Contains(r.Warn, "agent crashed") || r.Unknown != "something_new" {
		t.Errorf("warning %q, unknown event %q", r.Warn, r.Unknown)
	}
	if r.Images != 0 || !slices.Equal(r.Messages, []string{"Agent<img src=x> and more"}) {
		t.Errorf("agent text: %d images, messages %q", r.Images, r.Messages)
	}
}

// checkStream runs the console's EventStream, in the page, over a stand-in
// WebSocket: it passes each event on once and in order (a duplicate is
// dropped and counted, a gap counted), offers the token as a subprotocol,
// and after the log ends (close 4000) stops, unless the session's last
// state was an interruption the broker will resume (a broker restart), in
// which case it reconnects.
func checkStream(p *page) {
	p.t.Helper()
	type run struct {
		Statuses  []string
		Frames    []int64
		Dup, Gaps int
		URL       string
		Protocols []string
	}
	got, err := chromedp.Run(p.ctx, chromedp.Evaluate[map[string]run](`(async () => {
		const { EventStream } = await import("/console/stream.js");
		const sockets = [];
		const real = window.WebSocket;
		window.WebSocket = class { constructor(url, protocols) { this.url = url; this.protocols = protocols; sockets.push(this); } close() {} };
		try {
			const run = async (resumable) => {
				const statuses = [], frames = [];
				const s = new EventStream({ session: "ses_x", token: "tok", onFrame: (f) => frames.push(f.seq), onNotice: () => {},
					onStatus: (st) => statuses.push(st), resumable: () => resumable });
				s.start();
				const ws = sockets[sockets.length - 1];
				ws.onopen();
				for (const seq of [1, 2, 2, 3, 5]) ws.onmessage({ data: JSON.stringify({ seq, type: "state", data: {} }) });
				await ws.onclose({ code: 4000, reason: "session ended after 5" });
				s.close();
				return { Statuses: statuses, Frames: frames, Dup: s.duplicates, Gaps: s.gaps, URL: ws.url, Protocols: ws.protocols };
			};
			return { resumable: await run(true), final: await run(false) };
		} finally {
			window.WebSocket = real;
		}
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("run the stream: %v", err)
	}
	t := p.t
	for name, want := range map[string][]string{
		"resumable": {"connecting", "live", "reconnecting"},
		"final":     {"connecting", "live", "ended"},
	} {
		r := got[name]
		if !slices.Equal(r.Statuses, want) {
			t.Errorf("%s: statuses %q; want %q", name, r.Statuses, want)
		}
		if !slices.Equal(r.Frames, []int64{1, 2, 3, 5}) || r.Dup != 1 || r.Gaps != 1 {
			t.Errorf("%s: frames %v, %d duplicate(s), %d gap(s); want [1 2 3 5], 1, 1", name, r.Frames, r.Dup, r.Gaps)
		}
		if !strings.HasSuffix(r.URL, "/v1/sessions/ses_x/events?after=0") || !slices.Equal(r.Protocols, []string{"agentbroker.events.v1", "bearer.tok"}) {
			t.Errorf("%s: dialed %s with %q", name, r.URL, r.Protocols)
		}
	}
}

// markdownPrompt comes back from the reference agent as "You said: …",
// Markdown that the console renders.
const markdownPrompt = "Here is the plan.\n\n# Heading one\n\nSome **bold words** and `go test`.\n\n" +
	"- first item\n- second item\n\n[the docs](https://example.com/docs)\n\n```go\nfmt.Println(\"hi\")\n```"

// xssCorpus is markup an agent (or a task title, or knowledge) may carry:
// each would set window.__pwned if it ran.
var xssCorpus = []string{
	`<script>window.__pwned = "script"</script>`,
	`<img src=x onerror="window.__pwned='img'">`,
	`<svg onload="window.__pwned='svg'"></svg>`,
	`<iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>`,
	`[click me](javascript:window.__pwned='link')`,
	`[click me too](JaVaScRiPt:window.__pwned='link2')`,
	`<a href="javascript:window.__pwned='a'">a link</a>`,
	`<details open ontoggle="window.__pwned='details'">x</details>`,
	`<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned='mxss'">`,
	`![image](https://example.com/x.png)`,
	`<form action="https://example.com"><button formaction="javascript:window.__pwned='form'">go</button></form>`,
	`<p style="background:url(javascript:window.__pwned='css')">styled</p>`,
	"`<b>code stays text</b>`",
	`<base href="https://evil.example/">`,
	`<input autofocus onfocus="window.__pwned='input'">`,
}

var xssPrompt = "Markup test.\n\n" + strings.Join(xssCorpus, "\n\n") + "\n\nxss-corpus-end"

// inert checks that nothing under sel became active markup: no element
// that runs or loads anything, no handler, no style, no script URL; and
// that none of xssCorpus ran.
func inert(p *page, sel string) {
	p.t.Helper()
	bad := evalJS[[]string](p, `(() => {
		const bad = [];
		for (const el of document.querySelectorAll(`+strconv.Quote(sel+" *")+`)) {
			if (/^(script|img|svg|iframe|object|embed|style|math|base|meta|link|frame|video|audio|input)$/i.test(el.tagName) ||
				(el.tagName === "FORM" && !el.closest("li.tool, .permission") && el.id !== "prompt-form")) bad.push(el.tagName);
			for (const a of el.attributes) {
				if (/^on/i.test(a.name) || a.name === "style" || a.name === "srcdoc" || a.name === "formaction") bad.push(el.tagName + " " + a.name);
				if (["href", "src", "action"].includes(a.name) && !/^(https?:|mailto:|#)/i.test(a.value)) bad.push(el.tagName + " " + a.name + "=" + a.value);
			}
		}
		if (window.__pwned !== undefined) bad.push("ran: " + window.__pwned);
		return bad;
	})()`)
	if len(bad) > 0 {
		p.fail("%s: markup became active: %q", sel, bad)
	}
}
