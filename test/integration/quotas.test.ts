/**
 * Plans and quotas on real components: replicas in their own processes,
 * Redis, nginx, real sandboxes, the official MCP SDK client and Socket.IO
 * clients. Each refusal shape of the contract, /me/usage, counting across
 * replicas and reconnects (once per call, routed or not), a malformed plans
 * file at start, and the limiter with its Redis down in both modes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { spawnProcess } from '../../scripts/lib/start-process.js';
import { signOperatorToken } from '../../src/auth/operator-token.js';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { connectRedisCommand, type RedisClient } from '../../src/cluster/redis-clients.js';
import { createRedisQuotaStore } from '../../src/quota/redis-quota-store.js';
import { LABELS } from '../../src/runtime/types.js';
import { converse } from '../support/conversation.js';
import { startCluster, type RunningCluster } from '../support/cluster.js';
import { connectUser, dockerPs, emitAck, nextEvent, startRedis, testConfig, testLogger, waitFor, type ClientSocket, type RedisServer } from '../support/helpers.js';
import { TEST_SECRET, makeToken } from '../support/tokens.js';

const OPERATOR_SECRET = 'an-operator-secret-of-at-least-32-bytes';

const PLANS = {
  free: { callsPerHour: 100, callsPerDay: 1000, callsPerMonth: 10000 },
  tiny: { callsPerHour: 3, callsPerDay: 100, callsPerMonth: null, maxInFlight: 2 },
  unlimited: { callsPerHour: null, callsPerDay: null, callsPerMonth: null },
};

function writePlans(content: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'sandpool-plans-')), 'plans.json');
  writeFileSync(file, content);
  return file;
}

interface QuotaError {
  code: string;
  message: string;
  plan?: string;
  window?: string;
  limit?: number;
  retryAfterSeconds?: number;
}

/** An MCP client of the official SDK over Streamable HTTP, with a bearer token. */
async function mcpClient(base: string, token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'sandpool-quota-test', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** The JSON-RPC error a tools/call got. */
async function rpcRefusal(work: Promise<unknown>): Promise<{ code: number; message: string; data: QuotaError }> {
  try {
    await work;
  } catch (err) {
    const e = err as { code?: number; message: string; data?: QuotaError };
    return { code: e.code ?? 0, message: e.message, data: e.data ?? { code: '', message: '' } };
  }
  assert.fail('the call was not refused');
}

function assertQuotaShape(error: QuotaError, plan: string, limit: number): void {
  assert.equal(error.code, 'QUOTA_EXCEEDED');
  assert.equal(error.plan, plan);
  assert.equal(error.window, 'hour');
  assert.equal(error.limit, limit);
  assert.equal(typeof error.retryAfterSeconds, 'number');
  assert.ok((error.retryAfterSeconds ?? 0) >= 1 && (error.retryAfterSeconds ?? 0) <= 3_660, String(error.retryAfterSeconds));
  assert.match(error.message, new RegExp(`your ${plan} plan allows ${limit} tool calls per hour`));
}

/** The series of one metric in Prometheus text: labels (any order) and value. */
function seriesOf(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1] ?? '', l[2] ?? '']));
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}
const matches = (labels: Record<string, string>, want: Record<string, string>): boolean => Object.entries(want).every(([k, v]) => labels[k] === v);
const sumSeries = (text: string, name: string, want: Record<string, string>): number => seriesOf(text, name).filter((s) => matches(s.labels, want)).reduce((n, s) => n + s.value, 0);

