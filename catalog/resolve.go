package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Resolved is a wire ID the proxy may route for an agent.
type Resolved struct {
	// Model is the canonical model (shared: read-only). Route to Model.Provider.
	Model *Model
	// WireID is the ID as the client sent it.
	WireID string
	// Agent is the agent the ID was resolved for.
	Agent string
	// Endpoint is the API style the agent speaks.
	Endpoint Endpoint
	// Alias reports that WireID is an alias of Model.ID.
	Alias bool
	// Deprecated reports a deprecated model: it routes, but Replacement
	// (an active canonical ID) should be used instead.
	Deprecated  bool
	Replacement string
}

// Resolve is the only allowlist check: it decides whether agent may use the
// model wireID (a canonical ID or a declared alias, matched exactly). It
// fails with ErrUnknownAgent, ErrUnknownModel, a *RetiredError
// (errors.Is(err, ErrRetired), naming the replacement), ErrModelNotAllowed,
// or ErrWrongEndpoint when the model does not serve the agent's API style.
// A retired model is reported as retired for every agent, so that the
// client learns what to use instead. Deprecated and preview models resolve.
//
// Resolve reads only the catalog: no clock, no DetectProvider.
func (c *Catalog) Resolve(agent, wireID string) (Resolved, error) {
	p, err := c.policy(agent)
	if err != nil {
		return Resolved{}, err
	}
	m, ok := c.byWire[wireID]
	if !ok {
		return Resolved{}, fmt.Errorf("%w %s", ErrUnknownModel, quote(wireID))
	}
	if m.Lifecycle.Status == StatusRetired {
		return Resolved{}, &RetiredError{Model: wireID, Replacement: c.replacement(m)}
	}
	if !p.allowed[m.ID] {
		return Resolved{}, fmt.Errorf("%w: agent %q may not use %q", ErrModelNotAllowed, agent, wireID)
	}
	if !m.Serves(p.API) {
		return Resolved{}, fmt.Errorf("%w: model %q serves %s, not the %s API agent %q speaks",
			ErrWrongEndpoint, wireID, joinEndpoints(m.Endpoints), p.API, agent)
	}
	r := Resolved{Model: m, WireID: wireID, Agent: agent, Endpoint: p.API, Alias: wireID != m.ID}
	if m.Lifecycle.Status == StatusDeprecated {
		r.Deprecated = true
		r.Replacement = c.replacement(m)
	}
	return r, nil
}

// ResolveSession is Resolve for a session bound to the model chosen (a
// canonical ID or an alias): wireID must resolve for agent and be the
// chosen model or one of the agent's side models, otherwise the error wraps
// ErrNotSessionModel. An empty chosen binds nothing: it is Resolve.
func (c *Catalog) ResolveSession(agent, chosen, wireID string) (Resolved, error) {
	r, err := c.Resolve(agent, wireID)
	if err != nil || chosen == "" {
		return r, err
	}
	if cm, ok := c.byWire[chosen]; ok && cm == r.Model {
		return r, nil
	}
	for _, sm := range c.policies[agent].SideModels {
		if sm.ID == r.Model.ID {
			return r, nil
		}
	}
	return Resolved{}, fmt.Errorf("%w: this session was given %s; %s may use %s besides it, not %s",
		ErrNotSessionModel, quote(chosen), agent, sideList(c.policies[agent].SideModels), quote(wireID))
}

// SideModels returns the models a session of agent given model will also
// use: the agent's side models other than model itself (canonical IDs, in
// the policy's order).
func (c *Catalog) SideModels(agent, model string) ([]SideModel, error) {
	p, err := c.policy(agent)
	if err != nil {
		return nil, err
	}
	canon := model
	if m, ok := c.byWire[model]; ok {
		canon = m.ID
	}
	out := []SideModel{}
	for _, sm := range p.SideModels {
		if sm.ID != canon {
			out = append(out, sm)
		}
	}
	return out, nil
}

