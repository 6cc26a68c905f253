// Shared helpers of the interop suites: the fixture's description and the
// expected tool sets.
//
// The Go test (interop_test.go) starts internal/mcpfixture, which prints one
// JSON line describing its throwaway server (URL, tokens, seeded IDs). The Go
// test writes that line to a 0600 file and names the file in
// MCP_FIXTURE_FILE, so that tokens never appear on a command line.

import { readFileSync } from 'node:fs';

/**
 * @typedef {object} Fixture
 * @property {string} url                  the MCP endpoint (bearer auth)
 * @property {string} [insecure_url]       the endpoint whose unauthenticated requests are project A (conformance only)
 * @property {Record<string,string>} tokens a_full, a_read, b_full, a_proxy, a_expired, a_revoked
 * @property {string} project_id
 * @property {string} other_project_id
 * @property {string} task_id              a task of project A whose description holds marker
 * @property {string} marker
 * @property {string} other_project_task_id a task of project B whose description holds other_marker
 * @property {string} other_marker
 */

/** @returns {Fixture} */
export function loadFixture() {
  const file = process.env.MCP_FIXTURE_FILE;
  if (!file) {
    throw new Error('MCP_FIXTURE_FILE is not set: run these suites through interop/mcp/run (go test with AGENTBROKER_INTEROP=1)');
  }
  const fx = JSON.parse(readFileSync(file, 'utf8'));
  for (const k of ['url', 'tokens', 'task_id', 'marker', 'other_project_task_id', 'other_marker']) {
    if (!fx[k]) throw new Error(`fixture description lacks ${k}`);
  }
  for (const k of ['a_full', 'a_read', 'b_full', 'a_proxy', 'a_expired', 'a_revoked']) {
    if (!fx.tokens[k]) throw new Error(`fixture description lacks tokens.${k}`);
  }
  return fx;
}

/** Every tool of the MCP server, as a token with every MCP scope sees them. */
export const ALL_TOOLS = [
  'add_knowledge',
  'get_instructions',
  'get_knowledge',
  'get_project',
  'get_session_messages',
  'get_task',
  'list_sessions',
  'list_tasks',
  'search_knowledge',
  'search_messages',
  'search_tasks',
  'update_task',
];

/** The tools a token holding only tasks:read sees (the fixture's a_read). */
export const TASKS_READ_TOOLS = ['get_task', 'list_tasks', 'search_tasks'];

/** Sorted copy, for set comparisons. */
export function sorted(list) {
  return [...list].sort();
}
