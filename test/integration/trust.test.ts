import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { io as connectIo } from 'socket.io-client';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { signOperatorToken } from '../../src/auth/operator-token.js';
import { connectUser, emitAck, nextEvent, startReplica, testConfig, type ClientSocket } from '../support/helpers.js';
import { TEST_SECRET, makeToken, unsignedToken } from '../support/tokens.js';
import { sleep } from '../../src/util/async.js';
import type { ErrorBody } from '../../src/protocol/errors.js';

const run = promisify(execFile);

/** A raw handshake with headers of our choosing; resolves with the connect_error's code, or 'connected'. */
function handshake(url: string, auth: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket: ClientSocket = connectIo(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: headers });
    socket.once('connect', () => {
      socket.close();
      resolve('connected');
    });
    socket.once('connect_error', (err: Error & { data?: ErrorBody }) => {
      socket.close();
      resolve(`${err.message}: ${err.data?.message ?? ''}`);
    });
  });
}

describe('trust at the Socket.IO edge (AUTH_SECRET, AUTH_ISSUER, AUTH_AUDIENCE, ALLOWED_ORIGINS, MAX_SOCKETS_PER_USER)', () => {
  let app: Sandpool;
  const sockets: ClientSocket[] = [];
  const claims = { iss: 'https://id.example', aud: 'sandpool' };

  before(async () => {
    app = await createSandpool(
      testConfig({
        POOL_MIN_SIZE: '0',
        AUTH_SECRET: TEST_SECRET,
        AUTH_ISSUER: claims.iss,
        AUTH_AUDIENCE: claims.aud,
        AUTH_CLOCK_TOLERANCE_MS: '0',
        ALLOWED_ORIGINS: 'https://app.example',
        MAX_SOCKETS_PER_USER: '2',
      }),
    );
  });
  after(async () => {
    for (const s of sockets) s.close();
    await app.stop();
  });

  it('refuses tokens without exp, with a foreign iss or aud, signed otherwise than HS256, or unsigned; accepts a good one', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const cases: Array<[string, string, RegExp]> = [
      ['no exp', await makeToken({ ...claims, exp: undefined }), /UNAUTHORIZED: .*"exp"/],
      ['foreign iss', await makeToken({ ...claims, iss: 'https://evil.example' }), /UNAUTHORIZED: .*"iss"/],
      ['foreign aud', await makeToken({ ...claims, aud: 'someone-else' }), /UNAUTHORIZED: .*"aud"/],
      ['HS512', await makeToken(claims, { alg: 'HS512' }), /UNAUTHORIZED: .*HS256/],
      ['unsigned', unsignedToken({ ...claims, sub: 'alice', exp: nowS + 60 }), /UNAUTHORIZED/],
      ['expired', await makeToken({ ...claims, exp: nowS - 10 }), /UNAUTHORIZED: .*expired/],
    ];
    for (const [name, token, expected] of cases) assert.match(await handshake(app.url, { token }), expected, name);
    assert.match(await handshake(app.url, { userId: 'alice' }), /UNAUTHORIZED: a token \(JWT\) is required/, 'no development identity with a secret');
    assert.equal(await handshake(app.url, { token: await makeToken(claims) }), 'connected');
  });

  it('tells a socket its token expired (auth:expired), then disconnects it; nothing is accepted on it after', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const socket = await connectUser(app.url, { token: await makeToken({ ...claims, sub: 'short-lived', exp }) }, { uid: 'short-lived' });
    sockets.push(socket);
    const ack = await emitAck(socket, 'message', 'help');
    assert.equal(ack.ok, true, 'accepted while the token is valid');
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
    await nextEvent(socket, 'auth:expired', () => true, 5_000);
    assert.equal(await disconnected, 'io server disconnect');
    assert.ok(Date.now() >= exp * 1000 - 50, 'not before exp');
  });

  it('refuses a browser handshake from a foreign Origin; accepts its own origin, ALLOWED_ORIGINS, and clients without Origin', async () => {
    const token = await makeToken({ ...claims, sub: 'origin-user' });
    assert.match(await handshake(app.url, { token }, { Origin: 'https://evil.example' }), /UNAUTHORIZED: origin "https:\/\/evil\.example" is not allowed/);
    assert.equal(await handshake(app.url, { token }, { Origin: app.url }), 'connected');
    assert.equal(await handshake(app.url, { token }, { Origin: 'https://app.example' }), 'connected');
    assert.equal(await handshake(app.url, { token }), 'connected');
  });

  it('gives CORS headers on the HTTP API to ALLOWED_ORIGINS only', async () => {
    const allowed = await fetch(`${app.url}/health`, { headers: { Origin: 'https://app.example' } });
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example');
    const foreign = await fetch(`${app.url}/health`, { headers: { Origin: 'https://evil.example' } });
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
  });

  it('caps a user\'s sockets (MAX_SOCKETS_PER_USER) and shares one event budget between them', async () => {
    const token = await makeToken({ ...claims, sub: 'many-tabs' });
    const a = await connectUser(app.url, { token }, { uid: 'many-tabs' });
    const b = await connectUser(app.url, { token }, { uid: 'many-tabs' });
    sockets.push(a, b);
    assert.match(await handshake(app.url, { token }), /^TOO_MANY_REQUESTS: you already have 2 connections open/);
    // 20 events/s, burst 40, for the user: two tabs together get no more than one.
    const acks = await Promise.all(Array.from({ length: 60 }, (_, i) => emitAck(i % 2 ? a : b, 'tool:approval', { callId: `x${i}`, approved: true })));
    const refused = acks.filter((r) => r.error?.code === 'TOO_MANY_REQUESTS').length;
    assert.ok(refused >= 15 && refused <= 25, `expected about 20 of 60 refused for the user, got ${refused}`);
    a.close();
    await sleep(200);
    assert.equal(await handshake(app.url, { token }), 'connected');
  });
});

