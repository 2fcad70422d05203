/**
 * npm run bench:mcp [-- --users N] [--calls C] [--rounds R] [--waves W] [--protocol 2026-07-28|2025-11-25]
 *                      [--client sdk|raw] [--workspace-store fs|none] [--cpu-prof] [--json] [--save | --out FILE]
 *
 * The gateway's overhead as a ratio: in one run, the same tool call
 * (`list_directory /workspace`, read-only, in a sandbox the user holds) made
 * three ways, against one replica this bench starts (with nginx in front):
 *
 *   (a) direct: from inside the replica's process, with the stdio MCP client
 *       it holds for the user's sandbox (no HTTP, no gateway);
 *   (b) replica: an MCP client (the v2 SDK, --protocol, default 2026-07-28)
 *       over Streamable HTTP straight to the replica's /mcp;
 *   (c) nginx: the same client through nginx (nginx/sandpool.conf.template);
 *   (h) the HTTP floor: a bare node:http server in the replica's process
 *       (no auth, router, MCP or limits) running the direct call per POST,
 *       from a keep-alive node:http client. What (b) costs beyond (h) is the
 *       gateway's own; what (h) costs beyond (a) is any HTTP hop's.
 *
 * N users (default 1) at the same time; each first makes its first call as a
 * new user (a warm spare, the fs workspace store: what a new user waits for),
 * then writes a small file, then R rounds (default 4) of C/R calls each way
 * (default C = 400), the order of the ways turning each round so drift in the
 * machine's load falls on all three. Reports p50/p95/p99 of each way, the
 * ratios b/a, c/a, h/a and b/h, the replica's CPU per call of each way (its
 * process.cpuUsage over that way's calls / their number), the first call
 * against the held call, and the goals (at one user: b/a p50 <= 1.3, replica
 * CPU <= 1.0 ms per held call, first-call p95 <= 3x held p95). --waves W
 * repeats the first calls with W groups of N new users for more samples.
 * --client raw (2026-07-28 only) replaces the SDK client in (b) and (c) with
 * a minimal one (node:http, keep-alive, the same request bytes): what is
 * left is the gateway's own overhead, without the SDK client's (which the
 * JSON reports as the bench process's CPU per call).
 * --cpu-prof runs the replica under `node --cpu-prof` and summarizes the
 * profile over the held calls through the gateway (b and c): the top
 * functions by self time and the CPU by where the code lives.
 * Writes the JSON to results/bench/mcp.json (git-ignored), with --save to
 * the tracked bench/results/mcp.json, or to --out FILE (a --cpu-prof
 * profile goes next to it, as .cpuprofile).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { SignJWT } from 'jose';
import { signOperatorToken } from '../src/auth/operator-token.js';
import { percentilesOf, type Percentiles } from '../src/util/async.js';
import { freePort } from '../src/util/free-port.js';
import type { BenchReply, BenchRequest } from './lib/bench-mcp-replica.js';
import { summarizeCpuProfile, type CpuProfileSummary } from './lib/cpu-profile.js';
import { writeNginxConf } from './lib/nginx-conf.js';
import { machineTicks } from './lib/proc-stat.js';
import { benchResultFileOrExit, shownPath, writeResultFile } from './lib/results-path.js';
import { httpOk, spawnProcess, type StartedProcess } from './lib/start-process.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1' },
    calls: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '4' },
    waves: { type: 'string', default: '20' },
    protocol: { type: 'string', default: '2026-07-28' },
    client: { type: 'string', default: 'sdk' },
    'workspace-store': { type: 'string', default: 'fs' },
    'cpu-prof': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    save: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const users = Number(values.users);
const rounds = Number(values.rounds);
const callsPerRound = Math.ceil(Number(values.calls) / rounds);
const waves = Number(values.waves);
const { protocol } = values;
const workspaceStore = values['workspace-store'];
const clientKind = values.client;
if (![users, rounds, callsPerRound, waves].every((n) => Number.isInteger(n) && n >= 1) || !['fs', 'none'].includes(workspaceStore) || !['2026-07-28', '2025-11-25'].includes(protocol) || !['sdk', 'raw'].includes(clientKind) || (clientKind === 'raw' && protocol !== '2026-07-28')) {
  process.stderr.write('bench:mcp: --users, --calls, --rounds and --waves take whole numbers >= 1, --workspace-store fs or none, --protocol 2026-07-28 or 2025-11-25, --client sdk or raw (raw: 2026-07-28 only)\n');
  process.exit(2);
}
const outFile = benchResultFileOrExit('bench:mcp', 'mcp.json', values);
const say = (line: string): void => void process.stderr.write(`bench:mcp: ${line}\n`);
const TOOL = 'list_directory';
const ARGS = { path: '/workspace' };

// --- the replica (forked: its IPC channel runs the direct calls) and nginx ---

const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-bench-mcp-'));
// Users present signed tokens, as in production: the gateway verifies one on every request.
const authSecret = randomBytes(32).toString('hex');
const operatorSecret = randomBytes(32).toString('hex');
const operator = { authorization: `Bearer ${await signOperatorToken({ secret: operatorSecret, ttlS: 3600 })}` };
async function tokenOf(user: string): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: user, iat: nowS, exp: nowS + 3600 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(authSecret));
}
const profileDir = path.join(dir, 'cpu-prof');
let replica: ChildProcess | undefined;
let nginx: StartedProcess | undefined;
const replies = new Map<number, (reply: BenchReply) => void>();
let nextId = 1;

function ask<T extends BenchReply['op']>(request: Omit<Extract<BenchRequest, { op: T }>, 'id'>): Promise<Extract<BenchReply, { op: T }>> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    replies.set(id, (reply) => (reply.op === 'error' ? reject(new Error(reply.message)) : resolve(reply as Extract<BenchReply, { op: T }>)));
    replica?.send({ ...request, id });
  });
}

async function startReplica(): Promise<string> {
  const port = await freePort();
  mkdirSync(path.join(dir, 'workspaces'));
  replica = fork('dist/scripts/lib/bench-mcp-replica.js', [], {
    execArgv: values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    env: {
      ...process.env,
      AUTH_SECRET: authSecret,
      OPERATOR_SECRET: operatorSecret,
      PORT: String(port),
      HOST: '127.0.0.1',
      REPLICA_ID: `bench-mcp-${process.pid}`,
      POOL_MIN_SIZE: String(users + 2),
      POOL_MAX_SIZE: String(users * 2 + 4),
      LOG_LEVEL: 'warn',
      WORKSPACE_STORE: workspaceStore,
      WORKSPACE_DIR: path.join(dir, 'workspaces'),
      // The bench's thousands of calls would pass the free plan's 100 an hour; enterprise's are counted but unlimited.
      DEFAULT_PLAN: 'enterprise',
      // A wave's users leave so that the next finds the pool as they did: parked, their sandboxes would fill the slots and be evicted under the next wave's first calls.
      PARK_MAX: '0',
    },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const listening = new Promise<string>((resolve, reject) => {
    replica?.on('message', (reply: BenchReply) => {
      if (reply.op === 'listening') return resolve(reply.url);
      replies.get(reply.id)?.(reply);
      replies.delete(reply.id);
    });
    replica?.once('exit', (code, signal) => reject(new Error(`the replica exited (${signal ?? code}) before it listened`)));
  });
  const url = await listening;
  const ready = httpOk(`${url}/ready`);
  for (const deadline = Date.now() + 180_000; !(await ready()); ) {
    if (Date.now() > deadline) throw new Error('the replica was not ready in 180 s');
    await new Promise((r) => setTimeout(r, 250));
  }
  return url;
}

async function startNginx(replicaUrl: string): Promise<string> {
  const port = await freePort();
  // The bench's clients all come from one address: nginx's per-address rate limit is lifted, not measured.
  const conf = writeNginxConf({ dir: path.join(dir, 'nginx'), listen: `127.0.0.1:${port}`, upstreams: [new URL(replicaUrl).host], apiRate: '100000r/s', connPerIp: '10000', accessLog: false });
  nginx = spawnProcess({ command: 'nginx', args: ['-c', conf, '-p', path.join(dir, 'nginx')], stdout: 'ignore', stderr: 'inherit' });
  const url = `http://127.0.0.1:${port}`;
  await nginx.waitReady(httpOk(`${url}/health`), 15_000, 200);
  return url;
}

async function stopReplica(): Promise<void> {
  const child = replica;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(killer);
}

// --- the clients ---

const offer = protocol === '2026-07-28' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {};
const userId = (n: number): string => `bench-mcp-${process.pid}-${n}`;

/** What the bench needs of an MCP client. */
interface BenchClient {
  callTool(params: { name: string; arguments: Record<string, unknown> }): Promise<{ isError?: boolean; content?: unknown }>;
  /** Ends it (a 2025-11-25 session with a DELETE: it holds the user's sandbox until it ends). */
  end(): Promise<void>;
}

