package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentbroker/agentbroker/acp/profile"
	"github.com/agentbroker/agentbroker/acp/sandbox"
	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/internal/adminapi"
	"github.com/agentbroker/agentbroker/internal/cliflag"
	"github.com/agentbroker/agentbroker/internal/console"
	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/internal/server"
	"github.com/agentbroker/agentbroker/mcpserver"
	"github.com/agentbroker/agentbroker/proxy"
	"github.com/agentbroker/agentbroker/sessions"
	"github.com/agentbroker/agentbroker/store/sqlite"
	"github.com/agentbroker/agentbroker/tokens"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		daemon:  true,
		summary: "run the broker: HTTP API, web console, health and metrics on a loopback address",
		flags: func(fs *flag.FlagSet, c *config) {
			storeFlags(fs, c)
			catalogFlag(fs, c)
			tokenFlags(fs, c)
			fs.StringVar(&c.Listen, "listen", c.Listen, "address to listen on (host:port; keep it on loopback unless a proxy guards it)")
			cliflag.DurationVar(fs, &c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long the stop on SIGINT/SIGTERM may take: turns in flight are cancelled, requests finish; a second signal stops at once")
			cliflag.DurationVar(fs, &c.AdminTokenTTL, "admin-token-ttl", c.AdminTokenTTL, "lifetime of the admin token created at start")
			fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "the broker's URL as agents and browsers reach it (default http://<listen address>)")
			providerFlags(fs, c)
			fs.StringVar(&c.AgentsDir, "agents-dir", c.AgentsDir, "where the agents' npm packages are installed (default <data-dir>/agents)")
			fs.StringVar(&c.CustomAgent, "custom-agent", c.CustomAgent, "the command of the custom profile: any ACP agent, e.g. the reference agent")
			fs.Var(&c.CustomAgentEnv, "custom-agent-env", "KEY=VALUE added to the custom agent's environment ({session_dir} is replaced); repeat for more")
			fs.StringVar(&c.AmpCommand, "amp-command", c.AmpCommand, "the amp-acp adapter's command (the Amp profile is off without it)")
			sandboxFlags(fs, c)
			fleetFlags(fs, c)
			fs.Var(&c.AllowedOrigins, "allowed-origin", "a browser origin (scheme://host:port) allowed besides the broker's own; repeat for more")
		},
		run: func(ctx context.Context, c *config, e *env, args []string) error {
			if len(args) > 0 {
				return usageError(e, "serve takes no arguments (did you mean --listen %s?)", args[0])
			}
			return serve(ctx, c, e)
		},
	}
}

func tokenFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, "the iss claim of every token minted and required")
	cliflag.DurationVar(fs, &c.TokenMaxTTL, "token-max-ttl", c.TokenMaxTTL, "the longest lifetime a session token may be given")
}

