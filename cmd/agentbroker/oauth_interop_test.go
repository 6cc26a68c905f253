package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOAuthInterop: an MCP client the broker did not launch signs in to a
// project's MCP server with OAuth, end to end, against a real `serve`: the
// official TypeScript SDK's OAuth client provider
// (interop/mcp/oauth-client.mjs) finds the authorization server from the
// 401, registers, authorizes with PKCE; the admin consents in the console's
// page in headless Chromium; the SDK exchanges the code, calls a tool,
// refreshes; the Inspector CLI calls a tool with the token; the admin
// revokes the connection in the console; the SDK's next call and the
// Inspector's are refused.
//
// It needs the interop folder's npm packages, Node and Chromium: it runs
// from interop/mcp/run (AGENTBROKER_OAUTH_INTEROP=1, which CI's .ci/run
// calls) and skips otherwise.
func TestOAuthInterop(t *testing.T) {
	if os.Getenv("AGENTBROKER_OAUTH_INTEROP") != "1" {
		t.Skip("set AGENTBROKER_OAUTH_INTEROP=1 (interop/mcp/run does, with the npm packages installed)")
	}
	chromium := chromiumPath(t)
	node22 := os.Getenv("AGENTBROKER_NODE22")
	if node22 == "" {
		t.Fatal("AGENTBROKER_NODE22 names a Node 22 binary for the Inspector CLI (interop/mcp/run installs one)")
	}
	interop, err := filepath.Abs("../../interop/mcp")
	if err != nil {
		t.Fatal(err)
	}
	launcher := filepath.Join(interop, "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js")
	if _, err := os.Stat(launcher); err != nil {
		t.Fatalf("the Inspector is not installed (run interop/mcp/run): %v", err)
	}

	dataDir := t.TempDir()
	b := startBroker(t, dataDir)
	admin := adminToken(t, dataDir)
	var proj struct{ ID, Name string }
	_, body := b.do("POST", "/v1/projects", admin, strings.NewReader(
		`{"name":"OAuth interop marker-q7z3","instructions":"Be brief."}`))
	if err := json.Unmarshal([]byte(body), &proj); err != nil || proj.ID == "" {
		t.Fatalf("create project: %s", body)
	}
	mcpURL := b.url("/mcp")

	// The SDK client.
	node := exec.Command("node", filepath.Join(interop, "oauth-client.mjs"))
	node.Dir = interop
	node.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "MCP_URL=" + mcpURL, "NO_COLOR=1"}
	stdin, err := node.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	node.Stderr = &stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = node.Process.Kill()
		_ = node.Wait()
	})
	events := make(chan map[string]any, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				events <- m
			}
		}
	}()
	next := func(want string) map[string]any {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the SDK client ended before %q; stderr:\n%s", want, stderr.String())
			}
			if ev["event"] != want {
				t.Fatalf("SDK client: %v; want event %q; stderr:\n%s", ev, want, stderr.String())
			}
			t.Logf("SDK client: %v", ev["event"])
			return ev
		case <-time.After(2 * time.Minute):
			t.Fatalf("no %q from the SDK client; stderr:\n%s", want, stderr.String())
		}
		return nil
	}

	reg := next("registered")
	authorize := next("authorize")["url"].(string)
	if !strings.HasPrefix(authorize, b.url("/oauth/authorize?")) || !strings.Contains(authorize, "code_challenge_method=S256") {
		t.Fatalf("authorization URL: %s", authorize)
	}

	// The admin, in the browser.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(browserCtx, 3*time.Minute)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("browser: %s: %v (at %s)", what, err, loc)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return v
	}
	// waitJS polls a predicate; a poll cut short by a navigation (the
	// consent page sends the browser to the client's callback: "navigated",
	// "cannot find context") is retried until the deadline.
	waitJS := func(what, expr string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				loc, _ := chromedp.Run(ctx, chromedp.Location())
				t.Fatalf("browser: waiting for %s: %v (at %s)", what, err, loc)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	do("open the authorization URL", chromedp.Navigate(authorize), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, b.url("/console/consent.html?request=")) {
		t.Fatalf("the authorization request landed on %s; want the consent page", loc)
	}
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), admin+"\r"))
	waitJS("the consent form", `document.getElementById("approve") !== null`)
	if name := text("#client-name"); name != "agentbroker OAuth interop (TS SDK)" {
		t.Errorf("consent page shows client %q", name)
	}
	do("pick the project, name the connection", chromedp.SetValue(chromedp.CSS("#project"), proj.ID),
		chromedp.SetValue(chromedp.CSS("#name"), "interop laptop"))
	do("allow", chromedp.Click(chromedp.CSS("#approve")))
	waitJS("the client's callback page", `document.getElementById("done") !== null`)

	if iss := next("callback")["iss"]; iss != b.url("") {
		t.Errorf("callback iss = %v; want %s", iss, b.url(""))
	}
	if text := next("called")["text"].(string); !strings.Contains(text, "marker-q7z3") {
		t.Fatalf("get_project through OAuth: %s", text)
	}
	if text := next("called-after-refresh")["text"].(string); !strings.Contains(text, "marker-q7z3") {
		t.Fatalf("get_project after the refresh: %s", text)
	}
	if r := next("refreshed"); r["rotated"] != true || r["new_access"] != true || r["authorizations"] != float64(1) {
		t.Fatalf("refresh: %v; want a rotated refresh token, a new access token, no new authorization", r)
	}
	token := next("token")["access_token"].(string)

	// The Inspector CLI with the token.
	inspector := func() (string, error) {
		// The token is on the Inspector's command line (it takes headers no
		// other way): a throwaway broker's token, for this test only.
		cmd := exec.Command(node22, launcher, "--cli", mcpURL, "--transport", "http", "--format", "json",
			"--connect-timeout", "15000", "--header", "Authorization: Bearer "+token,
			"--method", "tools/call", "--tool-name", "get_project")
		home := t.TempDir()
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "NO_COLOR=1", "MCP_STORAGE_DIR=" + filepath.Join(home, "storage")}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := inspector(); err != nil || !strings.Contains(out, "marker-q7z3") {
		t.Fatalf("Inspector CLI with the OAuth token: %v\n%s", err, out)
	}

	// The admin revokes the connection in the console.
	do("open the connections", chromedp.Navigate(b.url("/console/consent.html")),
		chromedp.WaitVisible(chromedp.CSS("#connections button.revoke")))
	if row := text("#connections tbody tr"); !strings.Contains(row, "interop laptop") || !strings.Contains(row, proj.ID) || !strings.Contains(row, "active") {
		t.Errorf("connection row: %q", row)
	}
	do("revoke", chromedp.Click(chromedp.CSS("#connections button.revoke")))
	waitJS("the revoked row", `document.querySelector("#connections tbody tr")?.textContent.includes("revoked")`)

	// Refused from then on.
	if _, err := io.WriteString(stdin, "call-again\n"); err != nil {
		t.Fatal(err)
	}
	// The SDK's refresh is refused too, so it starts a new authorization
	// (which nobody will consent to), and the call fails.
	if again := next("authorize")["url"].(string); !strings.HasPrefix(again, b.url("/oauth/authorize?")) {
		t.Errorf("second authorization URL: %s", again)
	}
	refused := next("refused")
	if refused["authorizations"] != float64(2) {
		t.Errorf("after the revocation the SDK client authorized %v times; want a second authorization (its refresh token refused)", refused["authorizations"])
	}
	t.Logf("SDK client refused: %v", refused["message"])
	if out, err := inspector(); err == nil || strings.Contains(out, "marker-q7z3") {
		t.Errorf("Inspector CLI with the revoked token: %v\n%s", err, out)
	}
	if !strings.Contains(b.log(), "oauth connection revoked") || !strings.Contains(b.log(), reg["client_id"].(string)) {
		t.Errorf("the broker's log lacks the registration or the revocation")
	}
}
