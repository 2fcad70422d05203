/**
 * npm run load:smoke | load:capacity | load:soak | load:ceiling
 *   (-- --replicas N --out DIR --only RUN[,RUN] --rechart)
 *
 * For each run of the suite: starts a fresh cluster (npm run cluster: Redis,
 * N replicas, nginx), runs one Artillery scenario from load-tests/ against
 * nginx, samples every 2 s (each replica's RSS and CPU, /stats/pool?scope=cluster,
 * Redis INFO memory, sandbox container count), stops the cluster, checks that
 * no container was left, and writes <out>/<run>.json, <run>.md and SVG charts
 * (vega-lite). Exits non-zero when an Artillery `ensure` fails, a check fails,
 * or a container leaked (a ceiling search expects failing steps: it only
 * writes its summary, <out>/ceiling.md). --rechart redraws the charts of
 * stored results without running anything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { createDockerRuntime } from '../src/runtime/docker-runtime.js';
import { APP_LABEL_VALUE, LABELS } from '../src/runtime/types.js';
import { freePort } from '../src/util/free-port.js';

interface Run {
  name: string;
  scenario: string;
  /** Artillery config overrides (phases, variables). */
  overrides: Record<string, unknown>;
  /** Extra environment for the replicas. */
  env: Record<string, string>;
  /** Extra pass/fail checks on the Artillery counters. */
  check?: (counters: Record<string, number>) => string | undefined;
  /** A step of a ceiling search: what is being raised, and to what. */
  step?: { search: 'concurrent users held 5 min' | 'seed-flow arrivals per second'; level: number };
}

const exactBackpressure = (c: Record<string, number>): string | undefined => {
  const accepted = c['sandpool.backpressure.accepted'] ?? 0;
  const refused = c['sandpool.refused.TOO_MANY_REQUESTS'] ?? 0;
  const users = c['vusers.completed'] ?? 0;
  if (users === 0) return 'no user completed';
  if (accepted !== users * 5 || refused !== users * 5) return `expected 5 accepted + 5 refused per user, got ${accepted} + ${refused} for ${users} users`;
  return undefined;
};

const phases = (duration: number, arrivalRate: number, name: string): Array<Record<string, unknown>> => [{ duration, arrivalRate, name }];

const SUITES: Record<string, Run[]> = {
  smoke: [
    { name: 'smoke-phase2', scenario: 'phase2.yml', overrides: { config: { phases: phases(10, 2, 'seed flow'), variables: { approvalThinkMs: 200 } } }, env: {} },
    { name: 'smoke-connections', scenario: 'connections.yml', overrides: { config: { phases: phases(10, 5, 'ramp'), variables: { idleSeconds: 8 } } }, env: {} },
    { name: 'smoke-backpressure', scenario: 'backpressure.yml', overrides: { config: { phases: phases(5, 2, 'bursts') } }, env: {}, check: exactBackpressure },
  ],
  capacity: [
    // Concurrent users: 20 new users/s for 100 s, each held 420 s: all 2000 connected together for 320 s (> 5 minutes).
    { name: 'capacity-connections', scenario: 'connections.yml', overrides: { config: { phases: phases(100, 20, 'ramp to 2000'), variables: { idleSeconds: 420 } } }, env: { POOL_MIN_SIZE: '2' } },
    // Seed flow with the pool: a sustained arrival rate of users that each need their own sandbox.
    { name: 'capacity-phase2-pool', scenario: 'phase2.yml', overrides: { config: { phases: phases(120, 2, 'sustained 2/s'), variables: { approvalThinkMs: 1000 } } }, env: { POOL_MIN_SIZE: '10', POOL_MAX_SIZE: '60' } },
    // The same flow with ENABLE_CONTAINER_POOL=false: the pool's gain as a ratio from one run of each.
    { name: 'capacity-phase2-nopool', scenario: 'phase2.yml', overrides: { config: { phases: phases(120, 2, 'sustained 2/s'), variables: { approvalThinkMs: 1000 } } }, env: { ENABLE_CONTAINER_POOL: 'false', POOL_MAX_SIZE: '60' } },
    { name: 'capacity-backpressure', scenario: 'backpressure.yml', overrides: { config: { phases: phases(60, 2, 'bursts') } }, env: {}, check: exactBackpressure },
  ],
  // Stepped searches for the ceilings: each step is a fresh cluster; the
  // summary (ceiling.md) names the highest step with < 1% errors.
  ceiling: [
    ...[4000, 8000, 12000, 16000].map((users) => ({
      name: `ceiling-connections-${users}`,
      scenario: 'connections.yml',
      overrides: { config: { phases: phases(100, users / 100, `ramp to ${users}`), variables: { idleSeconds: 420 } } },
      env: { POOL_MIN_SIZE: '2' },
      step: { search: 'concurrent users held 5 min' as const, level: users },
    })),
    ...[3, 4, 6].map((rate) => ({
      name: `ceiling-phase2-${rate}`,
      scenario: 'phase2.yml',
      overrides: { config: { phases: phases(120, rate, `sustained ${rate}/s`), variables: { approvalThinkMs: 1000 } } },
      // Live sandboxes ≈ rate × (session + 30 s disconnect grace): a max high enough that starts, not POOL_MAX_SIZE, bound the step.
      env: { POOL_MIN_SIZE: '10', POOL_MAX_SIZE: '150' },
      step: { search: 'seed-flow arrivals per second' as const, level: rate },
    })),
  ],
  soak: [
    // 30 minutes of the seed flow at a steady 1 user/s: RSS slope and leaked containers.
    { name: 'soak-phase2', scenario: 'phase2.yml', overrides: { config: { phases: phases(1800, 1, 'soak 30 min'), variables: { approvalThinkMs: 1000 } } }, env: { POOL_MIN_SIZE: '5' } },
  ],
};

