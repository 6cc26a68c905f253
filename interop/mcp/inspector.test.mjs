// The MCP Inspector's CLI mode against agentbroker's MCP server. Run by
// interop_test.go with `node --test`; the Inspector itself needs Node >= 22.19,
// so it runs under the Node 22 binary named in AGENTBROKER_NODE22.
//
// This is `npx @modelcontextprotocol/inspector --cli …` without npx: the
// package's own bin file, run by the pinned Node, so nothing is looked up in
// the registry at test time.
//
// The Inspector CLI takes headers only as --header arguments, so the bearer
// token is on its command line. That is acceptable here alone: the token is
// minted by a throwaway fixture for a throwaway database, lives for the
// length of the test, and opens nothing else. Never do this with real tokens.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALL_TOOLS, TASKS_READ_TOOLS, loadFixture, sorted } from './fixture.mjs';

const fx = loadFixture();
const node22 = process.env.AGENTBROKER_NODE22;
const launcher = fileURLToPath(
  new URL('./node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js', import.meta.url),
);

// Exit codes of the Inspector CLI (EXIT_CODES in its bundle).
const EXIT_OK = 0;
const EXIT_AUTH_REQUIRED = 3;
const EXIT_TOOL_ERROR = 5;

let home;
before(() => {
  assert.ok(node22, 'AGENTBROKER_NODE22 names a Node 22 binary (interop/mcp/run installs one)');
  // The Inspector keeps a catalog and OAuth state under $HOME: give it a
  // scratch one so that nothing outside the test is read or written.
  home = mkdtempSync(join(tmpdir(), 'inspector-home-'));
});
after(() => home && rmSync(home, { recursive: true, force: true }));

/**
 * Runs the Inspector CLI against the fixture; never rejects. With --format
 * json it prints {"result": …} on stdout, or an error envelope on stderr.
 */
function inspector(args, token) {
  const argv = [launcher, '--cli', fx.url, '--transport', 'http', '--format', 'json', '--connect-timeout', '15000'];
  if (token !== undefined) argv.push('--header', `Authorization: Bearer ${token}`);
  argv.push(...args);
  const env = { PATH: process.env.PATH, HOME: home, NO_COLOR: '1', MCP_STORAGE_DIR: join(home, 'storage') };
  return new Promise((resolve) => {
    execFile(node22, argv, { env, timeout: 60_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr, killed: err?.killed ?? false });
    });
  });
}

function describeRun(r) {
  return `exit ${r.code}${r.killed ? ' (killed: timeout)' : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

function json(r) {
  try {
    return JSON.parse(r.stdout);
  } catch (err) {
    assert.fail(`stdout is not one JSON document (${err.message}): ${describeRun(r)}`);
  }
}

test('inspector --cli tools/list with a full token lists all 12 tools', async () => {
  const r = await inspector(['--method', 'tools/list'], fx.tokens.a_full);
  assert.equal(r.code, EXIT_OK, describeRun(r));
  const names = json(r).result.tools.map((t) => t.name);
  assert.deepEqual(sorted(names), sorted(ALL_TOOLS));
});

test('inspector --cli tools/list with a tasks:read token lists its 3 tools', async () => {
  const r = await inspector(['--method', 'tools/list'], fx.tokens.a_read);
  assert.equal(r.code, EXIT_OK, describeRun(r));
  assert.deepEqual(sorted(json(r).result.tools.map((t) => t.name)), sorted(TASKS_READ_TOOLS));
});

test('inspector --cli tools/call get_task returns the marker', async () => {
  const r = await inspector(
    ['--method', 'tools/call', '--tool-name', 'get_task', '--tool-arg', `id=${fx.task_id}`],
    fx.tokens.a_full,
  );
  assert.equal(r.code, EXIT_OK, describeRun(r));
  const res = json(r).result;
  assert.notEqual(res.isError, true, describeRun(r));
  assert.ok(res.structuredContent, `structuredContent present: ${describeRun(r)}`);
  assert.ok(r.stdout.includes(fx.marker), `marker in the result: ${describeRun(r)}`);
});

test("inspector --cli tools/call get_task on project B's task is a tool error", async () => {
  const r = await inspector(
    ['--method', 'tools/call', '--tool-name', 'get_task', '--tool-arg', `id=${fx.other_project_task_id}`],
    fx.tokens.a_full,
  );
  assert.equal(r.code, EXIT_TOOL_ERROR, describeRun(r));
  assert.equal(json(r).result.isError, true, describeRun(r));
  assert.match(r.stdout, /not found/i);
  assert.ok(!(r.stdout + r.stderr).includes(fx.other_marker), "nothing of project B's task leaks");
});

test('inspector --cli tools/call update_task with a tasks:read token is refused', async () => {
  // The Inspector looks the tool up in tools/list before calling it, and the
  // server hides update_task from this token: the refusal is the Inspector's
  // "tool_not_found" (a direct call gets 403 insufficient_scope, see
  // sdk.test.mjs).
  const r = await inspector(
    ['--method', 'tools/call', '--tool-name', 'update_task', '--tool-arg', `id=${fx.task_id}`, 'notes=refused'],
    fx.tokens.a_read,
  );
  assert.equal(r.code, EXIT_TOOL_ERROR, describeRun(r));
  assert.match(r.stderr, /"code":"tool_not_found"/, describeRun(r));
});

test('inspector --cli without a token is refused (auth required)', async () => {
  // --stored-auth-only: never start an interactive OAuth flow; fail instead.
  const r = await inspector(['--method', 'tools/list', '--stored-auth-only']);
  assert.equal(r.code, EXIT_AUTH_REQUIRED, describeRun(r));
  assert.match(r.stderr, /"code":"auth_required"/, describeRun(r));
  assert.ok(!r.stdout.includes('get_task'), 'no tool list without a token');
});

test('inspector --cli with a proxy-audience token is refused (auth required)', async () => {
  const r = await inspector(['--method', 'tools/list', '--stored-auth-only'], fx.tokens.a_proxy);
  assert.equal(r.code, EXIT_AUTH_REQUIRED, describeRun(r));
  assert.match(r.stderr, /"code":"auth_required"/, describeRun(r));
});
