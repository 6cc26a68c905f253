package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/agentbroker/agentbroker/catalog"
)

func catalogCommand() *command {
	var agent, file string
	var jsonOut bool
	return &command{
		name:    "catalog",
		summary: "list and check the model catalog",
		children: []*command{
			{
				name:    "list",
				summary: "list the catalog's models, or one agent's picker (--agent)",
				flags: func(fs *flag.FlagSet, c *config) {
					catalogFlag(fs, c)
					fs.StringVar(&agent, "agent", "", "show this agent's picker: claude-code, codex, amp, gemini, opencode, copilot or qwen")
					fs.BoolVar(&jsonOut, "json", false, "print JSON (with --agent: the picker payload of /v1/models)")
				},
				run: func(_ context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "catalog list takes flags only")
					}
					cat, err := loadCatalog(c)
					if err != nil {
						return err
					}
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					if agent != "" {
						entries, err := cat.ForUI(agent)
						if err != nil {
							return err
						}
						if jsonOut {
							return enc.Encode(entries)
						}
						tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tCONTEXT\tMAX OUT\t")
						for _, m := range entries {
							status := string(m.Status)
							if m.Default {
								status += " (default)"
							}
							if m.Replacement != "" {
								status += ", use " + m.Replacement
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t\n", m.ID, m.DisplayName, status, m.Limits.Context, m.Limits.MaxOutput)
						}
						return tw.Flush()
					}
					if jsonOut {
						return enc.Encode(cat.Models())
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tPROVIDER\tLAB\tSTATUS\tENDPOINTS\tALIASES\t")
					for _, m := range cat.Models() {
						eps := make([]string, len(m.Endpoints))
						for i, ep := range m.Endpoints {
							eps[i] = string(ep)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", m.ID, m.Provider, m.Lab, m.Lifecycle.Status,
							strings.Join(eps, ","), strings.Join(m.Aliases, ","))
					}
					return tw.Flush()
				},
			},
			{
				name:    "check",
				summary: "check the catalog, or an override file (--file), and print every problem",
				flags: func(fs *flag.FlagSet, c *config) {
					fs.StringVar(&file, "file", "", "an override file to check, layered on the embedded catalog")
				},
				run: func(_ context.Context, c *config, e *env, args []string) error {
					if len(args) > 0 {
						return usageError(e, "catalog check takes flags only (--file F)")
					}
					var data []byte
					if file != "" {
						var err error
						if data, err = readLimited(file, catalog.MaxFileSize); err != nil {
							return err
						}
					}
					problems := catalog.Check(data)
					for _, p := range problems {
						fmt.Fprintln(e.stdout, p.String())
					}
					name := "the embedded catalog"
					if file != "" {
						name = file
					}
					if len(problems) > 0 {
						fmt.Fprintf(e.stdout, "%s: %d problem(s)\n", name, len(problems))
						return errSilent
					}
					fmt.Fprintf(e.stdout, "%s: ok\n", name)
					return nil
				},
			},
		},
	}
}