func sideList(sms []SideModel) string {
	if len(sms) == 0 {
		return "no other model"
	}
	ids := make([]string, len(sms))
	for i, sm := range sms {
		ids[i] = strconv.Quote(sm.ID)
	}
	return strings.Join(ids, ", ")
}

// CheckEndpoint checks the API style of the route the proxy received
// against the resolved model and agent: it fails with ErrWrongEndpoint when
// the model does not serve ep, or when ep is not the API style the agent
// speaks (an agent's token is good for its own API only).
func (r Resolved) CheckEndpoint(ep Endpoint) error {
	if r.Model == nil {
		return fmt.Errorf("%w: nothing was resolved", ErrWrongEndpoint)
	}
	if !r.Model.Serves(ep) {
		return fmt.Errorf("%w: model %q serves %s, not %q", ErrWrongEndpoint, r.WireID, joinEndpoints(r.Model.Endpoints), ep)
	}
	if ep != r.Endpoint {
		return fmt.Errorf("%w: agent %q speaks the %s API, not %q", ErrWrongEndpoint, r.Agent, r.Endpoint, ep)
	}
	return nil
}

// replacement is the active model at the end of m's replacement chain, or
// "" if there is none (impossible in a validated catalog).
func (c *Catalog) replacement(m *Model) string {
	r, err := finalReplacement(c.byID, m)
	if err != nil {
		return ""
	}
	return r.ID
}

// PickerEntry is one model in an agent's model picker.
type PickerEntry struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"display_name"`
	Family      string   `json:"family"`
	Provider    Provider `json:"provider"`
	Status      Status   `json:"status"`
	// Replacement is set for deprecated models, so that the UI can mark them.
	Replacement string `json:"replacement,omitempty"`
	// Default marks the agent's default model; exactly one entry has it.
	Default          bool     `json:"default"`
	Limits           Limits   `json:"limits"`
	ReasoningEfforts []string `json:"reasoning_efforts"`
	// SideModels are the models a session given this one also uses
	// (Catalog.SideModels): the agent's titles, summaries, classifiers.
	SideModels []SideModel `json:"side_models"`
}

// ForUI returns the models a picker offers agent: the selectable models of
// its policy, retired ones never. The order is stable: the default first,
// then families by their newest member, newest release first within a
// family, then by ID. Every entry passes Resolve(agent, entry.ID).
func (c *Catalog) ForUI(agent string) ([]PickerEntry, error) {
	p, err := c.policy(agent)
	if err != nil {
		return nil, err
	}
	var models []*Model
	newest := make(map[string]string) // family → newest release among the offered
	for _, id := range p.Selectable {
		m := c.byID[id]
		if m == nil || m.Lifecycle.Status == StatusRetired {
			continue
		}
		models = append(models, m)
		newest[m.Family] = max(newest[m.Family], m.Lifecycle.Released)
	}
	slices.SortFunc(models, func(a, b *Model) int {
		return cmp.Or(
			-cmp.Compare(boolInt(a.ID == p.Default), boolInt(b.ID == p.Default)),
			-cmp.Compare(newest[a.Family], newest[b.Family]),
			cmp.Compare(a.Family, b.Family),
			-cmp.Compare(a.Lifecycle.Released, b.Lifecycle.Released),
			cmp.Compare(a.ID, b.ID),
		)
	})
	entries := make([]PickerEntry, 0, len(models))
	for _, m := range models {
		e := PickerEntry{
			ID:               m.ID,
			DisplayName:      m.DisplayName,
			Family:           m.Family,
			Provider:         m.Provider,
			Status:           m.Lifecycle.Status,
			Default:          m.ID == p.Default,
			Limits:           m.Limits,
			ReasoningEfforts: append([]string{}, m.ReasoningEfforts...),
			SideModels:       []SideModel{},
		}
		for _, sm := range p.SideModels {
			if sm.ID != m.ID {
				e.SideModels = append(e.SideModels, sm)
			}
		}
		if m.Lifecycle.Status == StatusDeprecated {
			e.Replacement = c.replacement(m)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// quote quotes a client-supplied string for an error message, cut to a
// length a log line can carry.
func quote(s string) string {
	const limit = 128
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