async function connect(base: string, user: string): Promise<BenchClient> {
  const token = await tokenOf(user);
  if (clientKind === 'raw') return rawClient(base, token);
  const client = new Client({ name: 'bench-mcp', version: '1.0.0' }, offer);
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  if (client.getNegotiatedProtocolVersion() !== protocol) throw new Error(`negotiated ${client.getNegotiatedProtocolVersion()}, not ${protocol}`);
  return {
    callTool: (params) => client.callTool(params),
    end: async () => {
      if (transport.sessionId) await transport.terminateSession();
      await client.close();
    },
  };
}

/** A 2026-07-28 client of the fewest moving parts: one keep-alive connection, the request the SDK client sends, its JSON answer parsed. */
function rawClient(base: string, token: string): BenchClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(`${base}/mcp`);
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'bench-mcp-raw', version: '1.0.0' }, 'io.modelcontextprotocol/clientCapabilities': {} };
  let id = 0;
  return {
    callTool: ({ name, arguments: args }) =>
      new Promise((resolve, reject) => {
        const body = JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: args, _meta: meta } });
        const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': name };
        const req = http.request(url, { method: 'POST', agent, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            try {
              const answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { result?: { isError?: boolean }; error?: { message: string } };
              if (answer.error || !answer.result) reject(new Error(`${name}: ${answer.error?.message ?? `HTTP ${res.statusCode}`}`));
              else resolve(answer.result);
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          });
        });
        req.on('error', reject);
        req.end(body);
      }),
    end: async () => agent.destroy(),
  };
}

