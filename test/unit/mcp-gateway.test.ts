import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult, Tool } from '../../src/protocol/mcp-types.js';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { createOriginPolicy } from '../../src/auth/origins.js';
import { SandpoolError } from '../../src/errors.js';
import { createIdentityCache } from '../../src/mcp-gateway/identity-cache.js';
import { createMcpRoutes } from '../../src/mcp-gateway/mcp-routes.js';
import { createMcpSessionRegistry } from '../../src/mcp-gateway/mcp-sessions.js';
import { createRequestStateCheck } from '../../src/mcp-gateway/request-state.js';
import { createToolPolicy } from '../../src/mcp-gateway/tool-policy.js';
import { createMcpTools, createUserMcpServer } from '../../src/mcp-gateway/user-mcp-server.js';
import { testLogger } from '../support/helpers.js';
import { TEST_SECRET, makeToken } from '../support/tokens.js';

const TOOLS: Tool[] = [
  { name: 'read_text_file', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  { name: 'write_file', inputSchema: { type: 'object' }, annotations: { readOnlyHint: false, destructiveHint: true } },
  { name: 'mystery', inputSchema: { type: 'object' } },
];

interface Observed {
  tool: string;
  outcome: string;
}

function toolsOf(userId: string, policy = createToolPolicy('all'), call: (name: string) => Promise<CallToolResult> = async (name) => ({ content: [{ type: 'text', text: `${userId} ran ${name}` }] }), observed: Observed[] = []) {
  return createMcpTools({
    tools: async () => TOOLS,
    policy,
    calls: { call: (_u, name) => call(name) },
    logger: testLogger(),
    observe: (tool, _ms, outcome) => void observed.push({ tool, outcome }),
  });
}

function server(userId: string, ...rest: Parameters<typeof toolsOf> extends [string, ...infer R] ? R : never) {
  return createUserMcpServer(userId, { verifyRequestState: createRequestStateCheck(), tools: toolsOf(userId, ...rest), logger: testLogger() });
}

async function connected(s: ReturnType<typeof server>): Promise<Client> {
  const [a, b] = InMemoryTransport.createLinkedPair();
  await s.connect(a);
  const client = new Client({ name: 't', version: '1' });
  await client.connect(b);
  return client;
}

async function refused(work: Promise<unknown>): Promise<{ code: number; message: string; data: { code?: string } }> {
  try {
    await work;
  } catch (err) {
    const e = err as { code: number; message: string; data: { code?: string } };
    return e;
  }
  assert.fail('not refused');
}

describe('MCP tool policy (MCP_TOOLS)', () => {
  it('allows every tool, the read-only ones by the image\'s own annotations, or the named ones', () => {
    const names = (p: ReturnType<typeof createToolPolicy>): string[] => TOOLS.filter((t) => p.allows(t)).map((t) => t.name);
    assert.deepEqual(names(createToolPolicy('all')), ['read_text_file', 'write_file', 'mystery']);
    assert.deepEqual(names(createToolPolicy('read-only')), ['read_text_file'], 'an unannotated tool is not assumed read-only');
    assert.deepEqual(names(createToolPolicy(['write_file', 'mystery'])), ['write_file', 'mystery']);
  });
});

describe('a user\'s MCP server', () => {
  it('lists the catalogue\'s tools unchanged and as the policy allows, and runs calls as the user', async () => {
    const client = await connected(server('alice', createToolPolicy('read-only')));
    assert.deepEqual((await client.listTools()).tools, [TOOLS[0]]);
    const result = (await client.callTool({ name: 'read_text_file', arguments: {} })) as CallToolResult;
    assert.deepEqual(result.content, [{ type: 'text', text: 'alice ran read_text_file' }]);
  });

  it('refuses an unknown tool and one the policy hides with a clear JSON-RPC error listing the tools', async () => {
    const observed: Observed[] = [];
    const client = await connected(server('alice', createToolPolicy('read-only'), undefined, observed));
    const unknown = await refused(client.callTool({ name: 'nope', arguments: {} }));
    assert.equal(unknown.code, -32602);
    assert.match(unknown.message, /^MCP error -32602: unknown tool "nope"; the tools are: read_text_file$/);
    assert.equal(unknown.data.code, 'BAD_REQUEST');
    const hidden = await refused(client.callTool({ name: 'write_file', arguments: {} }));
    assert.match(hidden.message, /not available to MCP clients on this server \(MCP_TOOLS=read-only\)/);
    assert.equal(hidden.data.code, 'UNAUTHORIZED');
    assert.deepEqual(observed, [
      { tool: '(unknown)', outcome: 'refused' },
      { tool: 'write_file', outcome: 'refused' },
    ]);
  });

  it('turns a refusal or failure of the call into a JSON-RPC error whose data.code is the protocol code', async () => {
    const client = await connected(server('alice', undefined, async () => Promise.reject(new SandpoolError('TOO_MANY_REQUESTS', 'you already have 5 requests in flight'))));
    const e = await refused(client.callTool({ name: 'read_text_file', arguments: {} }));
    assert.equal(e.code, -32000);
    assert.equal(e.data.code, 'TOO_MANY_REQUESTS');
    assert.match(e.message, /you already have 5 requests in flight/);
    const failing = await connected(server('alice', undefined, async () => Promise.reject(new SandpoolError('SANDBOX_FAILED', 'a sandbox could not be started; try again shortly', { detail: 'engine: no such image' }))));
    const f = await refused(failing.callTool({ name: 'read_text_file', arguments: {} }));
    assert.equal(f.data.code, 'SANDBOX_FAILED');
    assert.doesNotMatch(f.message, /no such image/, 'internals stay in the log');
    assert.match(f.message, /\(log id [0-9a-f]{8}\)/);
  });
});

describe('/mcp routes (Hono, no network)', () => {
  const app = ({ secret }: { secret: string | undefined } = { secret: TEST_SECRET }) => {
    const serverFor = (userId: string) => server(userId);
    const sessions = createMcpSessionRegistry({ serverFor, admit: async () => undefined, idleTimeoutMs: 60_000, maxBodyBytes: 1024, onOpen: () => undefined, onClose: () => undefined, logger: testLogger() });
    return createMcpRoutes({
      authenticate: createAuthenticator({ secret, issuer: undefined, audience: undefined, clockToleranceMs: 0, maxLifetimeS: 86_400 }),
      tokensAreJwts: secret !== undefined,
      issuer: 'https://id.example',
      origins: createOriginPolicy({ allowedOrigins: [], publicUrl: 'https://sandpool.test' }),
      publicUrl: () => 'https://sandpool.test',
      sessions,
      serverFor,
      tools: toolsOf('(any)'),
      maxBodyBytes: 1024,
      logger: testLogger(),
    }).routes;
  };
  const post = (body: string, headers: Record<string, string> = {}) => ({ method: 'POST', body, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', host: 'sandpool.test', ...headers } });
  const init = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: { roots: { listChanged: true } }, clientInfo: { name: 't', version: '1' } } });

  it('challenges a request without a usable token with the resource metadata\'s address', async () => {
    const routes = app();
    const bare = await routes.request('/mcp', post('{}'));
    assert.equal(bare.status, 401);
    assert.equal(bare.headers.get('www-authenticate'), 'Bearer resource_metadata="https://sandpool.test/.well-known/oauth-protected-resource"');
    const expired = await routes.request('/mcp', post('{}', { authorization: `Bearer ${await makeToken({ exp: Math.floor(Date.now() / 1000) - 60 })}` }));
    assert.match(expired.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="invalid token: the token has expired; get a fresh one and reconnect"/);
    // From PUBLIC_URL, whatever the request's headers say.
    const meta = (await (await routes.request('/.well-known/oauth-protected-resource', { headers: { host: 'sandpool.test', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' } })).json()) as Record<string, unknown>;
    assert.deepEqual(meta, {
      resource: 'https://sandpool.test/mcp',
      authorization_servers: ['https://id.example'],
      bearer_methods_supported: ['header'],
      resource_name: "sandpool: your own sandbox's tools over MCP",
      resource_documentation: 'https://sandpool.test/',
    });
  });

  it('opens sessions that belong to their user: another user\'s token gets 404 for the same id', async () => {
    const routes = app();
    const alice = `Bearer ${await makeToken({ sub: 'alice' })}`;
    const opened = await routes.request('/mcp', post(init, { authorization: alice }));
    assert.equal(opened.status, 200);
    const sessionId = opened.headers.get('mcp-session-id') ?? '';
    assert.match(sessionId, /^[0-9a-f-]{36}$/);
    const list = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    const mine = await routes.request('/mcp', post(list, { authorization: alice, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' }));
    assert.equal(mine.status, 200);
    // A session answers in SSE (what the sandbox says during a call goes on the same stream), unbuffered by proxies.
    assert.match(mine.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(mine.headers.get('x-accel-buffering'), 'no');
    assert.match(await mine.text(), /"tools":\[/);
    const bob = `Bearer ${await makeToken({ sub: 'bob' })}`;
    assert.equal((await routes.request('/mcp', post(list, { authorization: bob, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' }))).status, 404);
  });

  it('answers malformed JSON with a parse error (400), a large body with 413, a foreign Origin with 403', async () => {
    const routes = app();
    const auth = { authorization: `Bearer ${await makeToken({ sub: 'alice' })}` };
    const bad = await routes.request('/mcp', post('{"jsonrpc":', auth));
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: number } }).error.code, -32700);
    const big = await routes.request('/mcp', post(JSON.stringify({ pad: 'x'.repeat(2000) }), auth));
    assert.equal(big.status, 413);
    const foreign = await routes.request('/mcp', post(init, { ...auth, origin: 'https://evil.example' }));
    assert.equal(foreign.status, 403);
  });

  it('answers bad input within a session as without one: 413 and parse errors carry data.code', async () => {
    const routes = app();
    const auth = { authorization: `Bearer ${await makeToken({ sub: 'alice' })}` };
    const opened = await routes.request('/mcp', post(init, auth));
    const inSession = { ...auth, 'mcp-session-id': opened.headers.get('mcp-session-id') ?? '', 'mcp-protocol-version': '2025-06-18' };
    const big = await routes.request('/mcp', post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'write_file', arguments: { content: 'x'.repeat(2000) } } }), inSession));
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { error: { data: { code: string } } }).error.data.code, 'PAYLOAD_TOO_LARGE');
    const bad = await routes.request('/mcp', post('{"jsonrpc":', inSession));
    assert.equal(bad.status, 400);
    const error = ((await bad.json()) as { error: { code: number; data: { code: string } } }).error;
    assert.equal(error.code, -32700);
    assert.equal(error.data.code, 'BAD_REQUEST');
    // The session still answers.
    const list = await routes.request('/mcp', post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }), inSession));
    assert.equal(list.status, 200);
  });

  it('takes the bearer token as the user id when the server has no AUTH_SECRET (development identity)', async () => {
    const routes = app({ secret: undefined });
    const res = await routes.request('/mcp', post(init, { authorization: 'Bearer dev-user' }));
    assert.equal(res.status, 200);
    assert.equal((await routes.request('/mcp', post(init, { authorization: 'Bearer not a user id!' }))).status, 401);
  });
});

describe('the gateway\'s verified-token cache', () => {
  it('verifies a token once while it lasts, again once it expired (and then refuses it), never remembers a refusal, and stays bounded', async () => {
    let nowMs = 1_000_000;
    const verified: string[] = [];
    const authenticate = async ({ token }: { token?: unknown }) => {
      verified.push(String(token));
      if (String(token).startsWith('bad')) throw new SandpoolError('UNAUTHORIZED', 'invalid token');
      if (String(token) === 'short' && nowMs >= 1_005_000) throw new SandpoolError('UNAUTHORIZED', 'the token has expired');
      return { userId: `user-of-${String(token)}`, expiresAtMs: String(token) === 'short' ? 1_005_000 : undefined, scopes: [] };
    };
    const cached = createIdentityCache(authenticate, { maxEntries: 2, now: () => nowMs });
    assert.equal((await cached('short')).userId, 'user-of-short');
    assert.equal((await cached('short')).userId, 'user-of-short');
    assert.deepEqual(verified, ['short'], 'the second request with the same token is not verified again');
    nowMs = 1_005_000;
    await assert.rejects(cached('short'), /expired/);
    await assert.rejects(cached('bad-1'), /invalid/);
    await assert.rejects(cached('bad-1'), /invalid/);
    assert.deepEqual(verified, ['short', 'short', 'bad-1', 'bad-1'], 'expired and refused tokens are verified (and refused) every time');
    await cached('a');
    await cached('b');
    await cached('c');
    await cached('a');
    assert.deepEqual(verified.slice(4), ['a', 'b', 'c', 'a'], 'at most 2 remembered: the oldest went first');
  });
});
