/**
 * npm run bench:resume [-- --users N] [--think-ms MS] [--json] [--save | --out FILE]
 *
 * The same returning users served three ways in one run, on one replica
 * (in this process, Docker sandboxes, an fs snapshot store in a temp dir):
 *
 * - resumed: each user wrote a file and left; their sandbox was parked
 *   (PARK_MAX = N); they come back and read it: unpause + MCP ping + the call.
 * - restored: the same users come back to a replica with parking off
 *   (PARK_MAX=0, same snapshot store): a warm spare plus their snapshot
 *   restored, as before parking existed.
 * - newUser: users never seen before make their first call (a warm spare,
 *   nothing to restore).
 *
 * Each user connects over Socket.IO, sends "read /workspace/f.txt", approves
 * the tool call and leaves; the latency is from the message to its first
 * `tool:result`. The message goes --think-ms after the socket connected
 * (default 0: at once, the worst case for a resume, which starts when the
 * user's socket opens and so overlaps the user's typing in real use). Users go one at a time, each once the pool has no start or
 * removal in flight: the latency is the path's own, not a queue's. CPU-s per
 * user: the whole machine's busy time (/proc/stat) over a mode's users, from
 * the first one's arrival until the pool settled after the last one left (a
 * spare's refill, a removal, a park: everything that user cost), less the
 * machine's busy rate measured idle just before, divided by N. Also reports
 * the memory of a parked sandbox (its cgroup's usage: `docker stats`), and
 * the engine's own floor: pause + unpause of the parked sandboxes straight
 * through the engine's API (dockerode, no sandpool in between), its latency
 * and its CPU-s per pair, measured the same way. A resume can be no faster
 * than its unpause, and cost no less than the pair.
 *
 * Prints the JSON with --json; writes it to results/bench/resume.json
 * (git-ignored), with --save to the tracked bench/results/resume.json, or to
 * --out FILE.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { io as connectIo, type Socket } from 'socket.io-client';
import { createSandpool, type Sandpool } from '../src/app/create-sandpool.js';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/logger.js';
import { LABELS } from '../src/runtime/types.js';
import { percentilesOf, sleep, type Percentiles } from '../src/util/async.js';
import { clockTicksPerSecond, machineTicks } from './lib/proc-stat.js';
import { benchResultFileOrExit, shownPath, writeResultFile } from './lib/results-path.js';

const execFileAsync = promisify(execFile);
const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '20' },
    'think-ms': { type: 'string', default: '0' },
    json: { type: 'boolean', default: false },
    save: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const users = Number(values.users);
if (!Number.isInteger(users) || users < 1 || users > 200) {
  process.stderr.write('bench:resume: --users takes a whole number from 1 to 200\n');
  process.exit(2);
}
const thinkMs = Number(values['think-ms']);
if (!Number.isInteger(thinkMs) || thinkMs < 0 || thinkMs > 60_000) {
  process.stderr.write('bench:resume: --think-ms takes a whole number of ms from 0 to 60000\n');
  process.exit(2);
}
const outFile = benchResultFileOrExit('bench:resume', 'resume.json', values);
const say = (line: string): void => void process.stderr.write(`${line}\n`);
const ticksPerSecond = clockTicksPerSecond();
const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-bench-resume-'));
const run = `${process.pid}`;

function configFor(parkMax: number): ReturnType<typeof loadConfig> {
  return loadConfig({
    ...process.env,
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    REPLICA_ID: `bench-resume-${run}-${parkMax > 0 ? 'park' : 'nopark'}`,
    POOL_MIN_SIZE: '2',
    POOL_MAX_SIZE: String(users + 4),
    POOL_REFILL_DELAY_MS: '0',
    PARK_MAX: String(parkMax),
    PARK_TTL_S: '3600',
    SESSION_DISCONNECT_GRACE_MS: '50',
    WORKSPACE_STORE: 'fs',
    WORKSPACE_DIR: dir,
  });
}

interface PoolView {
  creating: number;
  removing: number;
  parked: number;
  idle: number;
  minPoolSize: number;
  active: number;
}

/** The pool has nothing in flight: no start, no removal, its spares back, nobody leased. */
async function settled(app: Sandpool, parked: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = app.pool.stats() as PoolView;
    if (s.creating === 0 && s.removing === 0 && s.active === 0 && s.idle >= s.minPoolSize && s.parked === parked) return;
    if (Date.now() > deadline) throw new Error(`the pool did not settle: ${JSON.stringify(s)}`);
    await sleep(20);
  }
}

