// The MCP conformance suite's server scenarios against agentbroker's MCP
// server. Run by interop_test.go with `node --test`; the suite needs Node 22
// (it imports fs.globSync), named in AGENTBROKER_NODE22.
//
// The suite cannot send a bearer token, so it runs against the fixture's
// second instance (insecure_url), whose unauthenticated requests are project
// A's full identity. That instance exists only in the test fixture.
//
// The suite runs once, its default ("active") scenarios, with our baseline
// (conformance-baseline.yml: the scenarios that cannot pass against this
// server, each with the reason). Then one test per scenario:
//   - not in the baseline: it must pass (a SUCCESS check, no FAILURE or WARNING);
//   - in the baseline and failing: reported as TODO with the reason;
//   - in the baseline but passing: a failure (stale baseline: remove it).
// The suite's own verdict against the same baseline is one more test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFixture } from './fixture.mjs';

const fx = loadFixture();
const node22 = process.env.AGENTBROKER_NODE22;
const here = fileURLToPath(new URL('.', import.meta.url));
const cli = join(here, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const baselineFile = join(here, 'conformance-baseline.yml');

/**
 * Reads the baseline: the `server:` list of conformance-baseline.yml, each
 * entry `  - scenario # reason`. (The suite parses the same file as YAML.)
 * @returns {Map<string,string>} scenario -> reason
 */
function readBaseline() {
  const out = new Map();
  let section = '';
  for (const line of readFileSync(baselineFile, 'utf8').split('\n')) {
    const top = line.match(/^([a-z]+):/);
    if (top) {
      section = top[1];
      continue;
    }
    const item = line.match(/^\s+-\s+([A-Za-z0-9_/-]+)\s*(?:#\s*(.*))?$/);
    if (item && section === 'server') out.set(item[1], item[2]?.trim() || '(no reason given)');
  }
  return out;
}

/** Runs the suite once; resolves with its exit code and output. */
function runSuite(outDir) {
  const argv = [cli, 'server', '--url', fx.insecure_url, '--expected-failures', baselineFile, '-o', outDir];
  return new Promise((resolve) => {
    execFile(
      node22,
      argv,
      { cwd: outDir, timeout: 300_000, maxBuffer: 32 << 20, env: { PATH: process.env.PATH, HOME: outDir, NO_COLOR: '1' } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr, killed: err?.killed ?? false });
      },
    );
  });
}

assert.ok(node22, 'AGENTBROKER_NODE22 names a Node 22 binary (interop/mcp/run installs one)');
assert.ok(fx.insecure_url, 'the fixture runs with --insecure-fixed-identity');

const baseline = readBaseline();
const outDir = mkdtempSync(join(tmpdir(), 'mcp-conformance-'));
const run = await runSuite(outDir);
const ran = [...run.stdout.matchAll(/^=== Running scenario: (\S+) ===$/gm)].map((m) => m[1]);

/** scenario -> checks, from the result folders (server-<scenario>-<timestamp>). */
const results = new Map();
for (const dir of readdirSync(outDir)) {
  const m = dir.match(/^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/);
  if (!m) continue;
  results.set(m[1], JSON.parse(readFileSync(join(outDir, dir, 'checks.json'), 'utf8')));
}

// The suite's own summary (one line per scenario), as TAP comments.
const summary = run.stdout.slice(run.stdout.indexOf("=== SUMMARY ===")).replace(/\x1b\[[0-9;]*m/g, "");
console.log(`conformance: ${ran.length} scenarios run, results in ${outDir}\n${summary}`);

test('the suite ran its scenarios', () => {
  assert.ok(ran.length > 0, `no scenario ran (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
});

for (const name of ran) {
  test(`conformance ${name}`, (t) => {
    const checks = results.get(name);
    // As the suite's own baseline check: a FAILURE or a WARNING fails the
    // scenario. Stricter: a scenario with no SUCCESS check has not passed.
    const failed = (checks ?? []).filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
    const passed = checks !== undefined && failed.length === 0 && checks.some((c) => c.status === 'SUCCESS');
    const detail = checks === undefined
      ? 'no results written (the scenario could not run)'
      : failed.map((c) => `${c.status} ${c.id}: ${c.errorMessage ?? c.details?.message ?? c.description}`).join('\n') || 'no SUCCESS check';
    if (baseline.has(name)) {
      assert.ok(!passed, `${name} passes now: remove it from conformance-baseline.yml`);
      t.todo(`expected failure: ${baseline.get(name)} [${detail.replace(/\s+/g, ' ').slice(0, 300)}]`);
      return;
    }
    assert.ok(passed, `${name} failed:\n${detail}`);
  });
}

test('every baseline entry names a scenario that ran', () => {
  const unknown = [...baseline.keys()].filter((n) => !ran.includes(n));
  assert.deepEqual(unknown, [], 'baseline entries for scenarios the suite did not run');
});

test("the suite's own verdict against the baseline is success", () => {
  assert.equal(run.code, 0, `exit ${run.code}${run.killed ? ' (timeout)' : ''}\n${run.stdout.slice(-6000)}\n${run.stderr.slice(-3000)}`);
});
