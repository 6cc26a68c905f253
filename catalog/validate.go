package catalog

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bounds that catch unit mistakes (a price typed in USD or pico-USD, a
// limit typed in characters).
const (
	maxPrice     = 10_000_000_000 // $10,000 per million tokens, in micro-USD
	maxTokens    = 100_000_000    // no model has a window near this
	maxIDLength  = 100
	snapshotDays = 60 // how far a dated ID may sit from the release date
)

// validate checks every invariant of a merged catalog and returns every
// problem. origin locates entries in the embedded file or the override.
func validate(f *file, origin map[string]string) []Problem {
	v := &validator{origin: origin, byID: make(map[string]*Model), wire: make(map[string]string)}
	if len(f.Models) == 0 {
		v.problems = append(v.problems, Problem{Field: "models", Message: "the catalog has no models"})
	}
	if len(f.Agents) == 0 {
		v.problems = append(v.problems, Problem{Field: "agents", Message: "the catalog has no agent policies"})
	}
	// Canonical IDs first, so that an alias colliding with any model's ID
	// is caught whatever the order of entries.
	for i := range f.Models {
		m := &f.Models[i]
		if _, dup := v.byID[m.ID]; dup {
			v.model(m, "id", "two models have this id")
			continue
		}
		v.byID[m.ID] = m
		v.wire[m.ID] = m.ID
	}
	for i := range f.Models {
		m := &f.Models[i]
		for j, a := range m.Aliases {
			field := fmt.Sprintf("aliases[%d]", j)
			switch owner, taken := v.wire[a]; {
			case a == m.ID:
				v.model(m, field, "an alias may not repeat the model's own id")
			case taken && owner == m.ID:
				v.model(m, field, "alias %q is listed twice", a)
			case taken && v.byID[a] != nil:
				v.model(m, field, "alias %q is the id of another model", a)
			case taken:
				v.model(m, field, "alias %q is already an alias of %q", a, owner)
			default:
				v.wire[a] = m.ID
			}
		}
	}
	for i := range f.Models {
		v.checkModel(&f.Models[i])
	}
	seen := make(map[string]bool)
	for i := range f.Agents {
		p := &f.Agents[i]
		if seen[p.Agent] {
			v.agent(p, "agent", "two policies have this agent name")
			continue
		}
		seen[p.Agent] = true
		v.checkPolicy(p)
	}
	return v.problems
}

type validator struct {
	origin   map[string]string
	byID     map[string]*Model
	wire     map[string]string // canonical IDs and aliases → canonical ID
	problems []Problem
}

func (v *validator) model(m *Model, field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Source: v.origin["model:"+m.ID], Model: m.ID, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) agent(p *Policy, field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Source: v.origin["agent:"+p.Agent], Agent: p.Agent, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) checkModel(m *Model) {
	retired := m.Lifecycle.Status == StatusRetired

	v.checkWireID(m, "id", m.ID)
	for j, a := range m.Aliases {
		v.checkWireID(m, fmt.Sprintf("aliases[%d]", j), a)
	}
	if m.Lab == "" {
		v.model(m, "lab", "is required (who made the model)")
	}
	if m.DisplayName == "" {
		v.model(m, "display_name", "is required")
	}
	if m.Family == "" {
		v.model(m, "family", "is required")
	}

	// Provider, and the diagnostics classifier agreeing with it.
	prov, known := LookupProvider(m.Provider)
	switch {
	case known:
		for j, id := range append([]string{m.ID}, m.Aliases...) {
			field := "id"
			if j > 0 {
				field = fmt.Sprintf("aliases[%d]", j-1)
			}
			got, err := DetectProvider(id)
			switch {
			case err != nil:
				v.model(m, field, "DetectProvider does not recognise %q (%v); the catalog and the diagnostics must agree", id, err)
			case got != m.Provider:
				v.model(m, field, "DetectProvider classifies %q as %s, but the model's provider is %s", id, got, m.Provider)
			}
		}
	case m.Provider == "":
		v.model(m, "provider", "is required (one of %s)", providerNames())
	default:
		v.model(m, "provider", "%q is not a provider the proxy can route to (%s)", m.Provider, providerNames())
	}

	// Endpoints.
	if len(m.Endpoints) == 0 && !retired {
		v.model(m, "endpoints", "a model that is not retired must serve at least one endpoint")
	}
	for j, ep := range m.Endpoints {
		field := fmt.Sprintf("endpoints[%d]", j)
		switch {
		case !validEndpoint(ep):
			v.model(m, field, "unknown endpoint %q (%s)", ep, endpointNames())
		case slices.Index(m.Endpoints, ep) != j:
			v.model(m, field, "endpoint %q is listed twice", ep)
		case known && !prov.Serves(ep):
			v.model(m, field, "provider %s does not serve the %s API", m.Provider, ep)
		}
	}

	// Limits.
	l := m.Limits
	for _, x := range []struct {
		field string
		n     int64
	}{{"limits.context", l.Context}, {"limits.max_input", l.MaxInput}, {"limits.max_output", l.MaxOutput}} {
		switch {
		case x.n < 0:
			v.model(m, x.field, "is negative (%d)", x.n)
		case x.n > maxTokens:
			v.model(m, x.field, "%d tokens is implausible (the bound is %d)", x.n, maxTokens)
		}
	}
	if !retired {
		if l.Context <= 0 {
			v.model(m, "limits.context", "is required for a model that is not retired")
		}
		if l.MaxOutput <= 0 {
			v.model(m, "limits.max_output", "is required for a model that is not retired")
		}
	}
	if l.Context > 0 && l.MaxOutput > l.Context {
		v.model(m, "limits.max_output", "%d is above the context window %d", l.MaxOutput, l.Context)
	}
	if l.Context > 0 && l.MaxInput > l.Context {
		v.model(m, "limits.max_input", "%d is above the context window %d", l.MaxInput, l.Context)
	}

	v.checkPrices(m, retired)

	// Reasoning efforts.
	for j, e := range m.ReasoningEfforts {
		field := fmt.Sprintf("reasoning_efforts[%d]", j)
		switch {
		case !validEffort(e):
			v.model(m, field, "unknown effort %q (none, minimal, low, medium, high, xhigh, max)", e)
		case slices.Index(m.ReasoningEfforts, e) != j:
			v.model(m, field, "effort %q is listed twice", e)
		}
	}

	v.checkLifecycle(m)

	// Provenance.
	if strings.TrimSpace(m.Provenance.Source) == "" {
		v.model(m, "provenance.source", "is required: where does this row come from?")
	}
	verified, ok := v.date(m, "provenance.verified_on", m.Provenance.VerifiedOn, true)
	if released, rok := parseDate(m.Lifecycle.Released); ok && rok && verified.Before(released) {
		v.model(m, "provenance.verified_on", "%s is before the release date %s", m.Provenance.VerifiedOn, m.Lifecycle.Released)
	}
}

// checkWireID checks the shape of an ID or alias and its date suffix.
func (v *validator) checkWireID(m *Model, field, id string) {
	if !validWireID(id) {
		v.model(m, field, "%q is not a valid model ID (lowercase letters, digits, '.' and '-', starting with a letter or digit, at most %d characters)", id, maxIDLength)
		return
	}
	suffix, ok := dateSuffix(id)
	if !ok {
		return
	}
	snap, err := time.Parse(time.DateOnly, suffix)
	if err != nil {
		v.model(m, field, "%q ends in what looks like a date (%s) but is not a valid date", id, suffix)
		return
	}
	released, rok := parseDate(m.Lifecycle.Released)
	if !rok {
		return // checked, if required, by checkLifecycle
	}
	days := int(released.Sub(snap).Hours() / 24)
	switch {
	case days > snapshotDays:
		v.model(m, field, "the date in %q (%s) is %d days before the release date %s; a snapshot precedes its release by at most %d days",
			id, suffix, days, m.Lifecycle.Released, snapshotDays)
	case -days > snapshotDays:
		v.model(m, field, "the date in %q (%s) is %d days after the release date %s; a dated ID names the released snapshot, so one of the two dates is wrong (or this is a later snapshot that needs its own entry)",
			id, suffix, -days, m.Lifecycle.Released)
	}
}

func (v *validator) checkPrices(m *Model, retired bool) {
	p := m.Prices
	if !retired {
		if p.Input <= 0 {
			v.model(m, "prices.input", "is required for a model that is not retired")
		}
		if p.Output <= 0 {
			v.model(m, "prices.output", "is required for a model that is not retired")
		}
	}
	base := PriceTier{Input: p.Input, Output: p.Output, CacheRead: p.CacheRead, CacheWrite5m: p.CacheWrite5m, CacheWrite1h: p.CacheWrite1h}
	v.checkPriceLevel(m, "prices", base)
	prev := base
	for j, t := range p.Tiers {
		field := fmt.Sprintf("prices.tiers[%d]", j)
		v.checkPriceLevel(m, field, t)
		switch {
		case t.AboveInputTokens <= 0:
			v.model(m, field+".above_input_tokens", "must be positive")
		case j > 0 && t.AboveInputTokens <= prev.AboveInputTokens:
			v.model(m, field+".above_input_tokens", "%d is not above the previous tier's %d: tiers ascend", t.AboveInputTokens, prev.AboveInputTokens)
		case m.Limits.Context > 0 && t.AboveInputTokens >= m.Limits.Context:
			v.model(m, field+".above_input_tokens", "%d is not below the context window %d: the tier could never apply", t.AboveInputTokens, m.Limits.Context)
		}
		for _, x := range []struct {
			name       string
			prev, this int64
		}{
			{"input", prev.Input, t.Input}, {"output", prev.Output, t.Output},
			{"cache_read", prev.CacheRead, t.CacheRead},
			{"cache_write_5m", prev.CacheWrite5m, t.CacheWrite5m},
			{"cache_write_1h", prev.CacheWrite1h, t.CacheWrite1h},
		} {
			if x.prev > 0 && x.this < x.prev {
				v.model(m, field+"."+x.name, "%d is below the price it replaces (%d): a long-context tier never lowers a price", x.this, x.prev)
			}
		}
		prev = t
	}
}

// checkPriceLevel checks one set of prices (the base or a tier).
func (v *validator) checkPriceLevel(m *Model, field string, p PriceTier) {
	for _, x := range []struct {
		name string
		n    int64
	}{{"input", p.Input}, {"output", p.Output}, {"cache_read", p.CacheRead}, {"cache_write_5m", p.CacheWrite5m}, {"cache_write_1h", p.CacheWrite1h}} {
		switch {
		case x.n < 0:
			v.model(m, field+"."+x.name, "is negative (%d)", x.n)
		case x.n > maxPrice:
			v.model(m, field+"."+x.name, "%d micro-USD per million tokens ($%d/M) is implausible: prices are in micro-USD per million tokens", x.n, x.n/1_000_000)
		}
	}
	if p.CacheRead > p.Input {
		v.model(m, field+".cache_read", "cache read price %d is above the input price %d", p.CacheRead, p.Input)
	}
	switch {
	case p.CacheWrite1h == 0:
	case p.CacheWrite5m == 0:
		v.model(m, field+".cache_write_1h", "a 1-hour cache write price needs a 5-minute one")
	case p.CacheWrite1h < p.CacheWrite5m:
		v.model(m, field+".cache_write_1h", "1-hour cache write price %d is below the 5-minute price %d", p.CacheWrite1h, p.CacheWrite5m)
	case p.CacheWrite1h > 2*p.CacheWrite5m:
		v.model(m, field+".cache_write_1h", "1-hour cache write price %d is more than twice the 5-minute price %d (a copy error?)", p.CacheWrite1h, p.CacheWrite5m)
	}
}

func (v *validator) checkLifecycle(m *Model) {
	lc := m.Lifecycle
	if !validStatus(lc.Status) {
		v.model(m, "lifecycle.status", "%q is not a status (preview, active, deprecated or retired)", lc.Status)
		return
	}
	released, rok := v.date(m, "lifecycle.released", lc.Released, lc.Status != StatusRetired)
	deprecated, dok := v.date(m, "lifecycle.deprecated", lc.Deprecated, false)
	shutdown, sok := v.date(m, "lifecycle.shutdown", lc.Shutdown, false)
	if rok && dok && deprecated.Before(released) {
		v.model(m, "lifecycle.deprecated", "%s is before the release date %s", lc.Deprecated, lc.Released)
	}
	if rok && sok && shutdown.Before(released) {
		v.model(m, "lifecycle.shutdown", "%s is before the release date %s", lc.Shutdown, lc.Released)
	}
	if dok && sok && shutdown.Before(deprecated) {
		v.model(m, "lifecycle.shutdown", "%s is before the deprecation date %s", lc.Shutdown, lc.Deprecated)
	}

	switch lc.Status {
	case StatusActive, StatusPreview:
		if lc.Deprecated != "" || lc.Shutdown != "" {
			v.model(m, "lifecycle.status", "an %s model has a deprecation or shutdown date: mark it deprecated (or retired)", lc.Status)
		}
		if lc.Replacement != "" {
			v.model(m, "lifecycle.replacement", "only deprecated and retired models name a replacement")
		}
		return
	case StatusDeprecated:
		verified, vok := parseDate(m.Provenance.VerifiedOn)
		if sok && vok && !shutdown.After(verified) {
			v.model(m, "lifecycle.status", "the shutdown date %s had passed when the row was verified (%s): mark it retired", lc.Shutdown, m.Provenance.VerifiedOn)
		}
	}

	// Deprecated or retired: the replacement must lead to an active model.
	if lc.Replacement == "" {
		v.model(m, "lifecycle.replacement", "a %s model must name its replacement", lc.Status)
		return
	}
	r, ok := v.byID[lc.Replacement]
	if !ok {
		if canon, isAlias := v.wire[lc.Replacement]; isAlias {
			v.model(m, "lifecycle.replacement", "%q is an alias; name the canonical id %q", lc.Replacement, canon)
		} else {
			v.model(m, "lifecycle.replacement", "%q is not a model in the catalog", lc.Replacement)
		}
		return
	}
	switch {
	case r == m:
		v.model(m, "lifecycle.replacement", "a model cannot replace itself")
		return
	case lc.Status == StatusDeprecated && r.Lifecycle.Status != StatusActive:
		v.model(m, "lifecycle.replacement", "a deprecated model's replacement must be active, and %q is %s", r.ID, r.Lifecycle.Status)
	case lc.Status == StatusRetired && r.Lifecycle.Status == StatusRetired:
		v.model(m, "lifecycle.replacement", "a retired model's replacement must not be retired, and %q is", r.ID)
	}
	if _, err := finalReplacement(v.byID, m); err != nil {
		v.model(m, "lifecycle.replacement", "%v", err)
	}
}

// finalReplacement follows m's replacement chain to its end, which must be
// an active model. byID holds canonical IDs.
func finalReplacement(byID map[string]*Model, m *Model) (*Model, error) {
	seen := map[string]bool{m.ID: true}
	chain := []string{m.ID}
	for cur := m; ; {
		next, ok := byID[cur.Lifecycle.Replacement]
		if !ok {
			return nil, fmt.Errorf("the replacement chain %s ends at %q, which is not a model in the catalog", strings.Join(chain, " → "), cur.Lifecycle.Replacement)
		}
		chain = append(chain, next.ID)
		if seen[next.ID] {
			return nil, fmt.Errorf("the replacement chain %s is a cycle", strings.Join(chain, " → "))
		}
		seen[next.ID] = true
		switch next.Lifecycle.Status {
		case StatusActive:
			return next, nil
		case StatusDeprecated, StatusRetired:
			cur = next
		default:
			return nil, fmt.Errorf("the replacement chain %s ends at a %s model; it must end at an active one", strings.Join(chain, " → "), next.Lifecycle.Status)
		}
	}
}

func (v *validator) checkPolicy(p *Policy) {
	if !validAgentName(p.Agent) {
		v.agent(p, "agent", "%q is not a valid agent name (lowercase letters, digits and '-')", p.Agent)
	}
	if !validEndpoint(p.API) {
		v.agent(p, "api", "%q is not an API style (%s)", p.API, endpointNames())
	}
	if len(p.Allowed) == 0 {
		v.agent(p, "allowed", "an agent must be allowed at least one model")
	}
	v.checkIDList(p, "allowed", p.Allowed)
	for j, id := range p.Allowed {
		m, ok := v.byID[id]
		if !ok || m.Lifecycle.Status == StatusRetired || !validEndpoint(p.API) {
			continue
		}
		if !m.Serves(p.API) {
			v.agent(p, fmt.Sprintf("allowed[%d]", j), "%q does not serve the %s API this agent speaks (it serves %s)", id, p.API, joinEndpoints(m.Endpoints))
		}
	}

	if len(p.Selectable) == 0 {
		v.agent(p, "selectable", "a picker needs at least one selectable model")
	}
	v.checkIDList(p, "selectable", p.Selectable)
	allowed := make(map[string]bool, len(p.Allowed))
	for _, id := range p.Allowed {
		allowed[id] = true
	}
	for j, id := range p.Selectable {
		field := fmt.Sprintf("selectable[%d]", j)
		if !allowed[id] {
			v.agent(p, field, "%q is selectable but not allowed: a picker may only offer what the proxy routes", id)
		}
		if m, ok := v.byID[id]; ok && m.Lifecycle.Status == StatusRetired {
			v.agent(p, field, "%q is retired and may not be offered", id)
		}
	}

	v.checkSideModels(p, allowed)

	switch m, ok := v.byID[p.Default]; {
	case p.Default == "":
		v.agent(p, "default", "every agent needs exactly one default model")
	case !ok:
		v.agent(p, "default", "%q is not a model in the catalog", p.Default)
	case !slices.Contains(p.Selectable, p.Default):
		v.agent(p, "default", "%q is not selectable", p.Default)
	case m.Lifecycle.Status != StatusActive:
		v.agent(p, "default", "%q is %s; the default must be active", p.Default, m.Lifecycle.Status)
	}
}

// checkSideModels checks that each side model is allowed, not retired, once.
func (v *validator) checkSideModels(p *Policy, allowed map[string]bool) {
	seen := make(map[string]bool, len(p.SideModels))
	for j, sm := range p.SideModels {
		field := fmt.Sprintf("side_models[%d]", j)
		m, ok := v.byID[sm.ID]
		switch {
		case !ok:
			v.agent(p, field+".id", "%q is not a canonical model ID in the catalog", sm.ID)
		case !allowed[sm.ID]:
			v.agent(p, field+".id", "%q is a side model but not allowed: the proxy would refuse it", sm.ID)
		case m.Lifecycle.Status == StatusRetired:
			v.agent(p, field+".id", "%q is retired and cannot be a side model", sm.ID)
		case seen[sm.ID]:
			v.agent(p, field+".id", "%q is listed twice", sm.ID)
		}
		seen[sm.ID] = true
		if strings.TrimSpace(sm.Use) == "" {
			v.agent(p, field+".use", "say what the agent uses %q for", sm.ID)
		}
	}
}

// checkIDList checks that a policy list names canonical IDs, once each.
func (v *validator) checkIDList(p *Policy, name string, ids []string) {
	seen := make(map[string]bool, len(ids))
	for j, id := range ids {
		field := fmt.Sprintf("%s[%d]", name, j)
		switch canon, known := v.wire[id]; {
		case !known:
			v.agent(p, field, "%q is not a model in the catalog", id)
		case canon != id:
			v.agent(p, field, "%q is an alias; list the canonical id %q (its aliases come with it)", id, canon)
		case seen[id]:
			v.agent(p, field, "%q is listed twice", id)
		}
		seen[id] = true
	}
}

// date parses a YYYY-MM-DD field, recording a problem when it is malformed
// or required and missing. ok reports a usable date.
func (v *validator) date(m *Model, field, s string, required bool) (t time.Time, ok bool) {
	if s == "" {
		if required {
			v.model(m, field, "is required (YYYY-MM-DD)")
		}
		return time.Time{}, false
	}
	t, ok = parseDate(s)
	if !ok {
		v.model(m, field, "%q is not a date (YYYY-MM-DD)", s)
	}
	return t, ok
}

func parseDate(s string) (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s {
		return time.Time{}, false
	}
	return t, true
}

// dateSuffix returns the date an ID ends with, as YYYY-MM-DD, for the
// shapes -YYYYMMDD and -YYYY-MM-DD (not -MMDD, which carries no year).
func dateSuffix(id string) (string, bool) {
	digits := func(s string) bool {
		for _, c := range []byte(s) {
			if c < '0' || c > '9' {
				return false
			}
		}
		return s != ""
	}
	if n := len(id); n >= 11 && id[n-11] == '-' {
		s := id[n-10:]
		if digits(s[0:4]) && s[4] == '-' && digits(s[5:7]) && s[7] == '-' && digits(s[8:10]) {
			return s, true
		}
	}
	if n := len(id); n >= 9 && id[n-9] == '-' && digits(id[n-8:]) {
		s := id[n-8:]
		return s[0:4] + "-" + s[4:6] + "-" + s[6:8], true
	}
	return "", false
}

func validWireID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for i, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func validAgentName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validEndpoint(ep Endpoint) bool {
	_, ok := ProviderOf(ep)
	return ok
}

func validStatus(s Status) bool {
	switch s {
	case StatusPreview, StatusActive, StatusDeprecated, StatusRetired:
		return true
	}
	return false
}

func validEffort(e string) bool {
	switch e {
	case "none", "minimal", "low", "medium", "high", "xhigh", "max":
		return true
	}
	return false
}

func joinEndpoints(eps []Endpoint) string {
	if len(eps) == 0 {
		return "nothing"
	}
	s := make([]string, len(eps))
	for i, ep := range eps {
		s[i] = string(ep)
	}
	return strings.Join(s, ", ")
}
