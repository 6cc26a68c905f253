// Package catalog is agentbroker's single model catalog: the list of models
// a person can pick for an agent and the allowlist the inference proxy
// enforces, from one set of data, so that every model a picker shows is a
// model the proxy routes (the lesson of SAM's journal: a visible option is a
// promise that the runtime can route it).
//
// The data is embedded (data/catalog.json): one entry per canonical model
// with its provider (who serves it) and lab (who made it), exact-string
// aliases (dated snapshots), limits, integer prices in micro-USD per million
// tokens, reasoning efforts, the API endpoints it serves, its lifecycle and
// its provenance; and one policy per agent (claude-code, codex, amp,
// gemini, opencode, copilot, qwen) naming the models the agent may use, the
// ones a picker offers and the default.
// An operator may layer an override file on top with [Load]; the merged
// result is checked against every invariant ([Check] lists every problem).
//
// [Catalog.Resolve] is the only allowlist check. [Catalog.ForUI] lists what
// a picker shows, and every entry it returns passes Resolve (a test proves
// it). [DetectProvider] classifies a model ID for diagnostics only and never
// guesses: routing uses the provider declared in the catalog. [Cost] prices
// a request's usage in exact integer arithmetic. [Handler] serves the
// pickers over HTTP, with the catalog's [Catalog.Hash] as the ETag.
//
// Everything a Catalog returns is shared and must be treated as read-only.
// A Catalog is immutable and safe for concurrent use.
package catalog