// serve runs the broker until ctx ends.
func serve(ctx context.Context, c *config, e *env) error {
	log, err := c.logger(e.stderr)
	if err != nil {
		return err
	}
	// Agents are processes of the broker's user when it is not root: they
	// must not read its environment (platform keys), memory or descriptors.
	if err := sandbox.ProtectSelf(); err != nil {
		log.Warn("the broker could not make itself non-dumpable: processes of its user can read its memory", "err", err)
	}
	cat, err := loadCatalog(c)
	if err != nil {
		return err
	}
	log.Info("model catalog loaded", "models", len(cat.Models()), "hash", cat.Hash(), "override", c.CatalogFile)

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	defer ln.Close()
	if !isLoopback(ln.Addr()) {
		log.Warn("listening on a non-loopback address: anyone who can reach it can try the API", "addr", ln.Addr().String())
	}

	unlock, err := sqlite.LockServe(c.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	st, where, err := openBrokerStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store open", "path", where)
	node, err := nodeID(c)
	if err != nil {
		return err
	}
	log.Info("node", "node", node, "store", storeKind(c))

	svc, err := tokens.New(ctx, st, st, c.tokenOptions(log))
	if err != nil {
		return fmt.Errorf("start token service: %w", err)
	}
	adminPath, created, err := ensureAdminToken(ctx, svc, c.DataDir, c.AdminTokenTTL)
	if err != nil {
		return err
	}
	if created {
		log.Info("admin token created; send it as 'Authorization: Bearer …'", "file", adminPath)
	} else {
		log.Info("admin token", "file", adminPath)
	}

	publicURL := c.PublicURL
	if publicURL == "" {
		publicURL = "http://" + ln.Addr().String()
	}
	publicURL = strings.TrimSuffix(publicURL, "/")
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the broker's own executable (for mcp-bridge): %w", err)
	}
	confinement, readyInfo, err := c.confinement(publicURL, log)
	if err != nil {
		return err
	}
	agents := c.agentConfigs()
	if ac, ok := agents[profile.Custom]; ok {
		// Refused here, not at the first session: the custom profile owns
		// only what it sets (HOME, AGENTBROKER_*).
		if err := profile.CheckExtraEnv(profile.Custom, ac.ExtraEnv); err != nil {
			return fmt.Errorf("--custom-agent-env: %w", err)
		}
	}
	reach := map[string]string{"the broker's binary (the MCP bridge)": self}
	for name, ac := range agents {
		if ac.InstallDir != "" {
			reach["the agents directory"] = ac.InstallDir
		}
		if len(ac.Command) > 0 && filepath.IsAbs(ac.Command[0]) {
			reach["the "+string(name)+" agent's command"] = ac.Command[0]
		}
	}
	if err := checkReachable(confinement.Policy.User, c.sessionsDir(), reach, log); err != nil {
		return err
	}
	upstreams, err := c.upstreams(e.getenv, log)
	if err != nil {
		return err
	}
	platformKeys := map[catalog.Provider]bool{}
	for p, u := range upstreams {
		platformKeys[p] = u.APIKey != ""
	}
	mgrOpts := sessions.Options{
		Store:          st,
		Tokens:         svc,
		Models:         cat,
		SessionsDir:    c.sessionsDir(),
		Confinement:    confinement,
		MCPURL:         publicURL + "/mcp",
		BridgeCommand:  self,
		ProxyBaseURL:   publicURL,
		PublicURL:      publicURL,
		Agents:         agents,
		PlatformKeys:   platformKeys,
		TokenLifetime:  c.TokenMaxTTL,
		AllowedOrigins: c.AllowedOrigins,
		Logger:         log,
	}
	fleetOptions(&mgrOpts, st, node, publicURL, c.LeaseTTL)
	mgr, err := sessions.New(mgrOpts)
	if err != nil {
		return fmt.Errorf("start session broker: %w", err)
	}
	// Sessions stop as the server does (its shutdown hook): their turns in
	// flight are cancelled, so the requests waiting on them end and the
	// stop fits in the shutdown timeout.
	// (Sessions being recovered are stopped once recovered.)
	sessionsStop := newSessionStopper(ctx, mgr, c.ShutdownTimeout, log)
	defer sessionsStop.Stop()
	recovering := make(chan struct{})

	reg := metrics.NewRegistry()
	authServer, err := c.oauthServer(svc, st, publicURL, log)
	if err != nil {
		return err
	}
	nodeMetrics(reg, c, node, mgr)
	mcp, err := mcpserver.New(&mcpserver.Options{
		Store:                st,
		Tokens:               svc,
		Observer:             mgr,
		ResourceURL:          publicURL + "/mcp",
		AuthorizationServers: []string{authServer.Issuer()},
		AllowedOrigins:       c.AllowedOrigins,
		Metrics:              reg,
		Logger:               log,
		Version:              version,
	})
	if err != nil {
		return fmt.Errorf("start MCP server: %w", err)
	}
	srv := server.New(&server.Options{
		Logger:          log,
		Metrics:         reg,
		Health:          st,
		ReadyInfo:       readyInfo,
		ReadyFunc:       nodeReady(c, node, mgr),
		ShutdownTimeout: c.ShutdownTimeout,
		OnShutdown:      []func(){func() { mcp.Close() }, func() { <-recovering; sessionsStop.Stop() }},
	})
	mcp.Mount(srv)
	authServer.Mount(srv)
	px, err := proxy.New(&proxy.Options{
		Tokens:    svc,
		Catalog:   cat,
		Upstreams: upstreams,
		Recorder:  mgr,
		Budget:    mgr,
		UserKey:   mgr.UserKey,
		Metrics:   reg,
		Logger:    log,
	})
	if err != nil {
		return fmt.Errorf("start inference proxy: %w", err)
	}
	defer px.Close()
	px.Mount(srv)
	srv.Handle("GET /v1/models", catalog.Handler(cat))
	srv.Handle("GET /.well-known/jwks.json", svc.KeyRing().JWKSHandler())
	adminapi.Mount(srv, svc, cat)
	adminapi.MountProjects(srv, svc, st)
	mgr.Mount(srv)
	console.Mount(srv, &console.Options{Agents: consoleAgents(c.agentConfigs())})

	// Keys rotated by another process (agentbroker keys rotate) are picked
	// up without a restart.
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		_ = svc.KeyRing().RefreshEvery(bg, 30*time.Second)
	}()
	defer func() { stopBG(); <-refreshed }()

	// Sessions a previous broker left live come back in two steps: before
	// serving, from the store alone (each is "starting" from the first
	// request on, or ended if it cannot be resumed); once the server
	// serves, their agents are relaunched: they connect back to its MCP
	// endpoint during session/load, and readiness waits for that.
	finishRecovery, err := mgr.BeginRecovery(ctx)
	if err != nil {
		log.Warn("recovering sessions", "err", err)
	}
	go func() {
		defer close(recovering)
		if finishRecovery == nil {
			return
		}
		recovered, err := finishRecovery()
		if err != nil {
			log.Warn("recovering sessions", "err", err)
		}
		for _, r := range recovered {
			log.Info("session recovered", "session", r.ID, "state", string(r.State), "err", r.Error)
		}
	}()
	defer func() { <-recovering }() // before the sessions are closed

	removeURL, err := writeBrokerURL(c.DataDir, publicURL)
	if err != nil {
		return err
	}
	defer removeURL()
	log.Info("console: open "+publicURL+"/ and sign in with the admin token in "+adminPath,
		"url", publicURL+"/", "admin_token_file", adminPath, "url_file", filepath.Join(c.DataDir, BrokerURLFile))
	if c.onReady != nil {
		c.onReady(publicURL)
	}
	err = srv.Run(ctx, ln)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (c *config) tokenOptions(log *slog.Logger) *tokens.Options {
	return &tokens.Options{
		Issuer:           c.Issuer,
		MaxLifetime:      c.TokenMaxTTL,
		AdminMaxLifetime: c.AdminTokenTTL,
		Logger:           log,
	}
}

