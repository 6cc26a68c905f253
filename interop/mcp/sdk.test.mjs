// The official MCP TypeScript SDK's client against agentbroker's MCP server:
// streamable HTTP with a bearer token in requestInit.headers, as agents'
// MCP clients send it. Run by interop_test.go with `node --test`.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ALL_TOOLS, TASKS_READ_TOOLS, loadFixture, sorted } from './fixture.mjs';

const fx = loadFixture();
const open = [];

after(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
});

/** Connects (initialize + initialized) with token as a bearer, or none. */
async function connect(token) {
  const client = new Client({ name: 'agentbroker-interop-sdk', version: '0.0.0' });
  const headers = token === undefined ? {} : { Authorization: `Bearer ${token}` };
  const transport = new StreamableHTTPClientTransport(new URL(fx.url), { requestInit: { headers } });
  await client.connect(transport);
  open.push(client);
  return client;
}

/** Every text block of a tool result, joined. */
function text(result) {
  return (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

/** Asserts that connecting with token fails with HTTP status. */
async function assertRefused(token, status) {
  await assert.rejects(connect(token), (err) => {
    assert.equal(err.code, status, `want HTTP ${status}, got ${err.code}: ${err.message}`);
    return true;
  });
}

describe('tools/list', () => {
  test('a token with every MCP scope sees all 12 tools', async () => {
    const c = await connect(fx.tokens.a_full);
    assert.ok(c.getServerCapabilities()?.tools, 'server advertises the tools capability');
    const { tools } = await c.listTools();
    assert.deepEqual(sorted(tools.map((t) => t.name)), sorted(ALL_TOOLS));
    for (const t of tools) {
      assert.equal(t.inputSchema?.type, 'object', `${t.name} has an object inputSchema`);
      assert.ok(t.description, `${t.name} has a description`);
    }
  });

  test('a tasks:read token sees only the task-reading tools', async () => {
    const c = await connect(fx.tokens.a_read);
    const { tools } = await c.listTools();
    assert.deepEqual(sorted(tools.map((t) => t.name)), sorted(TASKS_READ_TOOLS));
  });
});

describe('tools/call', () => {
  test('get_task returns the seeded task, marker in text and structuredContent', async () => {
    const c = await connect(fx.tokens.a_full);
    // callTool also validates structuredContent against the tool's outputSchema.
    const r = await c.callTool({ name: 'get_task', arguments: { id: fx.task_id } });
    assert.notEqual(r.isError, true, `get_task failed: ${text(r)}`);
    assert.ok(text(r).includes(fx.marker), `marker in text content: ${text(r)}`);
    assert.ok(r.structuredContent, 'structuredContent present');
    assert.ok(JSON.stringify(r.structuredContent).includes(fx.marker), 'marker in structuredContent');
  });

  test("project A's token cannot read project B's task (isError, not found)", async () => {
    const c = await connect(fx.tokens.a_full);
    const r = await c.callTool({ name: 'get_task', arguments: { id: fx.other_project_task_id } });
    assert.equal(r.isError, true, `want isError, got: ${JSON.stringify(r)}`);
    assert.match(text(r), /not found/i);
    assert.ok(!JSON.stringify(r).includes(fx.other_marker), "nothing of project B's task leaks");
  });

  test("project B's token reads its own task and not A's", async () => {
    const c = await connect(fx.tokens.b_full);
    const own = await c.callTool({ name: 'get_task', arguments: { id: fx.other_project_task_id } });
    assert.notEqual(own.isError, true, text(own));
    assert.ok(text(own).includes(fx.other_marker));
    const other = await c.callTool({ name: 'get_task', arguments: { id: fx.task_id } });
    assert.equal(other.isError, true);
    assert.ok(!JSON.stringify(other).includes(fx.marker));
  });

  test('a tasks:read token is refused update_task (403 insufficient_scope), and the task is unchanged', async () => {
    const ro = await connect(fx.tokens.a_read);
    const note = `must-not-be-written-${Date.now()}`;
    // The server answers a call to a tool the token's scopes do not open
    // with HTTP 403 and error="insufficient_scope" (the MCP step-up signal),
    // which this SDK surfaces as a StreamableHTTPError.
    await assert.rejects(ro.callTool({ name: 'update_task', arguments: { id: fx.task_id, notes: note } }), (err) => {
      assert.equal(err.code, 403, `want HTTP 403, got ${err.code}: ${err.message}`);
      assert.match(err.message, /insufficient_scope/);
      assert.match(err.message, /tasks:write/);
      return true;
    });
    const rw = await connect(fx.tokens.a_full);
    const r = await rw.callTool({ name: 'get_task', arguments: { id: fx.task_id } });
    assert.notEqual(r.isError, true, text(r));
    assert.ok(!JSON.stringify(r).includes(note), 'the refused write did not land');
  });

  test('a full token can update_task, and get_task shows it', async () => {
    const c = await connect(fx.tokens.a_full);
    const note = `written-by-sdk-interop-${Date.now()}`;
    const u = await c.callTool({ name: 'update_task', arguments: { id: fx.task_id, notes: note } });
    assert.notEqual(u.isError, true, text(u));
    const r = await c.callTool({ name: 'get_task', arguments: { id: fx.task_id } });
    assert.ok(JSON.stringify(r.structuredContent ?? r.content).includes(note));
    assert.ok(text(r).includes(fx.marker), 'the description is untouched');
  });
});

describe('authentication', () => {
  test('no token: 401', () => assertRefused(undefined, 401));
  test('a garbage token: 401', () => assertRefused('not-a-jwt', 401));
  test('a token for the inference proxy audience: 401', () => assertRefused(fx.tokens.a_proxy, 401));
  test('an expired token: 401', () => assertRefused(fx.tokens.a_expired, 401));
  test('a revoked token: 401', () => assertRefused(fx.tokens.a_revoked, 401));
});

describe('prompts and resources', () => {
  test('the project instructions are the prompt project_instructions', async () => {
    const c = await connect(fx.tokens.a_full);
    assert.ok(c.getServerCapabilities()?.prompts, 'server advertises the prompts capability');
    const { prompts } = await c.listPrompts();
    assert.deepEqual(prompts.map((p) => p.name), ['project_instructions']);
    const r = await c.getPrompt({ name: 'project_instructions' });
    const t = r.messages.map((m) => m.content.text).join('\n');
    assert.match(t, /Never push to main/);
    assert.ok(!t.includes("Project B's rules"), "project B's instructions do not leak");
  });

  test('tasks and knowledge are resources, listed, read and templated', async () => {
    const c = await connect(fx.tokens.a_full);
    assert.ok(c.getServerCapabilities()?.resources, 'server advertises the resources capability');
    const { resources } = await c.listResources();
    const uris = resources.map((r) => r.uri);
    assert.ok(uris.includes('agentbroker://project'), uris.join(' '));
    assert.ok(uris.includes(`agentbroker://tasks/${fx.task_id}`), uris.join(' '));
    assert.ok(!uris.includes(`agentbroker://tasks/${fx.other_project_task_id}`), "project B's task is not listed");
    assert.ok(uris.some((u) => u.startsWith('agentbroker://knowledge/')), uris.join(' '));
    const task = await c.readResource({ uri: `agentbroker://tasks/${fx.task_id}` });
    assert.ok(task.contents[0].text.includes(fx.marker), 'the task resource carries the task');
    const other = c.readResource({ uri: `agentbroker://tasks/${fx.other_project_task_id}` });
    await assert.rejects(other, (err) => {
      assert.equal(err.code, -32002, `want -32002 resource not found, got ${err.code}: ${err.message}`);
      return true;
    });
    const { resourceTemplates } = await c.listResourceTemplates();
    assert.deepEqual(
      resourceTemplates.map((t) => t.uriTemplate).sort(),
      ['agentbroker://knowledge/{id}', 'agentbroker://tasks/{id}'],
    );
  });

  test('a tasks:read token lists only tasks and is refused the project (403)', async () => {
    const c = await connect(fx.tokens.a_read);
    const { resources } = await c.listResources();
    assert.ok(resources.length > 0 && resources.every((r) => r.uri.startsWith('agentbroker://tasks/')), JSON.stringify(resources));
    const { prompts } = await c.listPrompts();
    assert.equal(prompts.length, 0);
    await assert.rejects(c.readResource({ uri: 'agentbroker://project' }), (err) => {
      assert.equal(err.code, 403, `want HTTP 403, got ${err.code}: ${err.message}`);
      assert.match(err.message, /project:read/);
      return true;
    });
  });
});
