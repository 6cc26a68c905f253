// The official MCP TypeScript SDK's OAuth client provider against a real
// `agentbroker serve`, driven by cmd/agentbroker's TestOAuthInterop (which
// runs this with MCP_URL set, plays the admin in headless Chromium, and
// runs the Inspector CLI). It talks to the test by JSON lines: events on
// stdout ({"event": …}), commands on stdin (one word a line).
//
// The flow: connect (401 → discovery from the challenge → dynamic
// registration → authorization with PKCE: "authorize" event with the URL,
// which the test opens in the browser) → the browser lands on this
// script's loopback callback with the code → finishAuth (token exchange) →
// connect again, tools/call get_project ("called") → a spoilt access token
// makes the SDK refresh ("refreshed") → "token" event (the access token,
// for the Inspector CLI) → on "call-again" (after the test revoked the
// connection in the console), one more call, which must be refused
// ("refused").

import http from 'node:http';
import readline from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const mcpURL = new URL(process.env.MCP_URL);
const emit = (event, data = {}) => process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
const fail = (msg) => {
  emit('error', { message: String(msg) });
  process.exit(1);
};
process.on('unhandledRejection', (e) => fail(e?.stack || e));

const lines = readline.createInterface({ input: process.stdin });
const commands = [];
let waiting = null;
lines.on('line', (l) => {
  if (waiting) {
    const w = waiting;
    waiting = null;
    w(l.trim());
  } else commands.push(l.trim());
});
const nextCommand = () => (commands.length ? Promise.resolve(commands.shift()) : new Promise((r) => (waiting = r)));

// The loopback redirect (RFC 8252 §7.3): a port of our own on 127.0.0.1.
let gotCode;
const codeArrived = new Promise((r) => (gotCode = r));
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.pathname !== '/callback') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>done</title><p id="done">You may close this window.</p>');
  gotCode({ code: u.searchParams.get('code'), state: u.searchParams.get('state'), error: u.searchParams.get('error'), iss: u.searchParams.get('iss') });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const redirectUrl = `http://127.0.0.1:${server.address().port}/callback`;

class Provider {
  constructor() {
    this.authorizations = 0;
    this.stateValue = `st-${Math.random().toString(36).slice(2)}`;
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: 'agentbroker OAuth interop (TS SDK)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    return this.stateValue;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(c) {
    this.client = c;
    emit('registered', { client_id: c.client_id });
  }
  tokens() {
    return this.saved;
  }
  saveTokens(t) {
    this.saved = t;
  }
  redirectToAuthorization(u) {
    this.authorizations++;
    emit('authorize', { url: u.toString() });
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'tokens') this.saved = undefined;
    if (scope === 'all' || scope === 'client') this.client = undefined;
  }
}

const provider = new Provider();
const newClient = () => new Client({ name: 'agentbroker-oauth-interop', version: '0.0.0' });
const transportFor = () => new StreamableHTTPClientTransport(mcpURL, { authProvider: provider });

// 1. The first connection is refused (401) and sends us to authorize.
const first = transportFor();
try {
  await newClient().connect(first);
  fail('connected without a token');
} catch (e) {
  if (!(e instanceof UnauthorizedError)) fail(`first connect: ${e?.stack || e}`);
}
if (provider.authorizations !== 1 || !provider.client) fail('no registration and authorization after the 401');

// 2. The browser brings the code back.
const cb = await codeArrived;
if (cb.error || !cb.code) fail(`callback error: ${cb.error}`);
if (cb.state !== provider.stateValue) fail(`state ${cb.state} is not ours`);
emit('callback', { iss: cb.iss });
await first.finishAuth(cb.code);
const firstTokens = provider.tokens();
if (!firstTokens?.access_token || !firstTokens?.refresh_token) fail('no tokens after the exchange');

// 3. Connect and call a tool.
const client = newClient();
await client.connect(transportFor());
const call = async () => {
  const r = await client.callTool({ name: 'get_project', arguments: {} });
  if (r.isError) fail(`get_project: ${JSON.stringify(r)}`);
  return r.content.map((c) => c.text).join('\n');
};
emit('called', { text: await call() });

// 4. A spoilt access token: the SDK gets a 401 and refreshes.
provider.saved = { ...provider.saved, access_token: 'spoilt' };
emit('called-after-refresh', { text: await call() });
const refreshed = provider.tokens();
emit('refreshed', {
  rotated: refreshed.refresh_token !== firstTokens.refresh_token,
  new_access: refreshed.access_token !== 'spoilt' && refreshed.access_token !== firstTokens.access_token,
  authorizations: provider.authorizations,
});
emit('token', { access_token: refreshed.access_token });

// 5. After the revocation: refused, and the SDK falls back to a new
// authorization (the refresh token is refused too).
if ((await nextCommand()) !== 'call-again') fail('unexpected command');
try {
  const text = await call();
  emit('not-refused', { text });
} catch (e) {
  emit('refused', { message: String(e?.message || e), authorizations: provider.authorizations });
}
server.close();
await client.close().catch(() => {});
process.exit(0);
