import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, LOG_LEVEL_META_KEY, StreamableHTTPClientTransport, type LoggingMessageNotification, type Progress } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Hono } from 'hono';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { SandpoolError } from '../../src/errors.js';
import { createOriginPolicy } from '../../src/auth/origins.js';
import type { DirectToolCalls } from '../../src/chat/direct-tool-calls.js';
import { createMcpRoutes } from '../../src/mcp-gateway/mcp-routes.js';
import { createMcpSessionRegistry } from '../../src/mcp-gateway/mcp-sessions.js';
import { createRequestStateCheck } from '../../src/mcp-gateway/request-state.js';
import { createToolPolicy } from '../../src/mcp-gateway/tool-policy.js';
import { createMcpTools, createUserMcpServer } from '../../src/mcp-gateway/user-mcp-server.js';
import type { ToolNotice } from '../../src/protocol/events.js';
import type { Tool } from '../../src/protocol/mcp-types.js';
import { testLogger } from '../support/helpers.js';
import { TEST_SECRET, makeToken } from '../support/tokens.js';

const TOOLS: Tool[] = [
  { name: 'read_text_file', inputSchema: { type: 'object', properties: { path: { type: 'string' } } }, annotations: { readOnlyHint: true } },
  { name: 'slow', inputSchema: { type: 'object' } },
  { name: 'flagged', inputSchema: { type: 'object' } },
  { name: 'busy', inputSchema: { type: 'object' } },
  { name: 'hold', inputSchema: { type: 'object' } },
  { name: 'say', inputSchema: { type: 'object' } },
];

/** The `hold` calls in flight (their listeners), and what lets them end. */
const holding = new Set<(notice: ToolNotice) => void>();
let releaseHolds: () => void = () => undefined;

/**
 * Calls that answer with the user's id; `slow` says two progress steps and a
 * log line first, as a sandbox's server would while a long call runs.
 */
const calls: DirectToolCalls = {
  async call(userId, name, _args, options) {
    if (name === 'flagged') return { content: [{ type: 'text', text: 'no such file' }], isError: true, structuredContent: { content: 'no such file' }, _meta: { 'sandbox/note': 'kept' } };
    if (name === 'hold') {
      // Listens until a `say` ends it, as a long call in the same sandbox does.
      if (options?.onNotice) holding.add(options.onNotice);
      await new Promise<void>((resolve) => (releaseHolds = resolve));
      if (options?.onNotice) holding.delete(options.onNotice);
    }
    if (name === 'say') {
      // One stdio log message, handed (as the sandbox hands it) to every call in flight: the hold and this one.
      const notice: ToolNotice = { kind: 'log', level: 'info', logger: 'fixture', data: `said for ${userId}` };
      for (const listener of holding) listener(notice);
      options?.onNotice?.(notice);
      releaseHolds();
    }
    if (name === 'busy') throw new SandpoolError('TOO_MANY_REQUESTS', `you already have 5 requests in flight (${userId})`);
    if (name === 'slow') {
      options?.onNotice?.({ kind: 'progress', progress: 1, total: 2, message: 'half way' });
      options?.onNotice?.({ kind: 'log', level: 'info', logger: 'fixture', data: `working for ${userId}` });
      options?.onNotice?.({ kind: 'progress', progress: 2, total: 2 });
    }
    return { content: [{ type: 'text', text: `${userId} ran ${name}` }] };
  },
};

/** Servers the SDK made (the held call's fast path makes none). */
let serversMade = 0;

function routes(options: { heldCallFastPath?: boolean } = {}): Hono {
  const verifyRequestState = createRequestStateCheck();
  const tools = createMcpTools({ tools: async () => TOOLS, policy: createToolPolicy('all'), calls, logger: testLogger(), observe: () => undefined });
  const serverFor = (userId: string) => (serversMade++, createUserMcpServer(userId, { tools, logger: testLogger(), verifyRequestState }));
  const sessions = createMcpSessionRegistry({ serverFor, admit: async () => undefined, idleTimeoutMs: 60_000, maxBodyBytes: 65_536, onOpen: () => undefined, onClose: () => undefined, logger: testLogger() });
  return createMcpRoutes({
    authenticate: createAuthenticator({ secret: TEST_SECRET, issuer: undefined, audience: undefined, clockToleranceMs: 0, maxLifetimeS: 86_400 }),
    tokensAreJwts: true,
    issuer: undefined,
    origins: createOriginPolicy({ allowedOrigins: [], publicUrl: 'https://sandpool.test' }),
    publicUrl: () => 'https://sandpool.test',
    sessions,
    serverFor,
    tools,
    maxBodyBytes: 65_536,
    logger: testLogger(),
    ...options,
  }).routes;
}

