/**
 * The operations kit on live data: the scale stack with its monitoring
 * profile (docker-compose.scale.yml + docker-compose.monitoring.yml; 2
 * replicas, POOL_MAX_SIZE 3 each), on the images `npm run images` builds
 * (here, without a registry: Prometheus, Alertmanager and the exporters
 * assembled from Debian's packages). Load through nginx (chat, MCP, a plan's
 * quota, too many requests in flight, refused tokens), then: Prometheus
 * scrapes every replica (found by DNS, with the operator token the refresher
 * writes) and the exporters; every dashboard panel's query returns data; the
 * pool exhausted on purpose fires SandpoolPoolExhausted, which reaches the
 * webhook through Alertmanager; promtool checks the deployed configuration.
 *
 * The project is `sandpool-e2e-mon-<pid>-<hex>` on its own network,
 * published on free ports of 127.0.0.1 only; `down -v` removes it, and a run
 * that died before its `down` is swept by the next.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signOperatorToken } from '../../src/auth/operator-token.js';
import { converse } from '../support/conversation.js';
import { connectUser, emitAck, freePort, nextEvent, waitFor, type ClientSocket } from '../support/helpers.js';
import { TEST_PROJECT_PREFIX, buildImages, containerHosts, run, sandboxesOwnedBy, sweepLeftoverProjects } from '../support/stack.js';
import { makeToken } from '../support/tokens.js';

const PROJECT_PREFIX = `${TEST_PROJECT_PREFIX}mon-`;
const FILES = ['-f', 'docker-compose.scale.yml', '-f', 'docker-compose.monitoring.yml'];

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

describe('the monitoring profile on live data (2 replicas, Prometheus, Alertmanager, exporters, webhook)', () => {
  const project = `${PROJECT_PREFIX}${process.pid}-${randomBytes(2).toString('hex')}`;
  let env: Record<string, string>;
  let url = '';
  let prometheus = '';
  let composeEnv: NodeJS.ProcessEnv;
  let down = false;
  const sockets: ClientSocket[] = [];
  const clients: Client[] = [];
  const appHosts = new Set<string>();
  const compose = (args: readonly string[], timeoutMs = 300_000): Promise<string> => run('docker-compose', ['-p', project, ...FILES, ...args], { env: composeEnv, timeoutMs });
  const userToken = (sub: string, plan?: string): Promise<string> => makeToken({ sub, ...(plan ? { plan } : {}) }, { secret: env.AUTH_SECRET ?? '' });
  const operator = async (): Promise<Record<string, string>> => ({ authorization: `Bearer ${await signOperatorToken({ secret: env.OPERATOR_SECRET ?? '' })}` });

  async function query(expr: string): Promise<PromResult[]> {
    const res = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
    assert.equal(body.status, 'success', `${expr}: ${body.error ?? ''}`);
    return body.data?.result ?? [];
  }

  interface ReplicaView {
    replica: string;
    idle: number;
    active: number;
    parked: number;
    total: number;
    maxPoolSize: number;
    connections?: number;
    sessions?: number;
  }

  /** Every replica's pool stats (the operator endpoint, through nginx). */
  async function clusterPools(): Promise<ReplicaView[]> {
    const res = await fetch(`${url}/stats/pool?scope=cluster`, { headers: await operator(), signal: AbortSignal.timeout(5_000) });
    return ((await res.json()) as { replicas: ReplicaView[] }).replicas;
  }

  /**
   * The next step starts with every sandbox free. Chat users who left give
   * theirs back after SESSION_DISCONNECT_GRACE_MS (30 s); MCP users when
   * their session ends (`leave` sends the DELETE). When that does not happen,
   * the failure names what still holds the sandboxes: each replica's pool,
   * sockets and sessions, and the replicas' session and release log lines.
   */
  async function allReleased(): Promise<void> {
    let last = '';
    await waitFor('every leased sandbox given back', async () => {
      const pools = await clusterPools();
      last = pools.map((r) => `${r.replica}: idle ${r.idle} active ${r.active} total ${r.total} connections ${r.connections ?? '?'} sessions ${r.sessions ?? '?'}`).join('; ');
      return pools.every((r) => r.active === 0);
    }, 90_000, 2_000).catch(async (err: unknown) => {
      const logs = await compose(['logs', '--no-color', '--tail', '400', 'app'], 30_000).catch(() => '');
      const lines = logs.split('\n').filter((l) => /releasing sandbox|MCP session|"level":(40|50)/.test(l)).slice(-40);
      throw new Error(`${String(err)}\nreplicas: ${last}\n${lines.join('\n')}`);
    });
  }

  const transports = new Map<Client, StreamableHTTPClientTransport>();

  async function mcp(sub: string, plan?: string): Promise<Client> {
    const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${await userToken(sub, plan)}` } } });
    const client = new Client({ name: 'sandpool-monitoring-test', version: '1.0.0' });
    await client.connect(transport);
    clients.push(client);
    transports.set(client, transport);
    return client;
  }

  /**
   * The MCP user leaves as the protocol says: DELETE ends the session, and
   * with it the user's hold on their sandbox. (Client.close() only drops the
   * connection: the session, and the sandbox, would stay until
   * SESSION_IDLE_TIMEOUT_MS, 10 min.)
   */
  async function leave(client: Client): Promise<void> {
    await transports.get(client)?.terminateSession();
    await client.close();
  }

  before(async () => {
    const swept = await sweepLeftoverProjects(PROJECT_PREFIX);
    if (swept.length > 0) process.stderr.write(`# swept monitoring projects an earlier run left behind: ${swept.join(', ')}\n`);
    env = await buildImages();
    for (const key of ['PROMETHEUS_IMAGE', 'ALERTMANAGER_IMAGE', 'NGINX_EXPORTER_IMAGE', 'REDIS_EXPORTER_IMAGE']) assert.ok(env[key], `npm run images wrote no ${key}`);
    // A plan small enough to fill: 5 calls an hour.
    const plans = JSON.parse(readFileSync('ops/plans.json', 'utf8')) as Record<string, unknown>;
    const plansFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'sandpool-mon-plans-')), 'plans.json');
    writeFileSync(plansFile, JSON.stringify({ ...plans, tiny: { callsPerHour: 5, callsPerDay: 50, callsPerMonth: 500 } }), { mode: 0o644 });
    const [web, prom, am] = [await freePort(), await freePort(), await freePort()];
    url = `http://127.0.0.1:${web}`;
    prometheus = `http://127.0.0.1:${prom}`;
    composeEnv = {
      ...process.env,
      SANDPOOL_PUBLISH: `127.0.0.1:${web}`,
      PROMETHEUS_PUBLISH: `127.0.0.1:${prom}`,
      ALERTMANAGER_PUBLISH: `127.0.0.1:${am}`,
      SANDPOOL_PLANS_FILE: plansFile,
      POOL_MIN_SIZE: '1',
      POOL_MAX_SIZE: '3',
    };
    await compose(['up', '-d', '--scale', 'app=2']);
    await waitFor('2 ready replicas behind nginx', async () => {
      const res = await fetch(`${url}/stats/pool?scope=cluster`, { headers: await operator(), signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
      if (res?.status !== 200) return false;
      const view = (await res.json()) as { replicas: Array<{ ready: boolean }> };
      return view.replicas.length === 2 && view.replicas.every((r) => r.ready);
    }, 240_000, 2_000);
    for (const h of await containerHosts([`com.docker.compose.project=${project}`, 'com.docker.compose.service=app'])) appHosts.add(h);
  });

  after(async () => {
    for (const s of sockets) s.close();
    for (const c of clients) await c.close().catch(() => undefined);
    if (!down && composeEnv) await compose(['down', '-v', '--timeout', '40']).catch((err: unknown) => process.stderr.write(`# down failed: ${String(err)}\n`));
  });

  it('scrapes every replica (found by DNS, with the refreshed operator token), both Redis and nginx through their exporters, and Alertmanager', { timeout: 180_000 }, async () => {
    await waitFor('every target up', async () => {
      const up = await query('up');
      const byJob = (job: string): PromResult[] => up.filter((r) => r.metric.job === job);
      return byJob('sandpool').length === 2 && byJob('redis').length === 2 && up.length >= 8 && up.every((r) => r.value[1] === '1') ? up : false;
    }, 150_000, 3_000);
    const instances = (await query('up{job="redis"}')).map((r) => r.metric.instance).sort();
    assert.deepEqual(instances, ['redis://redis-snapshots:6379', 'redis://redis:6379']);
    assert.equal((await query('sandpool_pool_max')).length, 2, 'both replicas report their pool');
  });

  it('drives load through nginx: chat, MCP, a full quota, too many requests in flight, refused tokens', { timeout: 420_000 }, async () => {
    // Chat, the seed flow, for a few users of two plans.
    for (const [i, plan] of ['free', 'basic', 'free'].entries()) {
      const sub = `mon-chat-${i}`;
      const socket = await connectUser(url, { token: await userToken(sub, plan) }, { uid: sub });
      sockets.push(socket);
      await nextEvent(socket, 'session');
      assert.match((await converse(socket, `write "hello ${i}" to /workspace/hello.txt`, 120_000)).contents[0] ?? '', /Successfully wrote/);
      assert.equal((await converse(socket, 'read /workspace/hello.txt', 120_000)).contents[0], `hello ${i}`);
      // Gone, the user's sandbox goes after SESSION_DISCONNECT_GRACE_MS.
      socket.close();
    }
    await allReleased();
    // MCP with the tiny plan: 5 calls, the 6th refused (80 % crossed at the 4th).
    const tiny = await mcp('mon-tiny', 'tiny');
    for (let i = 0; i < 5; i++) {
      await tiny.callTool({ name: 'list_directory', arguments: { path: '/workspace' } });
      await new Promise((r) => setTimeout(r, 100));
    }
    await assert.rejects(tiny.callTool({ name: 'list_directory', arguments: { path: '/workspace' } }), (err: { data?: { code?: string; plan?: string; window?: string } }) => {
      assert.equal(err.data?.code, 'QUOTA_EXCEEDED');
      assert.equal(err.data?.plan, 'tiny');
      assert.equal(err.data?.window, 'hour');
      return true;
    });
    await leave(tiny);
    await allReleased();
    const usage = await fetch(`${url}/me/usage`, { headers: { authorization: `Bearer ${await userToken('mon-tiny', 'tiny')}` } });
    assert.equal(((await usage.json()) as { windows: { hour: { used: number } } }).windows.hour.used, 5);
    // Six messages at once for a free user (maxInFlight 5): the sixth is refused TOO_MANY_REQUESTS; the five are denied.
    const busy = await connectUser(url, { token: await userToken('mon-busy') }, { uid: 'mon-busy' });
    sockets.push(busy);
    await nextEvent(busy, 'session');
    const acks = [];
    for (let i = 0; i < 6; i++) acks.push(await emitAck(busy, 'message', 'list files in /workspace'));
    assert.equal(acks[5]?.ok, false);
    assert.equal(acks[5]?.error?.code, 'TOO_MANY_REQUESTS');
    for (const ack of acks.slice(0, 5)) {
      const request = await nextEvent(busy, 'tool:request', (p) => p.requestId === ack.requestId, 60_000);
      await emitAck(busy, 'tool:approval', { callId: request.callId, approved: false });
    }
    // Refused credentials at the socket and at /mcp.
    await assert.rejects(connectUser(url, { token: await makeToken({ sub: 'mallory' }, { secret: 'not-the-stack-secret-but-long-enough' }) }, { uid: 'mallory' }), /UNAUTHORIZED/);
    const forged = await fetch(`${url}/mcp`, { method: 'POST', headers: { authorization: 'Bearer not-a-jwt', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(forged.status, 401);
    for (let i = 0; i < 10; i++) assert.equal((await fetch(`${url}/status`)).status, 200);
  });

  it('every dashboard panel\'s query returns data from the real Prometheus', { timeout: 240_000 }, async () => {
    const panels = (JSON.parse(readFileSync('ops/grafana/sandpool.json', 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> }).panels;
    const queries = panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
    let empty: string[] = [];
    // Rates need two scrapes after the load (15 s apart).
    await waitFor('every panel query answered with data', async () => {
      empty = [];
      for (const q of queries) if ((await query(q.expr)).length === 0) empty.push(`${q.panel}: ${q.expr}`);
      return empty.length === 0;
    }, 180_000, 10_000).catch(() => assert.fail(`queries without data:\n${empty.join('\n')}`));
    // And the numbers are the load's: the tiny plan's refusal and crossing, the busy user's refusal, the refused tokens.
    const sum = async (expr: string): Promise<number> => (await query(expr)).reduce((n, r) => n + Number(r.value[1]), 0);
    assert.equal(await sum('sum(sandpool_quota_calls_total{plan="tiny"})'), 5);
    assert.equal(await sum('sum(sandpool_rejections_total{code="QUOTA_EXCEEDED",plan="tiny"})'), 1);
    assert.equal(await sum('sum(sandpool_quota_warnings_total{plan="tiny",window="hour"})'), 1);
    assert.ok((await sum('sum(sandpool_rejections_total{code="TOO_MANY_REQUESTS",plan="free"})')) >= 1);
    assert.ok((await sum('sum(sandpool_auth_failures_total{edge="socket"})')) >= 1);
    assert.ok((await sum('sum(sandpool_auth_failures_total{edge="mcp"})')) >= 1);
    assert.ok((await sum('nginx_connections_accepted')) > 0);
    assert.ok((await sum('redis_memory_max_bytes')) > 0, 'maxmemory is set on both Redis');
  });

  it('forcing pool exhaustion fires SandpoolPoolExhausted, and Alertmanager delivers it to the webhook', { timeout: 420_000 }, async () => {
    // Users with tool calls take sandboxes (kept until SESSION_IDLE_TIMEOUT_MS) until no replica has one to spare.
    // The earlier users' parked sandboxes are room, not load: a new user's demand removes them (the alert's rule).
    let view = '';
    const exhausted = async (): Promise<boolean> => {
      const replicas = await clusterPools();
      view = replicas.map((r) => `${r.replica}: idle ${r.idle} active ${r.active} parked ${r.parked} total ${r.total} max ${r.maxPoolSize}`).join('; ');
      return replicas.length === 2 && replicas.every((r) => r.idle === 0 && r.total - r.parked >= r.maxPoolSize);
    };
    // Exhausted on three checks in a row, 1.5 s apart: a sandbox starting or being removed makes one check pass or fail alone.
    let hogs = 0;
    let inARow = 0;
    for (let round = 0; round < 60 && inARow < 3; round++) {
      if (await exhausted()) inARow++;
      else {
        inARow = 0;
        if (hogs < 30) {
          const client = await mcp(`mon-hog-${hogs++}`);
          // A user landing on a full replica waits (POOL_ACQUIRE_TIMEOUT_MS) and then fails: not awaited.
          void client.callTool({ name: 'list_directory', arguments: { path: '/workspace' } }).catch(() => undefined);
        }
      }
      await new Promise((r) => setTimeout(r, 1_500));
    }
    if (inARow < 3) {
      const logs = await compose(['logs', '--no-color', '--tail', '300', 'app'], 30_000).catch(() => '');
      const lines = logs.split('\n').filter((l) => /sandbox|MCP session|"level":(40|50)/.test(l)).slice(-40);
      assert.fail(`the pool of every replica is not exhausted after ${hogs} users: ${view}\n${lines.join('\n')}`);
    }
    const firing = await waitFor('SandpoolPoolExhausted firing in Prometheus', async () => {
      const alerts = await query('ALERTS{alertname="SandpoolPoolExhausted",alertstate="firing"}');
      return alerts.length > 0 ? alerts : false;
    }, 240_000, 5_000);
    assert.equal(firing[0]?.metric.severity, 'critical');
    const delivered = await waitFor('the alert at the webhook', async () => {
      const lines = (await compose(['logs', '--no-color', 'alert-webhook'], 30_000))
        .split('\n')
        .map((l) => l.slice(l.indexOf('|') + 1).trim())
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { alertname?: string; status?: string; annotations?: { runbook?: string } }];
          } catch {
            return [];
          }
        });
      return lines.find((l) => l.alertname === 'SandpoolPoolExhausted' && l.status === 'firing') ?? false;
    }, 120_000, 5_000);
    assert.match(delivered.annotations?.runbook ?? '', /Raise POOL_MAX_SIZE/);
  });

  it('promtool passes the deployed configuration: check config (with the real token file), check rules, test rules', { timeout: 120_000 }, async () => {
    const exec = (args: string[]): Promise<string> => compose(['exec', '-T', 'prometheus', 'promtool', ...args], 60_000);
    assert.match(await exec(['check', 'config', '/etc/prometheus/prometheus.yml']), /SUCCESS: 1 rule files found/);
    assert.match(await exec(['check', 'rules', '/etc/prometheus/alerts.yml']), /SUCCESS: 20 rules found/);
    assert.match(await exec(['test', 'rules', '/etc/prometheus/alerts.test.yml']), /SUCCESS/);
  });

  it('down removes the whole stack: no container, and no sandbox of its replicas', { timeout: 180_000 }, async () => {
    for (const s of sockets) s.close();
    for (const c of clients) await c.close().catch(() => undefined);
    for (const h of await containerHosts([`com.docker.compose.project=${project}`, 'com.docker.compose.service=app'])) appHosts.add(h);
    await compose(['down', '-v', '--timeout', '40']);
    down = true;
    assert.deepEqual(await containerHosts([`com.docker.compose.project=${project}`]), []);
    assert.deepEqual(await sandboxesOwnedBy(appHosts), [], 'sandboxes of the stack\'s replicas left behind');
  });
});
