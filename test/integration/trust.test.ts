import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { io as connectIo } from 'socket.io-client';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { connectUser, emitAck, nextEvent, startReplica, testConfig, type ClientSocket } from '../support/helpers.js';
import { TEST_SECRET, makeToken, unsignedToken } from '../support/tokens.js';

const run = promisify(execFile);

/** A raw handshake with headers of our choosing; resolves with the connect_error's code, or 'connected'. */
function handshake(url: string, auth: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectIo(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: headers });
    socket.once('connect', () => {
      socket.close();
      resolve('connected');
    });
    socket.once('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
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
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await handshake(app.url, { token }), 'connected');
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