/** The floor's client: one keep-alive connection, a POST per call, the JSON answer parsed. */
function floorClient(base: string, user: string): BenchClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(`${base}/${encodeURIComponent(user)}`);
  return {
    callTool: () =>
      new Promise((resolve, reject) => {
        const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            try {
              if (res.statusCode !== 200) throw new Error(`the floor answered HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`);
              resolve((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { result: { isError?: boolean } }).result);
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          });
        });
        req.on('error', reject);
        req.end('{}');
      }),
    end: async () => agent.destroy(),
  };
}

async function timedCalls(client: BenchClient, n: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const result = await client.callTool({ name: TOOL, arguments: ARGS });
    ms.push(performance.now() - started);
    if (result.isError) throw new Error(`${TOOL} failed: ${JSON.stringify(result.content).slice(0, 200)}`);
  }
  return ms;
}

interface PoolView {
  idle: number;
  active: number;
  creating: number;
  removing: number;
  spareTarget: number;
  maxPoolSize: number;
}

/** Until the pool holds `idle` spares and nothing starts or is being removed: a wave's clean-up must not land on the next one's calls. */
async function waitForQuietPool(url: string, settled: (pool: PoolView) => boolean): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const pool = (await (await fetch(`${url}/stats/pool`, { headers: operator, signal: AbortSignal.timeout(5_000) })).json()) as PoolView;
    if (settled(pool) && pool.creating === 0 && pool.removing === 0) return;
    if (Date.now() > deadline) throw new Error(`the pool did not settle in 180 s: ${JSON.stringify(pool)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const cpuMs = async (): Promise<number> => {
  const { userUs, systemUs } = await ask<'cpu'>({ op: 'cpu' });
  return (userUs + systemUs) / 1000;
};

type Way = 'direct' | 'floor' | 'replica' | 'nginx';

function summary(xs: number[]): (Percentiles & { n: number }) | null {
  return xs.length === 0 ? null : { ...percentilesOf(xs), n: xs.length };
}
const round2 = (x: number): number => Math.round(x * 100) / 100;
const ratio = (b: number | null | undefined, a: number | null | undefined): number | null => (b == null || a == null || a === 0 ? null : round2(b / a));

try {
  const replicaUrl = await startReplica();
  const nginxUrl = await startNginx(replicaUrl);
  say(`replica ${replicaUrl}, nginx ${nginxUrl}; ${users} user(s), protocol ${protocol}, workspace store ${workspaceStore}`);
  const ticksBefore = machineTicks();

  // First calls of new users: W waves of N, each once the pool holds a spare per user again and is quiet.
  const firstCallMs: number[] = [];
  const errors: string[] = [];
  let held: Array<{ user: string; atReplica: BenchClient; atNginx: BenchClient; atFloor: BenchClient }> = [];
  const floorUrl = (await ask<'floor'>({ op: 'floor', tool: TOOL, args: ARGS })).url;
  for (let wave = 0; wave < waves; wave++) {
    await waitForQuietPool(replicaUrl, (pool) => pool.active === 0 && pool.idle >= users);
    const group = await Promise.all(
      Array.from({ length: users }, async (_, i) => {
        const user = userId(wave * users + i);
        const atReplica = await connect(replicaUrl, user);
        const started = performance.now();
        await atReplica.callTool({ name: TOOL, arguments: ARGS });
        firstCallMs.push(performance.now() - started);
        return { user, atReplica };
      }),
    );
    // The last wave's users stay for the held calls; the others leave (their sandboxes go).
    if (wave < waves - 1) {
      await Promise.all(group.map((g) => g.atReplica.end()));
      // Gone at once, as after an idle timeout: the next wave finds the pool as this one did.
      await ask<'release'>({ op: 'release', users: group.map((g) => g.user) });
      continue;
    }
    held = await Promise.all(
      group.map(async (g) => {
        await g.atReplica.callTool({ name: 'write_file', arguments: { path: '/workspace/bench.txt', content: `small file of ${g.user}` } });
        return { ...g, atNginx: await connect(nginxUrl, g.user), atFloor: floorClient(floorUrl, g.user) };
      }),
    );
  }
  say(`${firstCallMs.length} first calls done; held calls: ${rounds} rounds of ${callsPerRound} per user each way`);
  // Spares replaced and quiet before the held calls: they measure a held sandbox, not starts.
  await waitForQuietPool(replicaUrl, (pool) => pool.idle >= Math.min(pool.spareTarget, pool.maxPoolSize - pool.active));

  const ms: Record<Way, number[]> = { direct: [], floor: [], replica: [], nginx: [] };
  const cpu: Record<Way, { ms: number; systemMs: number; clientMs: number; calls: number }> = {
    direct: { ms: 0, systemMs: 0, clientMs: 0, calls: 0 },
    floor: { ms: 0, systemMs: 0, clientMs: 0, calls: 0 },
    replica: { ms: 0, systemMs: 0, clientMs: 0, calls: 0 },
    nginx: { ms: 0, systemMs: 0, clientMs: 0, calls: 0 },
  };
  const gatewayWindows: Array<[number, number]> = [];
  const runWay = async (way: Way): Promise<void> => {
    const before = await ask<'cpu'>({ op: 'cpu' });
    const clientBefore = process.cpuUsage();
    let samples: number[][];
    if (way === 'direct') {
      const reply = await ask<'direct'>({ op: 'direct', users: held.map((h) => h.user), calls: callsPerRound, tool: TOOL, args: ARGS });
      errors.push(...reply.errors);
      samples = reply.ms;
    } else {
      samples = await Promise.all(held.map((h) => timedCalls(way === 'replica' ? h.atReplica : way === 'nginx' ? h.atNginx : h.atFloor, callsPerRound)));
    }
    const client = process.cpuUsage(clientBefore);
    const after = await ask<'cpu'>({ op: 'cpu' });
    cpu[way].clientMs += (client.user + client.system) / 1000;
    if (way === 'replica' || way === 'nginx') gatewayWindows.push([before.monotonicUs, after.monotonicUs]);
    ms[way].push(...samples.flat());
    cpu[way].ms += (after.userUs + after.systemUs - before.userUs - before.systemUs) / 1000;
    cpu[way].systemMs += (after.systemUs - before.systemUs) / 1000;
    cpu[way].calls += samples.flat().length;
  };
  const order: Way[] = ['direct', 'floor', 'replica', 'nginx'];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < order.length; k++) await runWay(order[(k + r) % order.length] as Way);
  }
  const ticksAfter = machineTicks();
  await Promise.all(held.flatMap((h) => [h.atReplica.end(), h.atNginx.end(), h.atFloor.end()]));

  const stats = Object.fromEntries(
    (Object.keys(ms) as Way[]).map((way) => [
      way,
      {
        ...summary(ms[way]),
        cpuMsPerCall: cpu[way].calls ? Math.round((cpu[way].ms / cpu[way].calls) * 1000) / 1000 : null,
        // The kernel's part of it (syscalls: sockets, pipes, epoll).
        cpuSystemMsPerCall: cpu[way].calls ? Math.round((cpu[way].systemMs / cpu[way].calls) * 1000) / 1000 : null,
        // The bench's own process: the MCP client (b, c); next to nothing for (a), run in the replica.
        clientCpuMsPerCall: cpu[way].calls ? Math.round((cpu[way].clientMs / cpu[way].calls) * 1000) / 1000 : null,
      },
    ]),
  ) as Record<Way, (Percentiles & { n: number; cpuMsPerCall: number | null; cpuSystemMsPerCall: number | null; clientCpuMsPerCall: number | null }) | { cpuMsPerCall: null; cpuSystemMsPerCall: null; clientCpuMsPerCall: null }>;
  const p = (way: Way, q: 'p50' | 'p95' | 'p99'): number | null => ('p50' in stats[way] ? (stats[way] as Percentiles)[q] : null);
  const first = summary(firstCallMs);
  const share = (part: number): number => Math.round((part / Math.max(1, ticksAfter.all - ticksBefore.all)) * 1000) / 1000;
  const ratios = {
    replicaOverDirect: { p50: ratio(p('replica', 'p50'), p('direct', 'p50')), p95: ratio(p('replica', 'p95'), p('direct', 'p95')), p99: ratio(p('replica', 'p99'), p('direct', 'p99')) },
    nginxOverDirect: { p50: ratio(p('nginx', 'p50'), p('direct', 'p50')), p95: ratio(p('nginx', 'p95'), p('direct', 'p95')), p99: ratio(p('nginx', 'p99'), p('direct', 'p99')) },
    floorOverDirect: { p50: ratio(p('floor', 'p50'), p('direct', 'p50')), p95: ratio(p('floor', 'p95'), p('direct', 'p95')), p99: ratio(p('floor', 'p99'), p('direct', 'p99')) },
    replicaOverFloor: { p50: ratio(p('replica', 'p50'), p('floor', 'p50')), p95: ratio(p('replica', 'p95'), p('floor', 'p95')), p99: ratio(p('replica', 'p99'), p('floor', 'p99')) },
    firstCallOverHeld: { p95: ratio(first?.p95, p('replica', 'p95')) },
  };
  const replicaCpu = (stats.replica as { cpuMsPerCall: number | null }).cpuMsPerCall;
  const goals = {
    note: users === 1 ? 'the goals are set at one user' : `the goals are set at one user; this run had ${users}`,
    replicaOverDirectP50: { goal: 1.3, value: ratios.replicaOverDirect.p50, met: ratios.replicaOverDirect.p50 !== null && ratios.replicaOverDirect.p50 <= 1.3 },
    replicaCpuMsPerHeldCall: { goal: 1.0, value: replicaCpu, met: replicaCpu !== null && replicaCpu <= 1.0 },
    firstCallP95OverHeldP95: { goal: 3, value: ratios.firstCallOverHeld.p95, met: ratios.firstCallOverHeld.p95 !== null && ratios.firstCallOverHeld.p95 <= 3 },
  };

  await stopReplica();
  let cpuProfile: (CpuProfileSummary & { window: string; file: string }) | undefined;
  if (values['cpu-prof']) {
    const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) {
      // The whole profile, next to the JSON (git-ignored): for a flame graph in Chrome's DevTools.
      const kept = outFile.replace(/\.json$/, '') + '.cpuprofile';
      mkdirSync(path.dirname(kept), { recursive: true });
      copyFileSync(path.join(profileDir, file), kept);
      cpuProfile = { window: 'the held calls through the gateway (ways b and c)', file: shownPath(kept), ...summarizeCpuProfile(kept, { windows: gatewayWindows, top: 20 }) };
    }
    else say('no CPU profile was written');
  }

  const result = {
    tool: `${TOOL} ${ARGS.path} (read-only: no snapshot after it)`,
    protocol,
    client: clientKind === 'raw' ? 'raw (node:http, keep-alive, the request bytes of the SDK client)' : 'the v2 SDK client (@modelcontextprotocol/client)',
    users,
    callsPerUserEachWay: callsPerRound * rounds,
    rounds,
    firstCallWaves: waves,
    workspaceStore,
    ways: {
      direct: 'a: in the replica process, its stdio MCP client of the user\'s sandbox',
      replica: 'b: MCP client -> the replica\'s /mcp',
      nginx: 'c: MCP client -> nginx -> the replica\'s /mcp',
      floor: 'h: node:http client -> a bare node:http server in the replica process running (a): the floor of any HTTP front',
    },
    direct: stats.direct,
    floor: stats.floor,
    replica: stats.replica,
    nginx: stats.nginx,
    ratios,
    firstCallMs: first,
    goals,
    errors: errors.length,
    errorSamples: errors.slice(0, 5),
    ...(cpuProfile ? { cpuProfile } : {}),
    environment: {
      date: new Date().toISOString(),
      cpus: os.cpus().length,
      node: process.version,
      // Over the whole run, all cores: how busy the machine was, and how much of it the hypervisor gave to others (steal): runs differ by it.
      machineBusyShare: share(ticksAfter.busy - ticksBefore.busy),
      machineStealShare: share(ticksAfter.steal - ticksBefore.steal),
    },
  };
  writeResultFile(outFile, result);
  if (values.json) {
    // stdout stays one JSON object; where it went is said on stderr.
    process.stdout.write(`${JSON.stringify(result)}\n`);
    say(`JSON written to ${shownPath(outFile)}`);
  } else {
    const row = (name: string, way: Way): string => {
      const s = stats[way];
      return 'p50' in s ? `| ${name} | ${s.p50} | ${s.p95} | ${s.p99} | ${s.n} | ${s.cpuMsPerCall ?? '–'} (${s.cpuSystemMsPerCall ?? '–'}) | ${way === 'direct' ? '–' : (s.clientCpuMsPerCall ?? '–')} |` : `| ${name} | – | – | – | 0 | – | – |`;
    };
    const lines = [
      `MCP gateway overhead (${TOOL}, ${protocol}, ${clientKind} client, ${users} user(s), ${os.cpus().length} cores)`,
      '',
      '| way | p50 ms | p95 ms | p99 ms | n | replica CPU ms/call (of which kernel) | client CPU ms/call |',
      '|---|---|---|---|---|---|---|',
      row('(a) direct, in the replica', 'direct'),
      row('(b) /mcp on the replica', 'replica'),
      row('(c) /mcp through nginx', 'nginx'),
      row('(h) bare HTTP floor', 'floor'),
      '',
      `b/a: p50 ${ratios.replicaOverDirect.p50}, p95 ${ratios.replicaOverDirect.p95}, p99 ${ratios.replicaOverDirect.p99}; c/a: p50 ${ratios.nginxOverDirect.p50}, p95 ${ratios.nginxOverDirect.p95}, p99 ${ratios.nginxOverDirect.p99}`,
      `h/a (any HTTP hop): p50 ${ratios.floorOverDirect.p50}, p95 ${ratios.floorOverDirect.p95}; b/h (the gateway's own): p50 ${ratios.replicaOverFloor.p50}, p95 ${ratios.replicaOverFloor.p95}, p99 ${ratios.replicaOverFloor.p99}`,
      `first call of a new user (warm spare, ${workspaceStore} store): ${first ? `p50 ${first.p50}, p95 ${first.p95}, p99 ${first.p99} ms (n ${first.n})` : '–'}; p95 / held p95 = ${ratios.firstCallOverHeld.p95}`,
      `goals: b/a p50 <= 1.3: ${goals.replicaOverDirectP50.met ? 'met' : 'NOT met'}; CPU <= 1.0 ms/held call: ${goals.replicaCpuMsPerHeldCall.met ? 'met' : 'NOT met'}; first p95 <= 3x held p95: ${goals.firstCallP95OverHeldP95.met ? 'met' : 'NOT met'}`,
      ...(cpuProfile ? ['', `CPU profile of the replica over ${cpuProfile.window}: ${cpuProfile.busyMs} ms busy`, ...cpuProfile.byOrigin.slice(0, 10).map((o) => `  ${(o.share * 100).toFixed(1)}%  ${o.name}`), '  top functions (self time):', ...cpuProfile.topFunctions.slice(0, 15).map((f) => `  ${(f.share * 100).toFixed(1)}%  ${f.name}`)] : []),
      '',
      `errors: ${result.errors}; machine busy ${(result.environment.machineBusyShare * 100).toFixed(1)}%, of which stolen by the hypervisor ${(result.environment.machineStealShare * 100).toFixed(1)}%`,
      `JSON written to ${shownPath(outFile)}`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
  }
} finally {
  await stopReplica();
  await nginx?.stop('SIGQUIT', 10_000);
  rmSync(dir, { recursive: true, force: true });
}