/** One user's visit: connect, one read with its approval, leave. Resolves with ms from the message to the first tool:result and its content. */
async function visit(app: Sandpool, userId: string, text: string): Promise<{ ms: number; content: string }> {
  const socket: Socket = connectIo(app.url, { auth: { userId }, query: { uid: userId }, transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    if (thinkMs > 0) await sleep(thinkMs);
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${userId}: no tool:result within 60 s`)), 60_000);
      let started = 0;
      socket.on('tool:request', (req: { callId: string }) => socket.emit('tool:approval', { callId: req.callId, approved: true }, () => undefined));
      socket.once('tool:result', (res: { content: string }) => {
        clearTimeout(timer);
        resolve({ ms: performance.now() - started, content: res.content });
      });
      socket.once('request:error', (e: { error: { code: string; message: string } }) => {
        clearTimeout(timer);
        reject(new Error(`${userId}: ${e.error.code}: ${e.error.message}`));
      });
      started = performance.now();
      socket.emit('message', text, (ack: { ok: boolean }) => {
        if (!ack.ok) reject(new Error(`${userId}: message refused: ${JSON.stringify(ack)}`));
      });
    });
  } finally {
    socket.close();
  }
}

/**
 * `work`'s cost to the whole machine: its busy CPU-seconds (/proc/stat) less the idle rate measured over 3 s
 * just before it (what the machine did besides), the raw figure and that baseline too.
 */
async function machineCpu<T>(work: () => Promise<T>): Promise<{ result: T; busy: number; raw: number; baseline: number }> {
  const baseline = await idleRate(3_000);
  const cpu0 = machineTicks().busy;
  const t0 = performance.now();
  const result = await work();
  const raw = (machineTicks().busy - cpu0) / ticksPerSecond;
  return { result, busy: raw - baseline * ((performance.now() - t0) / 1000), raw, baseline };
}

/** Busy CPU-seconds of the whole machine per second, measured over `ms` of doing nothing here. */
async function idleRate(ms: number): Promise<number> {
  const a = machineTicks().busy;
  const t = performance.now();
  await sleep(ms);
  return (machineTicks().busy - a) / ticksPerSecond / ((performance.now() - t) / 1000);
}

interface ModeResult {
  latencyMs: Percentiles;
  cpuSecondsPerUser: number;
  /** Before the idle baseline is taken off, and the baseline itself (CPU-s per second): what the machine did besides. */
  rawCpuSecondsPerUser: number;
  idleBaselineCpuPerSecond: number;
  samples: number;
}

/** The users visit one after another, each once the pool settled; CPU from the first arrival to the last settle, less the idle rate. */
async function mode(name: string, app: Sandpool, ids: string[], expect: (id: string, content: string) => void, parkedAfter: (i: number) => number): Promise<ModeResult> {
  const ms: number[] = [];
  const { busy, raw, baseline } = await machineCpu(async () => {
    for (const [i, id] of ids.entries()) {
      const { ms: took, content } = await visit(app, id, 'read /workspace/f.txt');
      expect(id, content);
      ms.push(took);
      await settled(app, parkedAfter(i));
    }
  });
  const per = (n: number): number => Math.round((n / ids.length) * 1000) / 1000;
  const result = {
    latencyMs: percentilesOf(ms),
    cpuSecondsPerUser: per(busy),
    rawCpuSecondsPerUser: per(raw),
    idleBaselineCpuPerSecond: Math.round(baseline * 1000) / 1000,
    samples: ids.length,
  };
  say(`${name}: p50 ${result.latencyMs.p50} ms, p95 ${result.latencyMs.p95} ms, p99 ${result.latencyMs.p99} ms; ${result.cpuSecondsPerUser} CPU-s per user (idle baseline ${baseline.toFixed(3)} CPU-s/s)`);
  return result;
}

/** Memory of each parked sandbox (its cgroup's usage, from `docker stats`), MiB. */
async function parkedMemoryMiB(app: Sandpool): Promise<Percentiles> {
  const { stdout } = await execFileAsync('docker', ['ps', '-q', '--no-trunc', '--filter', `label=${LABELS.replica}=${app.config.server.replicaId}`, '--filter', 'status=paused']);
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return percentilesOf([]);
  const stats = await execFileAsync('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', ...ids]);
  const mib = stats.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [used = ''] = line.split('/');
      const m = /([\d.]+)\s*([KMG]i?B)/.exec(used.trim());
      if (!m) return Number.NaN;
      const unit = { KiB: 1 / 1024, KB: 1 / 1024, MiB: 1, MB: 1, GiB: 1024, GB: 1024 }[m[2] ?? 'MiB'] ?? 1;
      return Number(m[1]) * unit;
    })
    .filter((n) => Number.isFinite(n));
  return percentilesOf(mib);
}

interface EngineFloor {
  unpauseMs: Percentiles;
  pauseMs: Percentiles;
  cpuSecondsPerPair: number;
  pairs: number;
}

/** Pause + unpause pairs straight through the engine's API on the parked (paused) sandboxes: each is unpaused, then paused again. */
async function engineFloor(app: Sandpool): Promise<EngineFloor> {
  const docker = new Docker({ socketPath: app.config.docker.socketPath });
  const paused = await docker.listContainers({ filters: { label: [`${LABELS.replica}=${app.config.server.replicaId}`], status: ['paused'] } });
  if (paused.length === 0) throw new Error('no parked sandbox to measure the engine on');
  const unpauseMs: number[] = [];
  const pauseMs: number[] = [];
  const { busy } = await machineCpu(async () => {
    for (const info of paused) {
      const container = docker.getContainer(info.Id);
      let t = performance.now();
      await container.unpause();
      unpauseMs.push(performance.now() - t);
      t = performance.now();
      await container.pause();
      pauseMs.push(performance.now() - t);
    }
  });
  const result = { unpauseMs: percentilesOf(unpauseMs), pauseMs: percentilesOf(pauseMs), cpuSecondsPerPair: Math.round((busy / paused.length) * 1000) / 1000, pairs: paused.length };
  say(`engine floor: unpause p50 ${result.unpauseMs.p50} ms, p95 ${result.unpauseMs.p95} ms; pause p50 ${result.pauseMs.p50} ms; ${result.cpuSecondsPerPair} CPU-s per pause + unpause`);
  return result;
}

const round = (n: number | null): number | null => (n === null ? null : Math.round(n * 100) / 100);
const returning = Array.from({ length: users }, (_, i) => `resume-${run}-${i}`);
const newcomers = Array.from({ length: users }, (_, i) => `new-${run}-${i}`);
const logger = createLogger({ level: 'warn' });
let app: Sandpool | undefined;

try {
  // Parking on: every returning user writes their file and leaves (parked), then comes back.
  app = await createSandpool(configFor(users), { logger, warmTimeoutMs: 60_000 });
  say(`bench:resume: ${users} returning users; replica ${app.config.server.replicaId}`);
  await settled(app, 0);
  for (const [i, id] of returning.entries()) {
    const { content } = await visit(app, id, `write "${id}" to /workspace/f.txt`);
    if (!/Successfully wrote/.test(content)) throw new Error(`${id}: the write failed: ${content}`);
    await settled(app, i + 1);
  }
  const memory = await parkedMemoryMiB(app);
  say(`parked sandbox memory: p50 ${round(memory.p50)} MiB`);
  const own = (id: string, content: string): void => {
    if (content !== id) throw new Error(`${id} read "${content.slice(0, 200)}", not their own file`);
  };
  const resumed = await mode('resumed', app, returning, own, () => users);
  // The replica's own view of a resume (unpause + MCP ping), from its histogram: the part of the latency that is the engine's.
  const metrics = await (await fetch(`${app.url}/metrics`)).text();
  const metric = (name: string): number => Number(new RegExp(`^${name}\\{[^}]*\\} ([0-9.e+-]+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
  const resumeServerMeanMs = Math.round((metric('sandpool_park_resume_seconds_sum') / metric('sandpool_park_resume_seconds_count')) * 1000 * 10) / 10;
  say(`resume on the replica (unpause + ping), mean ${resumeServerMeanMs} ms`);
  const engine = await engineFloor(app);
  await app.stop();
  app = undefined;

  // Parking off, same snapshots: what a returning user cost before.
  app = await createSandpool(configFor(0), { logger, warmTimeoutMs: 60_000 });
  await settled(app, 0);
  const restored = await mode('restored', app, returning, own, () => 0);
  const newUser = await mode('newUser', app, newcomers, (id, content) => {
    if (!/ENOENT|no such file/i.test(content)) throw new Error(`${id} (new) read "${content.slice(0, 200)}"`);
  }, () => 0);
  await app.stop();
  app = undefined;

  const pick = (m: ModeResult): { rawCpuSecondsPerUser: number; idleBaselineCpuPerSecond: number } => ({ rawCpuSecondsPerUser: m.rawCpuSecondsPerUser, idleBaselineCpuPerSecond: m.idleBaselineCpuPerSecond });
  const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : Math.round((a / b) * 100) / 100);
  const result = {
    users,
    thinkMs,
    resumed: resumed.latencyMs,
    restored: restored.latencyMs,
    newUser: newUser.latencyMs,
    cpuPerResumedUser: resumed.cpuSecondsPerUser,
    cpuPerRestoredUser: restored.cpuSecondsPerUser,
    cpuPerNewUser: newUser.cpuSecondsPerUser,
    cpuDetail: { resumed: pick(resumed), restored: pick(restored), newUser: pick(newUser) },
    ratios: {
      restoredOverResumedP50: ratio(restored.latencyMs.p50, resumed.latencyMs.p50),
      restoredOverResumedP95: ratio(restored.latencyMs.p95, resumed.latencyMs.p95),
      cpuRestoredOverResumed: ratio(restored.cpuSecondsPerUser, resumed.cpuSecondsPerUser),
    },
    resumeServerMeanMs,
    // The engine alone: a resume's latency floor (unpause) and its CPU floor (a pause + unpause pair per visit).
    engine,
    floorRatios: {
      resumedP95OverUnpauseP95: ratio(resumed.latencyMs.p95, engine.unpauseMs.p95),
      cpuRestoredOverEnginePair: ratio(restored.cpuSecondsPerUser, engine.cpuSecondsPerPair),
    },
    parkedMemoryMiB: { p50: round(memory.p50), p95: round(memory.p95), p99: round(memory.p99) },
    cpus: os.availableParallelism(),
    at: new Date().toISOString(),
  };
  writeResultFile(outFile, result);
  say(`written to ${shownPath(outFile)}`);
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await app?.stop();
  rmSync(dir, { recursive: true, force: true });
}