/** fetch() answered by the routes themselves: the SDK clients' whole HTTP exchange, without a network. */
const fetchVia = (app: Hono) => (url: string | URL, init?: RequestInit): Promise<Response> => Promise.resolve(app.request(new Request(url, init)));
const URL_ = new URL('https://sandpool.test/mcp');
const bearer = async (sub: string): Promise<Record<string, string>> => ({ authorization: `Bearer ${await makeToken({ sub })}` });

async function v2Client(app: Hono, sub: string, versionNegotiation?: { mode: 'auto' | { pin: string } }): Promise<Client> {
  const client = new Client({ name: 'v2', version: '1' }, versionNegotiation ? { versionNegotiation } : {});
  await client.connect(new StreamableHTTPClientTransport(URL_, { fetch: fetchVia(app), requestInit: { headers: await bearer(sub) } }));
  return client;
}

const textOf = (r: unknown): string => ((r as { content?: Array<{ text?: string }> }).content ?? []).map((c) => c.text ?? '').join('');

/** A raw 2026-07-28 request: the `_meta` envelope and the three headers, which a test may then spoil. */
function modernRequest(method: string, params: Record<string, unknown> = {}, version = '2026-07-28'): { body: Record<string, unknown>; headers: Record<string, string> } {
  const name = typeof params.name === 'string' ? params.name : undefined;
  return {
    body: {
      jsonrpc: '2.0',
      id: 7,
      method,
      params: {
        ...params,
        _meta: { 'io.modelcontextprotocol/protocolVersion': version, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    },
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': version, 'mcp-method': method, ...(name ? { 'mcp-name': name } : {}) },
  };
}

async function send(app: Hono, req: { body: unknown; headers: Record<string, string> }, sub = 'alice'): Promise<{ status: number; json: { result?: Record<string, unknown>; error?: { code: number; message: string; data?: unknown } } }> {
  const res = await app.request('https://sandpool.test/mcp', { method: 'POST', body: JSON.stringify(req.body), headers: { ...req.headers, ...(await bearer(sub)) } });
  return { status: res.status, json: (await res.json()) as { result?: Record<string, unknown>; error?: { code: number; message: string } } };
}

describe('/mcp for both protocol eras (the routes, the SDK clients, no network)', () => {
  it('a v2 client offering 2026-07-28 (auto) negotiates it: no session, and every request is the token\'s user\'s', async () => {
    const app = routes();
    const client = await v2Client(app, 'alice', { mode: 'auto' });
    assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
    assert.equal(client.getProtocolEra(), 'modern');
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), TOOLS.map((t) => t.name));
    const before = serversMade;
    assert.equal(textOf(await client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/a' } })), 'alice ran read_text_file');
    assert.equal(serversMade, before, 'the v2 client\'s tools/call takes the held call\'s fast path');
    const pinned = await v2Client(app, 'bob', { mode: { pin: '2026-07-28' } });
    assert.equal(textOf(await pinned.callTool({ name: 'read_text_file', arguments: {} })), 'bob ran read_text_file');
    await client.close();
    await pinned.close();
  });

  it('a v2 client with its defaults, and the v1 SDK client, get 2025-11-25 and a session', async () => {
    const app = routes();
    const v2 = await v2Client(app, 'carol');
    assert.equal(v2.getNegotiatedProtocolVersion(), '2025-11-25');
    assert.equal(v2.getProtocolEra(), 'legacy');
    assert.equal(textOf(await v2.callTool({ name: 'read_text_file', arguments: {} })), 'carol ran read_text_file');
    const transport = new V1Transport(URL_, { fetch: fetchVia(app), requestInit: { headers: await bearer('dave') } });
    const v1 = new V1Client({ name: 'v1', version: '1' });
    await v1.connect(transport);
    assert.equal(transport.protocolVersion, '2025-11-25');
    assert.match(transport.sessionId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(textOf(await v1.callTool({ name: 'read_text_file', arguments: {} })), 'dave ran read_text_file');
    await v1.close();
    await v2.close();
  });

  it('passes the sandbox\'s progress and log messages of a call to the client that made it, in both eras', async () => {
    const app = routes();
    // 2026-07-28: progress for the token it asked with; log messages only at the level its _meta names.
    const modern = await v2Client(app, 'erin', { mode: { pin: '2026-07-28' } });
    const logs: LoggingMessageNotification['params'][] = [];
    modern.setNotificationHandler('notifications/message', (n) => void logs.push(n.params));
    const progress: Progress[] = [];
    const result = await modern.callTool({ name: 'slow', arguments: {}, _meta: { [LOG_LEVEL_META_KEY]: 'info' } }, { onprogress: (p) => progress.push(p) });
    assert.equal(textOf(result), 'erin ran slow');
    assert.deepEqual(progress, [{ progress: 1, total: 2, message: 'half way' }, { progress: 2, total: 2 }]);
    assert.deepEqual(logs, [{ level: 'info', logger: 'fixture', data: 'working for erin' }]);
    // 2025-11-25, in a session: the v1 client.
    const v1 = new V1Client({ name: 'v1', version: '1' });
    await v1.connect(new V1Transport(URL_, { fetch: fetchVia(app), requestInit: { headers: await bearer('frank') } }));
    const oldLogs: unknown[] = [];
    v1.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void oldLogs.push(n.params));
    const oldProgress: unknown[] = [];
    await v1.callTool({ name: 'slow', arguments: {} }, undefined, { onprogress: (p) => oldProgress.push(p) });
    assert.deepEqual(oldProgress, [{ progress: 1, total: 2, message: 'half way' }, { progress: 2, total: 2 }]);
    assert.deepEqual(oldLogs, [{ level: 'info', logger: 'fixture', data: 'working for frank' }]);
    await v1.close();
    await modern.close();
  });

  it('passes a sandbox log message to a 2025-11-25 session once, however many of its calls are in flight', async () => {
    const app = routes();
    const v1 = new V1Client({ name: 'v1', version: '1' });
    await v1.connect(new V1Transport(URL_, { fetch: fetchVia(app), requestInit: { headers: await bearer('gus') } }));
    const logs: unknown[] = [];
    v1.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
    const held = v1.callTool({ name: 'hold', arguments: {} });
    while (holding.size === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(textOf(await v1.callTool({ name: 'say', arguments: {} })), 'gus ran say');
    assert.equal(textOf(await held), 'gus ran hold');
    assert.deepEqual(logs, [{ level: 'info', logger: 'fixture', data: 'said for gus' }]);
    await v1.close();
  });

  it('answers server/discover with both versions\' server and its tools capability', async () => {
    const { status, json } = await send(routes(), modernRequest('server/discover'));
    assert.equal(status, 200);
    const result = json.result as { supportedVersions: string[]; capabilities: Record<string, unknown> };
    assert.deepEqual(result.supportedVersions, ['2026-07-28']);
    assert.ok('tools' in result.capabilities);
  });

  it('refuses a header that disagrees with the body (400, -32020) and a version it does not serve (-32022)', async () => {
    const app = routes();
    const call = modernRequest('tools/call', { name: 'read_text_file', arguments: {} });
    const wrongName = await send(app, { ...call, headers: { ...call.headers, 'mcp-name': 'write_file' } });
    assert.equal(wrongName.status, 400);
    assert.equal(wrongName.json.error?.code, -32020);
    const wrongMethod = await send(app, { ...call, headers: { ...call.headers, 'mcp-method': 'tools/list' } });
    assert.equal(wrongMethod.status, 400);
    assert.equal(wrongMethod.json.error?.code, -32020);
    const wrongVersion = await send(app, { ...call, headers: { ...call.headers, 'mcp-protocol-version': '2026-01-01' } });
    assert.equal(wrongVersion.status, 400);
    assert.equal(wrongVersion.json.error?.code, -32020);
    const unknown = await send(app, modernRequest('tools/call', { name: 'read_text_file', arguments: {} }, '2099-01-01'));
    assert.equal(unknown.status, 400);
    assert.equal(unknown.json.error?.code, -32022);
    assert.match(JSON.stringify(unknown.json.error?.data), /2026-07-28/);
  });

  it('refuses a request state it did not mint (forged), and answers the same call without one', async () => {
    const app = routes();
    const forged = await send(app, modernRequest('tools/call', { name: 'read_text_file', arguments: {}, requestState: 'v1.eyJwIjp7InVzZXIiOiJib2IifX0.AAAA' }));
    assert.equal(forged.json.error?.code, -32602);
    assert.match(forged.json.error?.message ?? '', /Invalid or expired requestState/);
    const plain = await send(app, modernRequest('tools/call', { name: 'read_text_file', arguments: {} }));
    assert.equal(textOf(plain.json.result), 'alice ran read_text_file');
  });

  it('serves subscriptions/listen as an SSE stream with X-Accel-Buffering: no, acknowledged first', async () => {
    const app = routes();
    const controller = new AbortController();
    const listen = modernRequest('subscriptions/listen', { notifications: { toolsListChanged: true } });
    const res = await app.request('https://sandpool.test/mcp', { method: 'POST', body: JSON.stringify(listen.body), headers: { ...listen.headers, ...(await bearer('gina')) }, signal: controller.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    const reader = res.body?.getReader();
    assert.ok(reader);
    let text = '';
    while (!text.includes('notifications/subscriptions/acknowledged')) {
      const { value, done } = await reader.read();
      assert.equal(done, false, `the stream ended before its acknowledgement: ${text}`);
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    await reader.cancel().catch(() => undefined);
  });

  it('answers a plainly valid 2026-07-28 tools/call on its fast path with what the SDK answers, and the rest through the SDK', async () => {
    const fast = routes();
    const sdk = routes({ heldCallFastPath: false });
    const answer = async (app: Hono, req: { body: unknown; headers: Record<string, string> }): Promise<{ status: number; type: string | null; json: unknown }> => {
      const res = await app.request('https://sandpool.test/mcp', { method: 'POST', body: JSON.stringify(req.body), headers: { ...req.headers, ...(await bearer('hal')) } });
      return { status: res.status, type: res.headers.get('content-type'), json: await res.json() };
    };
    for (const [name, args] of [['read_text_file', { path: '/workspace/a' }], ['flagged', {}], ['busy', {}], ['nope', {}]] as const) {
      const req = modernRequest('tools/call', { name, arguments: args });
      const before = serversMade;
      const viaFastPath = await answer(fast, req);
      assert.equal(serversMade, before, `${name}: answered without an SDK server`);
      const viaSdk = await answer(sdk, req);
      assert.equal(serversMade, before + 1, `${name}: the SDK served the comparison`);
      assert.deepEqual(viaFastPath, viaSdk, `${name}: the fast path answers as the SDK does`);
    }
    // Not plainly valid: the SDK answers (and refuses) it.
    const before = serversMade;
    const withProgress = modernRequest('tools/call', { name: 'read_text_file', arguments: {} });
    (withProgress.body.params as { _meta: Record<string, unknown> })._meta.progressToken = 'p1';
    assert.equal(textOf((await send(fast, withProgress)).json.result), 'alice ran read_text_file');
    assert.equal(serversMade, before + 1, 'a call with a progress token goes to the SDK (it may stream)');
    const traced = modernRequest('tools/call', { name: 'read_text_file', arguments: {} });
    (traced.body.params as { _meta: Record<string, unknown> })._meta['io.modelcontextprotocol/traceparent'] = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    assert.equal(textOf((await send(fast, traced)).json.result), 'alice ran read_text_file', 'trace context is accepted');
    assert.equal(serversMade, before + 2, 'and goes to the SDK');
    const call = modernRequest('tools/call', { name: 'read_text_file', arguments: {} });
    assert.equal((await send(fast, { ...call, headers: { ...call.headers, 'mcp-name': 'write_file' } })).json.error?.code, -32020);
  });
});
