package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/agentbroker/agentbroker/sessions"
)

func usageCommand() *command {
	var project, task, session, since, until, groupBy string
	var jsonOut bool
	return &command{
		name:    "usage",
		summary: "model usage and cost at catalog prices, by project, task, session, day or model",
		flags: func(fs *flag.FlagSet, c *config) {
			brokerFlags(fs, c)
			fs.StringVar(&project, "project", "", "only this project's calls (ID or name)")
			fs.StringVar(&task, "task", "", "only the calls of sessions linked to this task")
			fs.StringVar(&session, "session", "", "only this session's calls")
			fs.StringVar(&since, "since", "", "calls from this time on (RFC 3339, or a UTC date 2006-01-02)")
			fs.StringVar(&until, "until", "", "calls before this time (RFC 3339, or a UTC date)")
			fs.StringVar(&groupBy, "group-by", "", "one row per day, session, task or model (default: one total)")
			fs.BoolVar(&jsonOut, "json", false, "print the API's JSON")
		},
		run: func(ctx context.Context, c *config, e *env, args []string) error {
			if len(args) > 0 {
				return usageError(e, "usage takes flags only")
			}
			a, err := newAPIClient(c)
			if err != nil {
				return err
			}
			if project, err = a.projectID(ctx, project); err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"project": project, "task": task, "session": session,
				"since": since, "until": until, "group_by": groupBy} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var out struct {
				GroupBy string           `json:"group_by"`
				Total   *sessions.Usage  `json:"total,omitempty"`
				Groups  []sessions.Usage `json:"groups,omitempty"`
			}
			if err := a.call(ctx, "GET", "/v1/usage?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			rows := out.Groups
			key := out.GroupBy
			if out.Total != nil {
				rows, key = []sessions.Usage{*out.Total}, "total"
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "%s\tCALLS\tINPUT\tOUTPUT\tCACHE READ\tCACHE WRITE\tCOST USD\t\n", key)
			for _, r := range rows {
				k := r.Key
				if out.Total != nil {
					k = "all"
				} else if k == "" {
					k = "(none)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", k, r.Calls, r.InputTokens, r.OutputTokens,
					r.CacheReadTokens, r.CacheWriteTokens, r.CostUSD)
			}
			return tw.Flush()
		},
	}
}