const { values } = parseArgs({
  options: {
    suite: { type: 'string', default: 'smoke' },
    replicas: { type: 'string', default: '2' },
    out: { type: 'string' },
    only: { type: 'string' }, // comma-separated run names
    rechart: { type: 'boolean', default: false },
  },
});
const suite = SUITES[values.suite];
if (!suite) {
  process.stderr.write(`load: --suite must be one of ${Object.keys(SUITES).join(', ')}\n`);
  process.exit(2);
}
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const outDir = path.resolve(values.out ?? path.join(root, 'load-tests/results'));
const replicaCount = Number(values.replicas);
const say = (line: string): void => void process.stderr.write(`[load] ${line}\n`);


interface ClusterState {
  url: string;
  redisUrl: string;
  replicas: Array<{ id: string; port: number; url: string; pid: number }>;
}

async function startCluster(env: Record<string, string>): Promise<{ state: ClusterState; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const redisPort = await freePort();
  const stateFile = path.join(os.tmpdir(), `sandpool-load-${process.pid}-${port}.json`);
  const child = spawn(
    process.execPath,
    [path.join(root, 'dist/scripts/cluster.js'), '--replicas', String(replicaCount), '--port', String(port), '--redis-port', String(redisPort), '--state-file', stateFile, '--name', `load${port}`, '--api-rate', '1000r/s'],
    // Load users come from one IP and arrive fast: lift per-IP limits that would measure nginx, not sandpool.
    { env: { ...process.env, LOG_LEVEL: 'warn', MAX_SESSIONS: '20000', SOCKET_EVENTS_PER_SECOND: '100', ...env }, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  // Should this runner die mid-run, the cluster still stops (and removes its containers) on its own.
  const orphanGuard = (): void => void child.kill('SIGTERM');
  process.once('exit', orphanGuard);
  child.once('exit', () => process.off('exit', orphanGuard));
  const deadline = Date.now() + 180_000;
  while (!existsSync(stateFile)) {
    if (child.exitCode !== null) throw new Error('the cluster exited during start-up');
    if (Date.now() > deadline) throw new Error('the cluster did not start within 180 s');
    await new Promise((r) => setTimeout(r, 250));
  }
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as ClusterState;
  return {
    state,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

interface Sample {
  t: number;
  replicas: Array<{ id: string; rssMiB: number; cpuPercent: number }>;
  pool: { idle: number; active: number; total: number; pending: number; connections: number; sessions: number };
  /** Connected sockets per replica (from its heartbeat). */
  perReplica: Record<string, number>;
  redisUsedMiB: number | null;
  redisMaxMiB: number | null;
  containers: number;
  /** CPU of the Artillery process: it shares the machine, so a saturated generator caps what a run can show. */
  loadgenCpuPercent?: number;
}

function procStat(pid: number): { cpuTicks: number; rssMiB: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuTicks = Number(fields[11]) + Number(fields[12]);
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return { cpuTicks, rssMiB: Math.round((rssKb / 1024) * 10) / 10 };
  } catch {
    return undefined;
  }
}

function startSampler(state: ClusterState): { samples: Sample[]; watchLoadgen(pid: number): void; stop(): Promise<void> } {
  const samples: Sample[] = [];
  const runtime = createDockerRuntime();
  const redis = new Redis(state.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: false });
  redis.on('error', () => undefined);
  const ticksPerSecond = 100;
  const last = new Map<number, { ticks: number; at: number }>();
  const started = Date.now();
  let running = true;
  let loadgenPid: number | undefined;
  const cpuOf = (pid: number, at: number): { rssMiB: number; cpuPercent: number } => {
    const s = procStat(pid);
    const prev = last.get(pid);
    let cpuPercent = 0;
    if (s && prev) cpuPercent = Math.round(((s.cpuTicks - prev.ticks) / ticksPerSecond / ((at - prev.at) / 1000)) * 1000) / 10;
    if (s) last.set(pid, { ticks: s.cpuTicks, at });
    return { rssMiB: s?.rssMiB ?? 0, cpuPercent };
  };
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const reps = state.replicas.map((r) => ({ id: r.id, ...cpuOf(r.pid, at) }));
      const loadgenCpuPercent = loadgenPid === undefined ? undefined : cpuOf(loadgenPid, at).cpuPercent;
      // An error page from nginx (the cluster overloaded) is a gap in the samples, not a crash of the runner.
      const cluster = (await fetch(`${state.url}/stats/pool?scope=cluster`).then((r) => (r.ok ? r.json() : null)).catch(() => null)) as {
        totals?: Record<string, number>;
        replicas?: Array<{ replica: string; connections?: number }>;
      } | null;
      const info = await redis.info('memory').catch(() => '');
      const mib = (key: string): number | null => {
        const v = new RegExp(`^${key}:(\\d+)`, 'm').exec(info)?.[1];
        return v === undefined ? null : Math.round((Number(v) / 1048576) * 10) / 10;
      };
      const containers = (await runtime.list({ [LABELS.app]: APP_LABEL_VALUE }).catch(() => [])).length;
      const totals = cluster?.totals ?? {};
      samples.push({
        t: Math.round((at - started) / 100) / 10,
        replicas: reps,
        pool: {
          idle: totals.idle ?? 0,
          active: totals.active ?? 0,
          total: totals.total ?? 0,
          pending: totals.pending ?? 0,
          connections: totals.connections ?? 0,
          sessions: totals.sessions ?? 0,
        },
        perReplica: Object.fromEntries((cluster?.replicas ?? []).map((r) => [r.replica, r.connections ?? 0])),
        redisUsedMiB: mib('used_memory'),
        redisMaxMiB: mib('maxmemory'),
        containers,
        loadgenCpuPercent,
      });
      await new Promise((r) => setTimeout(r, Math.max(0, 2000 - (Date.now() - at))));
    }
  })();
  return {
    samples,
    watchLoadgen(pid) {
      loadgenPid = pid;
    },
    async stop() {
      running = false;
      await loop;
      redis.disconnect();
    },
  };
}