async function usage(base: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/me/usage`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('plans and quotas across replicas (2 replicas, Redis, nginx; tokens with plans)', () => {
  let cluster: RunningCluster;
  const sockets: ClientSocket[] = [];
  const clients: Client[] = [];
  const token = (sub: string, plan?: string): Promise<string> => makeToken({ sub, ...(plan ? { plan } : {}) });
  const connect = async (url: string, sub: string, plan?: string): Promise<{ socket: ClientSocket; session: { replica: string; plan: string; limits: { maxRequestsPerUser: number } } }> => {
    const socket = await connectUser(url, { token: await token(sub, plan) }, { uid: sub });
    sockets.push(socket);
    return { socket, session: await nextEvent(socket, 'session') };
  };

  before(async () => {
    cluster = await startCluster(2, { AUTH_SECRET: TEST_SECRET, OPERATOR_SECRET, PLANS_FILE: writePlans(JSON.stringify(PLANS)), POOL_MIN_SIZE: '1', WORKSPACE_STORE: 'none' });
  });
  after(async () => {
    for (const s of sockets) s.close();
    for (const c of clients) await c.close().catch(() => undefined);
    await cluster.stop();
    for (const r of cluster.state.replicas) assert.deepEqual(await dockerPs({ [LABELS.replica]: r.id }), [], `containers of ${r.id} left behind`);
  });

  it('counts chat and MCP calls of one user once each, whichever replica takes them; the limit holds across replicas and a reconnect', { timeout: 120_000 }, async () => {
    const { state } = cluster;
    const { socket, session } = await connect(state.url, 'tina', 'tiny');
    assert.equal(session.plan, 'tiny');
    assert.equal(session.limits.maxRequestsPerUser, 2, 'the plan\'s maxInFlight');
    const home = state.replicas.find((r) => r.id === session.replica);
    const other = state.replicas.find((r) => r.id !== session.replica);
    assert.ok(home && other);

    // Call 1, chat, on the replica holding the sandbox.
    const ack = await emitAck(socket, 'message', 'write "one" to /workspace/one.txt');
    assert.deepEqual((ack as unknown as { quota: unknown }).quota, { plan: 'tiny', remaining: { hour: 3, day: 100, month: null } });
    const done = nextEvent(socket, 'message:done', (p) => p.requestId === ack.requestId, 60_000);
    const request = await nextEvent(socket, 'tool:request', (p) => p.requestId === ack.requestId, 60_000);
    await emitAck(socket, 'tool:approval', { callId: request.callId, approved: true });
    await done;
    // Call 2, MCP on the other replica: routed to the sandbox's replica, counted once (where it came in).
    const mcpOther = await mcpClient(other.url, await token('tina', 'tiny'));
    clients.push(mcpOther);
    await mcpOther.callTool({ name: 'list_directory', arguments: { path: '/workspace' } });
    const seen = await usage(other.url, await token('tina', 'tiny'));
    assert.equal(seen.status, 200);
    assert.deepEqual((seen.body.windows as Record<string, unknown>).hour, { used: 2, limit: 3, resetsInSeconds: (seen.body.windows as { hour: { resetsInSeconds: number } }).hour.resetsInSeconds });
    // Call 3, MCP on the home replica.
    const mcpHome = await mcpClient(home.url, await token('tina', 'tiny'));
    clients.push(mcpHome);
    await mcpHome.callTool({ name: 'read_text_file', arguments: { path: '/workspace/one.txt' } });
    // Call 4 is refused on either replica, over MCP...
    const refused = await rpcRefusal(mcpOther.callTool({ name: 'list_directory', arguments: { path: '/workspace' } }));
    assert.equal(refused.code, -32000);
    assertQuotaShape(refused.data, 'tiny', 3);
    // ...and a message on a fresh socket (a reconnect, to the other replica) is refused in its ack.
    socket.close();
    const again = await connect(other.url, 'tina', 'tiny');
    const refusedAck = (await emitAck(again.socket, 'message', 'list files in /workspace')) as unknown as { ok: boolean; error: QuotaError };
    assert.equal(refusedAck.ok, false);
    assertQuotaShape(refusedAck.error, 'tiny', 3);
    // Exactly 3 counted, not 4 or 5: the routed call was not counted twice, refusals not at all.
    const after = await usage(state.url, await token('tina', 'tiny'));
    assert.equal((after.body.windows as { hour: { used: number } }).hour.used, 3);
    // Another user of the same plan is not affected.
    assert.match((await converse((await connect(state.url, 'tom', 'tiny')).socket, 'list files in /workspace', 60_000)).done, /list_directory/);
  });

  it('ends a request whose tool call would cross the limit mid-request with request:error QUOTA_EXCEEDED', { timeout: 120_000 }, async () => {
    const { socket } = await connect(cluster.state.url, 'mid', 'tiny');
    // Two calls done; then two messages, both accepted while 1 call remains (maxInFlight 2): the second call crosses.
    const [a, b] = [await emitAck(socket, 'message', 'list files in /workspace'), await emitAck(socket, 'message', 'list files in /workspace')];
    for (const ack of [a, b]) {
      assert.equal(ack.ok, true);
      const request = await nextEvent(socket, 'tool:request', (p) => p.requestId === ack.requestId, 60_000);
      await emitAck(socket, 'tool:approval', { callId: request.callId, approved: true });
      await nextEvent(socket, 'message:done', (p) => p.requestId === ack.requestId, 60_000);
    }
    const c = await emitAck(socket, 'message', 'list files in /workspace');
    const d = await emitAck(socket, 'message', 'list files in /workspace');
    assert.equal(c.ok && d.ok, true, 'both accepted: one call remains');
    for (const ack of [c, d]) {
      const request = await nextEvent(socket, 'tool:request', (p) => p.requestId === ack.requestId, 60_000);
      await emitAck(socket, 'tool:approval', { callId: request.callId, approved: true });
    }
    const ends = await Promise.all(
      [c, d].map((ack) =>
        Promise.race([
          nextEvent(socket, 'message:done', (p) => p.requestId === ack.requestId, 60_000).then(() => 'done' as const),
          nextEvent(socket, 'request:error', (p) => p.requestId === ack.requestId, 60_000),
        ]),
      ),
    );
    assert.equal(ends.filter((e) => e === 'done').length, 1, JSON.stringify(ends));
    const failed = ends.find((e) => typeof e !== 'string');
    assert.ok(failed);
    assertQuotaShape(failed.error, 'tiny', 3);
  });

  it('refuses a token naming a plan this deployment does not have, at the socket and at /mcp', async () => {
    const bad = await makeToken({ sub: 'mallory', plan: 'platinum' });
    await assert.rejects(connectUser(cluster.state.url, { token: bad }, { uid: 'mallory' }), (err: Error & { data?: { message: string } }) => {
      assert.equal(err.message, 'UNAUTHORIZED');
      assert.match(err.data?.message ?? '', /"plan" claim "platinum" is not a plan of this server \(free, tiny, unlimited\)/);
      return true;
    });
    const res = await fetch(`${cluster.state.replicas[0]?.url ?? ''}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${bad}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 401);
  });

  it('GET /me/usage: the plan and each window\'s used, limit and resetsInSeconds; 401 without a valid token', async () => {
    const base = cluster.state.url;
    const fresh = await usage(base, await token('newbie'));
    assert.equal(fresh.status, 200);
    assert.deepEqual(fresh.body, {
      plan: 'free',
      windows: { hour: { used: 0, limit: 100, resetsInSeconds: 0 }, day: { used: 0, limit: 1000, resetsInSeconds: 0 }, month: { used: 0, limit: 10000, resetsInSeconds: 0 } },
    });
    const unlimited = await usage(base, await token('big', 'unlimited'));
    assert.deepEqual((unlimited.body.windows as { month: { limit: unknown } }).month.limit, null);
    assert.equal((await fetch(`${base}/me/usage`)).status, 401);
    const forged = await fetch(`${base}/me/usage`, { headers: { authorization: `Bearer ${await makeToken({ sub: 'x' }, { secret: 'another-secret-of-at-least-32-bytes' })}` } });
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  });

  it('counts refusals, calls and auth failures by plan in /metrics (no user label)', async () => {
    const headers = { authorization: `Bearer ${await signOperatorToken({ secret: OPERATOR_SECRET })}` };
    const texts = await Promise.all(cluster.state.replicas.map(async (r) => (await fetch(`${r.url}/metrics`, { headers })).text()));
    for (const text of texts) assert.doesNotMatch(text, /tina|mallory|newbie/, 'no user id in any label');
    const sum = (name: string, labels: Record<string, string>): number => texts.reduce((n, text) => n + sumSeries(text, name, labels), 0);
    const count = (name: string, labels: Record<string, string>): number => texts.reduce((n, text) => n + seriesOf(text, name).filter((s) => matches(s.labels, labels)).length, 0);
    assert.equal(count('sandpool_rejections_total', { code: 'QUOTA_EXCEEDED', plan: 'unlimited' }), 2, 'series exist (at 0) from the start on each replica');
    assert.equal(sum('sandpool_rejections_total', { code: 'QUOTA_EXCEEDED', plan: 'unlimited' }), 0);
    assert.equal(count('sandpool_quota_warnings_total', { plan: 'free', window: 'month' }), 2);
    assert.ok(sum('sandpool_quota_calls_total', { plan: 'tiny' }) >= 7);
    assert.ok(sum('sandpool_rejections_total', { code: 'QUOTA_EXCEEDED', plan: 'tiny' }) >= 3, 'the MCP, ack and mid-request refusals');
    assert.ok(sum('sandpool_quota_refusals_total', { plan: 'tiny', window: 'hour' }) >= 3);
    assert.ok(sum('sandpool_quota_warnings_total', { plan: 'tiny', window: 'hour' }) >= 2, 'tina and mid crossed 80 % of the hour');
    assert.ok(sum('sandpool_http_request_duration_seconds_count', { method: 'GET', route: '/me/usage', status: '2xx' }) >= 3);
    assert.ok(sum('sandpool_http_request_duration_seconds_count', { method: 'GET', route: '/me/usage', status: '4xx' }) >= 2);
    assert.ok(sum('sandpool_auth_failures_total', { edge: 'socket' }) >= 1);
    assert.ok(sum('sandpool_auth_failures_total', { edge: 'mcp' }) >= 1);
    assert.ok(sum('sandpool_auth_failures_total', { edge: 'http' }) >= 1);
    assert.ok(sum('sandpool_quota_check_seconds_count', {}) >= 7);
  });
});