/** One raw HTTP request (fetch cannot set Host): status and body. */
function rawRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('the deploy boundary of a replica (OPERATOR_SECRET, ALLOWED_HOSTS, PUBLIC_URL, AUTH_MAX_TOKEN_LIFETIME_S)', () => {
  let app: Sandpool;
  const OPERATOR_SECRET = 'an-operator-secret-of-32-bytes!!';

  before(async () => {
    app = await createSandpool(
      testConfig({ POOL_MIN_SIZE: '0', AUTH_SECRET: TEST_SECRET, OPERATOR_SECRET, PUBLIC_URL: 'https://sandpool.example', AUTH_MAX_TOKEN_LIFETIME_S: '3600' }),
    );
  });
  after(() => app.stop());

  it('operator endpoints answer 401 from loopback without an operator token; a user token, even with the scope, is not one', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
    const operator = await signOperatorToken({ secret: OPERATOR_SECRET });
    const tooLong = await makeToken({ sub: 'ops', scope: 'sandpool:operator', iat: nowS, exp: nowS + 7_200 }, { secret: OPERATOR_SECRET });
    const userWithScope = await makeToken({ sub: 'mallory', scope: 'sandpool:operator' });
    for (const [method, path] of [['GET', '/stats/pool'], ['GET', '/stats/pool?scope=cluster'], ['GET', '/metrics'], ['DELETE', '/admin/workspaces/nobody']] as const) {
      const call = async (headers: Record<string, string>): Promise<number> => (await fetch(`${app.url}${path}`, { method, headers })).status;
      assert.equal(await call({}), 401, `${path} bare`);
      assert.equal(await call(bearer(userWithScope)), 401, `${path} with a user token carrying the scope`);
      assert.equal(await call(bearer(tooLong)), 401, `${path} with an operator token living longer than AUTH_MAX_TOKEN_LIFETIME_S`);
      assert.equal(await call(bearer(operator)), 200, `${path} with an operator token`);
    }
    const refused = (await (await fetch(`${app.url}/metrics`, { headers: bearer(userWithScope) })).json()) as { error: ErrorBody };
    assert.equal(refused.error.code, 'UNAUTHORIZED');
    assert.match(refused.error.message, /not an operator token/);
    assert.equal((await fetch(`${app.url}/status`)).status, 200, '/status stays public');
  });

  it('public answers carry no internals: /health has no pid, /ready\'s reasons are coded and generic', async () => {
    const health = (await (await fetch(`${app.url}/health`)).json()) as Record<string, unknown>;
    assert.equal('pid' in health, false);
    const ready = (await (await fetch(`${app.url}/ready`)).json()) as { reasons?: Array<{ code: string; message: string }> };
    for (const r of ready.reasons ?? []) assert.match(r.code, /^[A-Z_]+$/);
  });

  it('refuses a DNS-rebinding request (foreign Host and Origin) on HTTP, Socket.IO and /mcp with 403; PUBLIC_URL\'s host is served', async () => {
    const foreign = { Host: 'rebound.evil.example', Origin: 'http://rebound.evil.example' };
    const page = await rawRequest(`${app.url}/`, { headers: foreign });
    assert.equal(page.status, 403);
    assert.equal((JSON.parse(page.body) as { error: ErrorBody }).error.code, 'FORBIDDEN');
    const polling = await rawRequest(`${app.url}/socket.io/?EIO=4&transport=polling`, { headers: foreign });
    assert.equal(polling.status, 403);
    assert.match(await handshake(app.url, { token: await makeToken({ sub: 'rebound' }) }, foreign), /403|xhr poll error|websocket error/);
    const token = await makeToken({ sub: 'rebound' });
    const mcp = await rawRequest(`${app.url}/mcp`, {
      method: 'POST',
      headers: { ...foreign, authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(mcp.status, 403);
    // The public name, and the Origin check on its own (an allowed Host, a foreign page).
    assert.equal((await rawRequest(`${app.url}/status`, { headers: { Host: 'sandpool.example' } })).status, 200);
    assert.match(await handshake(app.url, { token }, { Origin: 'https://evil.example' }), /UNAUTHORIZED: origin/);
    assert.equal(await handshake(app.url, { token }, { Origin: 'https://sandpool.example' }), 'connected', 'PUBLIC_URL\'s origin');
    const mcpForeignOrigin = await fetch(`${app.url}/mcp`, {
      method: 'POST',
      headers: { Origin: 'https://evil.example', authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(mcpForeignOrigin.status, 403);
  });

  it('names PUBLIC_URL, never request headers, as the MCP resource', async () => {
    const meta = await rawRequest(`${app.url}/.well-known/oauth-protected-resource`, { headers: { Host: 'localhost', 'X-Forwarded-Host': 'evil.example' } });
    assert.equal((JSON.parse(meta.body) as { resource: string }).resource, 'https://sandpool.example/mcp');
    const bare = await fetch(`${app.url}/mcp`, { method: 'POST', headers: { 'X-Forwarded-Host': 'evil.example' }, body: '{}' });
    assert.equal(bare.headers.get('www-authenticate'), 'Bearer resource_metadata="https://sandpool.example/.well-known/oauth-protected-resource"');
  });

  it('ends an MCP session, and its open stream, when its token expires; a fresh token cannot revive it', { timeout: 20_000 }, async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const short = await makeToken({ sub: 'mcp-expiring', iat: nowS, exp: nowS + 3 });
    const headers = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
    const init = await fetch(`${app.url}/mcp`, {
      method: 'POST',
      headers: headers(short),
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
    });
    assert.equal(init.status, 200);
    const sessionId = init.headers.get('mcp-session-id') ?? '';
    assert.ok(sessionId);
    await fetch(`${app.url}/mcp`, { method: 'POST', headers: { ...headers(short), 'mcp-session-id': sessionId }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
    const stream = await fetch(`${app.url}/mcp`, { method: 'GET', headers: { ...headers(short), accept: 'text/event-stream', 'mcp-session-id': sessionId } });
    assert.equal(stream.status, 200);
    // The stream ends by itself once the token's exp has passed.
    const reader = stream.body?.getReader();
    assert.ok(reader);
    for (;;) if ((await reader.read()).done) break;
    assert.ok(Date.now() >= (nowS + 3) * 1000 - 1000, 'the stream ended before the token expired');
    const revived = await fetch(`${app.url}/mcp`, {
      method: 'POST',
      headers: { ...headers(await makeToken({ sub: 'mcp-expiring' })), 'mcp-session-id': sessionId },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(revived.status, 404, 'the session ended with its token');
  });
});

/** Where a process listens for TCP on `port`, from the kernel (ss): e.g. 127.0.0.1 or 0.0.0.0. */
async function listenAddress(port: number): Promise<string> {
  const { stdout } = await run('ss', ['-Hltn', `sport = :${port}`]);
  const local = stdout.trim().split(/\s+/)[3] ?? '';
  return local.slice(0, local.lastIndexOf(':'));
}

describe('the development identity stays on this machine', () => {
  const started = async (env: Record<string, string>): Promise<{ port: number; output: string; stop(): Promise<unknown> }> => {
    const proc = await startReplica({ POOL_MIN_SIZE: '0', POOL_RUNTIME: 'process', ...env }, /sandpool listening/, 30_000);
    const port = Number(/"url":"http:\/\/[^:]+:(\d+)"/.exec(proc.output())?.[1]);
    return { port, output: proc.output(), stop: () => proc.stop('SIGTERM', 10_000) };
  };

  it('listens on loopback without AUTH_SECRET, everywhere with it, and warns loudly about a public HOST without one', async () => {
    const dev = await started({ HOST: '' });
    try {
      assert.equal(await listenAddress(dev.port), '127.0.0.1');
    } finally {
      await dev.stop();
    }
    const prod = await started({ HOST: '', AUTH_SECRET: TEST_SECRET });
    try {
      assert.match(await listenAddress(prod.port), /^(0\.0\.0\.0|\*|\[::\])$/);
    } finally {
      await prod.stop();
    }
    const exposed = await started({ HOST: '0.0.0.0' });
    try {
      assert.match(exposed.output, /WARNING: HOST=0\.0\.0\.0 without AUTH_SECRET: anyone who can reach this port can act as any user/);
    } finally {
      await exposed.stop();
    }
  });
});
