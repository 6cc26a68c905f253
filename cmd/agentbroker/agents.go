package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/agentbroker/agentbroker/acp/profile"
)

// agentsCommand installs and lists the agents' adapters (the npm packages
// the profiles pin) in the agents directory serve reads (--agents-dir,
// default <data-dir>/agents).
func agentsCommand() *command {
	var npm string
	var jsonOut bool
	// Only files in the agents directory: no store, no broker (adapters
	// are installed before serve starts).
	flags := func(fs *flag.FlagSet, c *config) {
		fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "the broker's data directory (its agents directory is <data-dir>/agents)")
		fs.StringVar(&c.AgentsDir, "agents-dir", c.AgentsDir, "the agents directory (default <data-dir>/agents)")
		logFlags(fs, c)
	}
	return &command{
		name:    "agents",
		summary: "install and list the agents' adapters (pinned npm packages)",
		children: []*command{
			{
				name:    "list",
				summary: "each profile, its pinned package and version, and whether it is installed (files only: works with the broker stopped)",
				flags: func(fs *flag.FlagSet, c *config) {
					flags(fs, c)
					fs.BoolVar(&jsonOut, "json", false, "print JSON: [{profile, package, version, installed, why}]")
				},
				run: func(_ context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "agents list takes flags only")
					}
					if jsonOut {
						return agentsListJSON(e, c.agentsDir())
					}
					return agentsList(e, c.agentsDir())
				},
			},
			{
				name:    "install",
				args:    "[NAME…]",
				summary: "install the pinned adapters (all installable profiles, or those named) with npm, showing progress (files only: works with the broker stopped)",
				flags: func(fs *flag.FlagSet, c *config) {
					flags(fs, c)
					fs.StringVar(&npm, "npm", "npm", "the npm command")
				},
				run: func(ctx context.Context, c *config, e *env, args []string) error {
					return agentsInstall(ctx, e, c.agentsDir(), npm, args)
				},
			},
		},
	}
}

func (c *config) agentsDir() string {
	if c.AgentsDir != "" {
		return c.AgentsDir
	}
	return filepath.Join(c.DataDir, "agents")
}

func agentsList(e *env, dir string) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tPACKAGE\tVERSION\tINSTALLED\t")
	for _, p := range profile.All() {
		pkg, version, state := "-", "-", "configured by command (serve flag)"
		if p.Installable() {
			pkg, version = p.PackageName(), p.Version()
			ok, why := p.Installed(dir)
			state = "yes"
			if !ok {
				state = "no (" + why + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", p.Name, pkg, version, state)
	}
	fmt.Fprintf(tw, "\nagents directory: %s\n", dir)
	return tw.Flush()
}

// agentInstall is one profile's line of agents list --json.
type agentInstall struct {
	Profile   string `json:"profile"`
	Package   string `json:"package,omitempty"`
	Version   string `json:"version,omitempty"`
	Installed bool   `json:"installed"`
	Why       string `json:"why,omitempty"`
}

func agentsListJSON(e *env, dir string) error {
	out := []agentInstall{}
	for _, p := range profile.All() {
		a := agentInstall{Profile: string(p.Name), Why: "configured by command (serve flag)"}
		if p.Installable() {
			a.Package, a.Version = p.PackageName(), p.Version()
			a.Installed, a.Why = p.Installed(dir)
		}
		out = append(out, a)
	}
	return printJSON(e.stdout, out)
}

func agentsInstall(ctx context.Context, e *env, dir, npm string, names []string) error {
	var todo []profile.Profile
	if len(names) == 0 {
		for _, p := range profile.All() {
			if p.Installable() {
				todo = append(todo, p)
			}
		}
	}
	for _, n := range names {
		p, err := profile.Lookup(profile.Name(n))
		if err != nil {
			return usageError(e, "agents install: %v", err)
		}
		if !p.Installable() {
			return usageError(e, "agents install: the %s profile runs a configured command; nothing to install", n)
		}
		todo = append(todo, p)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("agents directory: %w", err)
	}
	for i, p := range todo {
		prefix := fmt.Sprintf("[%d/%d] %s", i+1, len(todo), p.Name)
		if ok, _ := p.Installed(dir); ok {
			fmt.Fprintf(e.stdout, "%s: %s already installed in %s\n", prefix, p.Package, dir)
			continue
		}
		start := time.Now()
		fmt.Fprintf(e.stdout, "%s: npm install %s into %s …\n", prefix, p.Package, dir)
		cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund",
			"--loglevel=http", p.Package)
		cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: npm install %s: %w", p.Name, p.Package, err)
		}
		if pi := p.PostInstallFor(dir); pi != nil {
			fmt.Fprintf(e.stdout, "%s: %s …\n", prefix, pi.What)
			cmd := exec.CommandContext(ctx, pi.Path, pi.Args...)
			cmd.Env, cmd.Dir = pi.Env, dir
			cmd.Stdout, cmd.Stderr = e.stderr, e.stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %s: %w", p.Name, pi.What, err)
			}
		}
		if ok, why := p.Installed(dir); !ok {
			return fmt.Errorf("%s: installed, but %s", p.Name, why)
		}
		fmt.Fprintf(e.stdout, "%s: installed in %s\n", prefix, time.Since(start).Round(time.Second))
	}
	return nil
}