describe('a malformed plans file stops start-up', () => {
  async function startFails(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const proc = spawnProcess({
      name: 'replica with bad plans',
      command: process.execPath,
      args: ['dist/src/main.js'],
      env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', AUTH_SECRET: '', LOG_LEVEL: 'info', ...env },
    });
    const { code } = await proc.exited;
    return { code, stderr: proc.output() };
  }

  it('exits 2 before serving, listing every problem of the file', { timeout: 30_000 }, async () => {
    const file = writePlans(JSON.stringify({ free: { callsPerHour: 'lots', callsPerDay: 10 }, pro: { callsPerHour: 1, callsPerDay: 1, callsPerMonth: 1, maxInFlights: 3 } }));
    const { code, stderr } = await startFails({ PLANS_FILE: file });
    assert.equal(code, 2);
    assert.match(stderr, /Invalid configuration/);
    assert.match(stderr, /PLANS_FILE: 3 problems: \(1\) free\.callsPerHour: callsPerHour must be a whole number >= 0, or null for unlimited \(got "lots"\); \(2\) free\.callsPerMonth: callsPerMonth is required.*; \(3\) pro: unknown field\(s\) "maxInFlights"/);
    assert.doesNotMatch(stderr, /sandpool listening/);
  });

  it('exits 2 for a DEFAULT_PLAN the file does not have, or a file that is not JSON', { timeout: 30_000 }, async () => {
    const file = writePlans(JSON.stringify({ gold: { callsPerHour: null, callsPerDay: null, callsPerMonth: null } }));
    const missingDefault = await startFails({ PLANS_FILE: file });
    assert.equal(missingDefault.code, 2);
    assert.match(missingDefault.stderr, /DEFAULT_PLAN: "free" is not one of the plans \(gold\)/);
    const notJson = await startFails({ PLANS_FILE: writePlans('free: 100') });
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /PLANS_FILE: not valid JSON/);
  });
});