/** Runs Artillery; its own output goes to logFile (read back when it fails to produce a report). */
async function runArtillery(run: Run, target: string, rawFile: string, logFile: string, onStart: (pid: number) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const log = openSync(logFile, 'w');
  const child = spawn(
    process.execPath,
    [path.join(root, 'node_modules/artillery/bin/run'), 'run', '--target', target, '--overrides', JSON.stringify(run.overrides), '--output', rawFile, path.join(root, 'load-tests', run.scenario)],
    { cwd: path.join(root, 'load-tests'), stdio: ['ignore', log, log], env: { ...process.env, ARTILLERY_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: '1' } },
  );
  closeSync(log);
  if (child.pid !== undefined) onStart(child.pid);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

interface ArtilleryReport {
  aggregate: { counters: Record<string, number>; summaries: Record<string, Record<string, number>>; firstCounterAt?: number; lastCounterAt?: number };
  intermediate: Array<{ period: number | string; counters: Record<string, number>; summaries: Record<string, Record<string, number>> }>;
}

async function svg(spec: vl.TopLevelSpec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  return view.toSVG();
}

async function charts(name: string, intermediate: ArtilleryReport['intermediate'], samples: Sample[]): Promise<string[]> {
  const files: string[] = [];
  const t0 = Number(intermediate[0]?.period ?? 0);
  const latency = intermediate.flatMap((p) =>
    Object.entries(p.summaries)
      .filter(([metric]) => ['socketio.response_time', 'sandpool.first_tool_result', 'sandpool.message_done'].includes(metric))
      .flatMap(([metric, s]) => (['p50', 'p95', 'p99'] as const).map((q) => ({ t: (Number(p.period) - t0) / 1000, metric: `${metric} ${q}`, ms: s[q] ?? null }))),
  );
  const write = async (suffix: string, spec: vl.TopLevelSpec): Promise<void> => {
    const file = path.join(outDir, `${name}-${suffix}.svg`);
    writeFileSync(file, await svg(spec));
    files.push(path.basename(file));
  };
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', width: 640, height: 260 } as const;
  if (latency.length > 0) {
    await write('latency', {
      ...base,
      title: `${name}: latency percentiles over time`,
      data: { values: latency },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 't', type: 'quantitative', title: 'seconds into the run' },
        y: { field: 'ms', type: 'quantitative', title: 'ms', scale: { type: 'symlog' } },
        color: { field: 'metric', type: 'nominal' },
      },
    });
  }
  // Per replica: its own connected sockets against its own RSS, in time order.
  const mem = samples.flatMap((s) => s.replicas.map((r) => ({ users: s.perReplica[r.id] ?? 0, rss: r.rssMiB, replica: r.id, t: s.t })));
  await write('users-rss', {
    ...base,
    title: `${name}: connected users vs RSS, per replica`,
    data: { values: mem },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'users', type: 'quantitative', title: 'connected users on the replica' },
      y: { field: 'rss', type: 'quantitative', title: 'replica RSS MiB' },
      color: { field: 'replica', type: 'nominal' },
      order: { field: 't', type: 'quantitative' },
      tooltip: [{ field: 't', title: 'seconds into the run' }, { field: 'users' }, { field: 'rss' }],
    },
  });
  await write('users', {
    ...base,
    title: `${name}: connected users (all replicas)`,
    data: { values: samples.map((s) => ({ t: s.t, users: s.pool.connections })) },
    mark: 'line',
    encoding: { x: { field: 't', type: 'quantitative', title: 'seconds into the run' }, y: { field: 'users', type: 'quantitative', title: 'connected sockets' } },
  });
  await write('pool', {
    ...base,
    title: `${name}: sandbox pool over time (all replicas)`,
    data: { values: samples.flatMap((s) => (['idle', 'active', 'pending'] as const).map((k) => ({ t: s.t, state: k, n: s.pool[k] }))) },
    mark: 'line',
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds into the run' },
      y: { field: 'n', type: 'quantitative', title: 'sandboxes / waiters' },
      color: { field: 'state', type: 'nominal' },
    },
  });
  return files;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const num = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