func loadCatalog(c *config) (*catalog.Catalog, error) {
	if c.CatalogFile == "" {
		return catalog.Load(nil)
	}
	data, err := readLimited(c.CatalogFile, catalog.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("catalog file: %w", err)
	}
	cat, err := catalog.Load(data)
	if err != nil {
		return nil, fmt.Errorf("catalog file %s: %w", c.CatalogFile, err)
	}
	return cat, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// providerFlags registers, for each provider of the catalog's table, where
// the inference proxy sends its calls and the file with its platform key.
func providerFlags(fs *flag.FlagSet, c *config) {
	for _, p := range catalog.Providers() {
		pc := c.Providers[p.Name]
		fs.StringVar(&pc.Upstream, string(p.Name)+"-upstream", pc.Upstream,
			fmt.Sprintf("where the inference proxy sends %s calls (%s)", p.Name, strings.Join(endpointNames(p.APIs), ", ")))
		fs.StringVar(&pc.KeyFile, string(p.Name)+"-key-file", pc.KeyFile,
			fmt.Sprintf("a 0600 file with the platform's %s key (or set %s)", p.Name, p.KeyEnv))
	}
}

func endpointNames(eps []catalog.Endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = string(ep)
	}
	return out
}

// upstreams configures the inference proxy's providers. A provider without
// a platform key still routes sessions that bring their own; its platform
// sessions are refused with a clear error, and the log says so at start.
func (c *config) upstreams(getenv func(string) string, log *slog.Logger) (map[catalog.Provider]proxy.Upstream, error) {
	out := map[catalog.Provider]proxy.Upstream{}
	for _, p := range catalog.Providers() {
		pc := c.Providers[p.Name]
		key := getenv(p.KeyEnv)
		if key == "" && pc.KeyFile != "" {
			var err error
			if key, err = proxy.LoadKey("", pc.KeyFile); err != nil {
				return nil, fmt.Errorf("inference proxy: %s key: %w", p.Name, err)
			}
		}
		if key == "" {
			log.Info("inference proxy: no platform key; only sessions with their own key reach this provider",
				"provider", string(p.Name), "env", p.KeyEnv)
		}
		out[p.Name] = proxy.Upstream{BaseURL: pc.Upstream, APIKey: key}
	}
	return out, nil
}

// agentConfigs says where each profile's agent is: every profile the
// broker installs from the registry (profile.Profile.Installable) under the
// agents directory, amp and custom by explicit command.
func (c *config) agentConfigs() map[profile.Name]sessions.AgentConfig {
	dir := c.AgentsDir
	if dir == "" {
		dir = filepath.Join(c.DataDir, "agents")
	}
	agents := map[profile.Name]sessions.AgentConfig{}
	for _, p := range profile.All() {
		if p.Installable() {
			agents[p.Name] = sessions.AgentConfig{InstallDir: dir}
		}
	}
	if c.AmpCommand != "" {
		agents[profile.Amp] = sessions.AgentConfig{InstallDir: dir, Command: strings.Fields(c.AmpCommand)}
	}
	if c.CustomAgent != "" {
		agents[profile.Custom] = sessions.AgentConfig{Command: strings.Fields(c.CustomAgent), ExtraEnv: c.CustomAgentEnv}
	}
	return agents
}

// consoleAgents lists, for the console's start form, the agents this broker
// can launch, with the catalog agent whose models each may use (as
// sessions.Manager decides it) and the credential kinds each accepts.
func consoleAgents(configured map[profile.Name]sessions.AgentConfig) []console.Agent {
	var out []console.Agent
	for _, p := range profile.All() {
		ac, ok := configured[p.Name]
		if !ok {
			continue
		}
		a := console.Agent{Name: string(p.Name), Title: p.Title, CatalogAgent: p.Agent}
		if p.Name == profile.Custom {
			a.CatalogAgent = ac.CatalogAgent
		}
		for _, k := range p.Credentials {
			a.Credentials = append(a.Credentials, string(k))
		}
		if p.Installable() && len(ac.Command) == 0 {
			ok, _ := p.Installed(ac.InstallDir)
			a.NotInstalled = !ok
		}
		out = append(out, a)
	}
	return out
}