describe('the limiter with its Redis down (QUOTA_FAIL_MODE)', () => {
  let redis: RedisServer;
  const apps: Sandpool[] = [];
  const connections: RedisClient[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const app of apps) await app.stop();
    for (const c of connections) await c.quit(2_000);
    await redis.stop();
  });

  /** A replica counting tool calls in `redis` (its other state in memory): only the limiter loses Redis. */
  async function replica(mode: 'closed' | 'open'): Promise<Sandpool> {
    const clients = await connectRedisCommand({ url: redis.url, password: undefined, logger: testLogger(), connectTimeoutMs: 5_000, commandTimeoutMs: 1_000 });
    connections.push(clients);
    const app = await createSandpool(testConfig({ QUOTA_FAIL_MODE: mode }), {
      warmTimeoutMs: 60_000,
      quotaStore: createRedisQuotaStore({ redis: clients.command, prefix: `down-${mode}:` }),
    });
    apps.push(app);
    return app;
  }
  const failures = async (app: Sandpool, mode: string): Promise<number> =>
    Number(new RegExp(`^sandpool_quota_limiter_failures_total\\{mode="${mode}",[^}]*\\} (\\d+)$`, 'm').exec(await (await fetch(`${app.url}/metrics`)).text())?.[1] ?? NaN);

  it('closed (the default) refuses tool calls with INTERNAL while Redis is down, and counts again once it is back; open lets them through uncounted, counted as failures', { timeout: 120_000 }, async () => {
    const closed = await replica('closed');
    const open = await replica('open');
    const closedClient = await mcpClient(closed.url, 'cleo');
    const openClient = await mcpClient(open.url, 'otto');
    await closedClient.callTool({ name: 'list_directory', arguments: { path: '/workspace' } });
    await openClient.callTool({ name: 'list_directory', arguments: { path: '/workspace' } });

    await redis.stop();
    const refused = await rpcRefusal(closedClient.callTool({ name: 'list_directory', arguments: { path: '/workspace' } }));
    assert.equal(refused.data.code, 'INTERNAL');
    assert.match(refused.message, /usage cannot be checked right now \(the quota store is unreachable\)/);
    const socket = await connectUser(closed.url, { userId: 'cleo' });
    const ack = await emitAck(socket, 'message', 'list files in /workspace');
    assert.equal(ack.ok, false);
    assert.equal(ack.error?.code, 'INTERNAL');
    socket.close();
    assert.ok((await failures(closed, 'closed')) >= 2);

    const through = await openClient.callTool({ name: 'list_directory', arguments: { path: '/workspace' } });
    assert.notEqual(through.isError, true);
    const openSocket = await connectUser(open.url, { userId: 'otto' });
    const { done } = await converse(openSocket, 'list files in /workspace', 60_000);
    assert.match(done, /list_directory/);
    openSocket.close();
    assert.ok((await failures(open, 'open')) >= 2);
    assert.equal(await failures(open, 'closed'), 0);

    await redis.restart();
    await waitFor('the closed replica counting again', async () => {
      try {
        await closedClient.callTool({ name: 'list_directory', arguments: { path: '/workspace' } });
        return true;
      } catch {
        return false;
      }
    }, 30_000, 500);
    const res = await fetch(`${closed.url}/me/usage`, { headers: { authorization: 'Bearer cleo' } });
    assert.equal(((await res.json()) as { windows: { hour: { used: number } } }).windows.hour.used, 1, 'a Redis restarted without its data counts from zero');
    await closedClient.close();
    await openClient.close();
  });
});