mkdirSync(outDir, { recursive: true });
const only = values.only?.split(',').map((n) => n.trim());
const runs = only ? suite.filter((r) => only.includes(r.name)) : suite;
if (runs.length === 0) {
  process.stderr.write(`load: --only names none of ${suite.map((r) => r.name).join(', ')}\n`);
  process.exit(2);
}

/** What a run leaves in <name>.json (the parts read back here). */
interface StoredResult {
  passed: boolean;
  problems: string[];
  derived: { users: number; failedUsers: number; errorRatePercent: number; peakConnectedUsers: number; secondsAtPeak: number; rssPerConnectedUserKiB: number | null; peakCpuPercent: number; peakLoadgenCpuPercent?: number; sandboxesStartedPerSecond: number };
  artillery: { summaries: Record<string, Record<string, number>>; intermediate: ArtilleryReport['intermediate'] };
  samples: Sample[];
  charts: string[];
}
const readResult = (name: string): StoredResult | undefined => {
  const file = path.join(outDir, `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as StoredResult) : undefined;
};

/** The suite's ceiling searches as one table, from the results on disk (so a step can be re-run alone). */
function writeStepSummary(): void {
  const steps = suite!.filter((r) => r.step).map((r) => ({ run: r, step: r.step!, result: readResult(r.name) }));
  if (steps.length === 0) return;
  const q = (r: StoredResult, metric: string, k: string): string => String(r.artillery.summaries[metric]?.[k] ?? '–');
  const searches = [...new Set(steps.map((s) => s.step.search))];
  const summary = searches.map((search) => {
    const done = steps.filter((s) => s.step.search === search && s.result);
    const held = done.filter((s) => s.result!.passed && s.result!.derived.errorRatePercent < 1);
    return { search, highestPassing: held.length > 0 ? Math.max(...held.map((s) => s.step.level)) : null, stepsRun: done.map((s) => s.step.level) };
  });
  writeFileSync(path.join(outDir, `${values.suite}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  const lines = [`# ${values.suite}: stepped searches`, '', `Each step is its own run on a fresh ${replicaCount}-replica cluster (see <step>.md). A step holds when it has < 1% failed users and passes its Artillery \`ensure\` thresholds and leaves no container.`, ''];
  for (const { search, highestPassing } of summary) {
    lines.push(`## ${search}: highest held ${highestPassing ?? 'none of the steps'}`, '');
    // RSS per connected user only means something where users stay connected (the seed flow's leave at once).
    lines.push('| step | held | users (failed %) | peak connected | ack p95 ms | first tool:result p50 / p95 ms | message:done p95 ms | peak replica / Artillery CPU % | RSS/user KiB | sandboxes/s |');
    lines.push('|---|---|---|---|---|---|---|---|---|---|');
    for (const { run, step, result: r } of steps.filter((s) => s.step.search === search)) {
      if (!r) {
        lines.push(`| ${step.level} | not run | | | | | | | | |`);
        continue;
      }
      const ok = r.passed && r.derived.errorRatePercent < 1;
      lines.push(
        `| [${step.level}](${run.name}.md) | ${ok ? 'yes' : `no: ${r.problems.join('; ') || 'errors'}`} | ${r.derived.users} (${r.derived.errorRatePercent}%) | ${r.derived.peakConnectedUsers} | ${q(r, 'socketio.response_time', 'p95')} | ${q(r, 'sandpool.first_tool_result', 'p50')} / ${q(r, 'sandpool.first_tool_result', 'p95')} | ${q(r, 'sandpool.message_done', 'p95')} | ${r.derived.peakCpuPercent} / ${r.derived.peakLoadgenCpuPercent ?? '–'} | ${step.search === 'concurrent users held 5 min' ? (r.derived.rssPerConnectedUserKiB ?? '–') : '–'} | ${r.derived.sandboxesStartedPerSecond} |`,
      );
    }
    lines.push('');
  }
  writeFileSync(path.join(outDir, `${values.suite}.md`), lines.join('\n'));
  say(`summary in ${path.join(outDir, `${values.suite}.md`)}`);
}

if (values.rechart) {
  // Redraw charts from stored results (samples and Artillery periods), without running anything.
  for (const run of runs) {
    const result = readResult(run.name);
    if (!result) continue;
    result.charts = await charts(run.name, result.artillery.intermediate, result.samples);
    writeFileSync(path.join(outDir, `${run.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    say(`${run.name}: charts redrawn`);
  }
  writeStepSummary();
  process.exit(0);
}

let failures = 0;
for (const run of runs) {
  say(`${run.name}: starting a ${replicaCount}-replica cluster`);
  const cluster = await startCluster(run.env);
  const sampler = startSampler(cluster.state);
  const rawFile = path.join(os.tmpdir(), `sandpool-${run.name}-${process.pid}.json`);
  const started = Date.now();
  say(`${run.name}: artillery ${run.scenario} against ${cluster.state.url}`);
  const artilleryLog = path.join(os.tmpdir(), `sandpool-${run.name}-${process.pid}.log`);
  const exit = await runArtillery(run, cluster.state.url, rawFile, artilleryLog, (pid) => sampler.watchLoadgen(pid));
  const exitCode = exit.code ?? 1;
  const durationSeconds = Math.round((Date.now() - started) / 1000);
  // Each replica's own view (acquire and start latencies, sandboxes created) before it stops.
  const finalPoolStats = await Promise.all(
    cluster.state.replicas.map((r) => fetch(`${r.url}/stats/pool`).then((x) => x.json() as Promise<Record<string, unknown>>).catch(() => null)),
  );
  await sampler.stop();
  await cluster.stop();
  const leaked = (await createDockerRuntime().list({ [LABELS.app]: APP_LABEL_VALUE })).filter((c) =>
    cluster.state.replicas.some((r) => r.id === c.labels[LABELS.replica]),
  ).length;

  // A generator that died (killed, out of memory, out of file descriptors) leaves no report: that is a failed step, not a crash of the runner.
  const noReport = existsSync(rawFile)
    ? undefined
    : `artillery produced no report (exit ${exit.code ?? exit.signal}): ${readFileSync(artilleryLog, 'utf8').trim().split('\n').slice(-5).join(' | ').slice(0, 600) || 'no output'}`;
  const report: ArtilleryReport = noReport
    ? { aggregate: { counters: {}, summaries: {} }, intermediate: [] }
    : (JSON.parse(readFileSync(rawFile, 'utf8')) as ArtilleryReport);
  if (noReport) say(`${run.name}: ${noReport}`);
  rmSync(rawFile, { force: true });
  if (!noReport) rmSync(artilleryLog, { force: true });
  const counters = report.aggregate.counters;
  const created = counters['vusers.created'] ?? 0;
  const failed = counters['vusers.failed'] ?? 0;
  const samples = sampler.samples;
  const peakUsers = Math.max(0, ...samples.map((s) => s.pool.connections));
  const rssFirst = samples[0]?.replicas.reduce((a, r) => a + r.rssMiB, 0) ?? 0;
  const rssPeak = Math.max(0, ...samples.map((s) => s.replicas.reduce((a, r) => a + r.rssMiB, 0)));
  const heldSeconds = samples.filter((s) => s.pool.connections >= peakUsers * 0.95).length * 2;
  const checkProblem = run.check?.(counters);
  const derived = {
    users: created,
    failedUsers: failed,
    errorRatePercent: created ? Math.round((failed / created) * 10000) / 100 : 0,
    peakConnectedUsers: peakUsers,
    peakSessions: Math.max(0, ...samples.map((s) => s.pool.sessions)),
    /** Each replica's highest connection count: shows the spread nginx achieved. */
    peakConnectionsPerReplica: Object.fromEntries(
      cluster.state.replicas.map((r) => [r.id, Math.max(0, ...samples.map((s) => s.perReplica[r.id] ?? 0))]),
    ),
    secondsAtPeak: heldSeconds,
    rssStartMiB: Math.round(rssFirst),
    rssPeakMiB: Math.round(rssPeak),
    rssPerConnectedUserKiB: peakUsers ? Math.round(((rssPeak - rssFirst) * 1024) / peakUsers) : null,
    rssSlopeMiBPerHourPerReplica: Object.fromEntries(
      cluster.state.replicas.map((r) => [r.id, Math.round(slope(samples.map((s) => [s.t / 3600, s.replicas.find((x) => x.id === r.id)?.rssMiB ?? 0])) * 10) / 10]),
    ),
    peakCpuPercent: Math.max(0, ...samples.flatMap((s) => s.replicas.map((r) => r.cpuPercent))),
    peakLoadgenCpuPercent: Math.max(0, ...samples.map((s) => s.loadgenCpuPercent ?? 0)),
    peakRedisUsedMiB: Math.max(0, ...samples.map((s) => s.redisUsedMiB ?? 0)),
    redisMaxMemoryMiB: samples[0]?.redisMaxMiB ?? null,
    peakContainers: Math.max(0, ...samples.map((s) => s.containers)),
    /** Per replica: warm/cold acquire p50/p95/p99 over its last 1024 acquires, sandboxes started, start latency. */
    replicaPools: finalPoolStats.map((p) =>
      p
        ? { replica: p.replica, acquired: p.acquired, created: p.created, failed: p.failed, acquireLatencyMs: p.acquireLatencyMs, createLatencyMs: p.createLatencyMs }
        : null,
    ),
    sandboxesStartedPerSecond: Math.round((finalPoolStats.reduce((n, p) => n + (typeof p?.created === 'number' ? p.created : 0), 0) / Math.max(1, durationSeconds)) * 100) / 100,
    containersLeftAfterStop: leaked,
  };
  const chartFiles = await charts(run.name, report.intermediate, samples);
  const problems = [
    noReport,
    !noReport && exitCode !== 0 ? `artillery exited ${exitCode} (an ensure threshold failed)` : undefined,
    checkProblem,
    leaked > 0 ? `${leaked} containers left after the cluster stopped` : undefined,
  ].filter((p): p is string => p !== undefined);
  if (problems.length > 0) failures++;
  const result = {
    name: run.name,
    scenario: run.scenario,
    replicas: replicaCount,
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    date: new Date(started).toISOString(),
    durationSeconds,
    overrides: run.overrides,
    env: run.env,
    passed: problems.length === 0,
    problems,
    derived,
    artillery: { counters, summaries: report.aggregate.summaries, intermediate: report.intermediate.map((p) => ({ period: p.period, counters: p.counters, summaries: p.summaries })) },
    samples,
    charts: chartFiles,
  };
  writeFileSync(path.join(outDir, `${run.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const s = (metric: string): string => {
    const m = report.aggregate.summaries[metric];
    return m ? `${m.p50} / ${m.p95} / ${m.p99}` : '–';
  };
  const md = [
    `# ${run.name}`,
    '',
    `${run.scenario}, ${replicaCount} replicas, ${os.cpus().length} cores, ${result.date}, ${durationSeconds} s. ${problems.length === 0 ? 'PASSED' : `FAILED: ${problems.join('; ')}`}`,
    '',
    '| metric | value |',
    '|---|---|',
    `| virtual users (failed) | ${created} (${failed}, ${derived.errorRatePercent}%) |`,
    `| socketio.response_time p50 / p95 / p99 ms | ${s('socketio.response_time')} |`,
    `| first tool:result p50 / p95 / p99 ms | ${s('sandpool.first_tool_result')} |`,
    `| message:done p50 / p95 / p99 ms | ${s('sandpool.message_done')} |`,
    `| peak connected users (seconds at ≥95% of peak) | ${peakUsers} (${heldSeconds}) |`,
    `| peak sessions / peak connections per replica | ${derived.peakSessions} / ${Object.entries(derived.peakConnectionsPerReplica).map(([k, v]) => `${k}: ${v}`).join(', ')} |`,
    `| RSS all replicas start → peak MiB | ${derived.rssStartMiB} → ${derived.rssPeakMiB} |`,
    `| RSS per connected user KiB | ${derived.rssPerConnectedUserKiB ?? '–'} |`,
    `| RSS slope MiB/h per replica | ${Object.entries(derived.rssSlopeMiBPerHourPerReplica).map(([k, v]) => `${k}: ${v}`).join(', ')} |`,
    `| peak replica CPU % / peak Artillery CPU % (100 = one core) | ${derived.peakCpuPercent} / ${derived.peakLoadgenCpuPercent} |`,
    `| Redis used (peak) MiB | ${derived.peakRedisUsedMiB} |`,
    `| sandbox containers peak / left after stop | ${derived.peakContainers} / ${leaked} |`,
    `| sandboxes started per second (whole run) | ${derived.sandboxesStartedPerSecond} |`,
    ...derived.replicaPools.map((p) =>
      p ? `| ${String(p.replica)} acquire ms p50 / p95 / p99 (n=${String(p.acquired)}) | ${JSON.stringify(p.acquireLatencyMs)} |` : '| replica stats | unavailable |',
    ),
    ...Object.entries(counters)
      .filter(([k]) => k.startsWith('sandpool.') || k.startsWith('errors.'))
      .map(([k, v]) => `| ${k} | ${v} |`),
    '',
    ...chartFiles.map((f) => `![${f}](${f})`),
    '',
  ].join('\n');
  writeFileSync(path.join(outDir, `${run.name}.md`), md);
  say(`${run.name}: ${problems.length === 0 ? 'passed' : `FAILED (${problems.join('; ')})`}; results in ${path.join(outDir, `${run.name}.json`)}`);
}
writeStepSummary();
// A ceiling search is meant to find failing steps; only its own breakage is a failure.
process.exit(failures > 0 && !runs.every((r) => r.step) ? 1 : 0);
