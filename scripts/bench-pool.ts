/**
 * npm run bench:pool [-- --json] [--samples N] [--replenish K] [--out FILE]
 *
 * Measures, in one run against the real engine:
 * - cold: acquire() with pooling off (create + start + MCP initialize + tools/list),
 * - warm: acquire() from a warm pool (a spare is idle when it is called),
 * - replenishPerSecond: ready sandboxes per second while a pool of K fills from empty,
 * - startCpuSeconds: the whole machine's CPU-seconds (engine, runtime, sandbox
 *   and all else) per sandbox started in that burst, from /proc/stat.
 * Prints a table (or only JSON with --json) and writes the JSON to --out
 * (default bench/results/pool.json).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/logger.js';
import { createContainerPool, type ContainerPool } from '../src/pool/container-pool.js';
import { selectRuntime } from '../src/runtime/select-runtime.js';
import { percentile } from '../src/util/async.js';
import { clockTicksPerSecond, machineBusyTicks } from './lib/proc-stat.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    samples: { type: 'string', default: '50' },
    replenish: { type: 'string', default: '10' },
    out: { type: 'string', default: 'bench/results/pool.json' },
  },
});
const samples = Number(values.samples);
const replenishTarget = Number(values.replenish);
if (!Number.isInteger(samples) || samples < 1 || !Number.isInteger(replenishTarget) || replenishTarget < 1) {
  process.stderr.write('bench:pool: --samples and --replenish take whole numbers >= 1\n');
  process.exit(2);
}
const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const base = loadConfig({ ...process.env, LOG_LEVEL: 'warn', REPLICA_ID: `bench-${process.pid}`, POOL_MAX_SIZE: String(Math.max(20, replenishTarget * 2)) });
const logger = createLogger({ level: 'warn' });
const runtime = await selectRuntime({ mode: base.pool.runtime, production: false, dockerSocket: base.docker.socketPath, customSpec: [], logger });

function makePool(enabled: boolean, minSize: number): ContainerPool {
  return createContainerPool({
    runtime,
    pool: { ...base.pool, enabled, minSize },
    sandbox: base.sandbox,
    replicaId: base.server.replicaId,
    logger,
  });
}

function summary(xs: number[]): { p50: number; p95: number; p99: number; mean: number; min: number; max: number } {
  const sorted = [...xs].sort((a, b) => a - b);
  const mean = Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 100) / 100;
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), mean, min: percentile(sorted, 0), max: percentile(sorted, 100) };
}

const pools: ContainerPool[] = [];
const cleanup = async (): Promise<void> => {
  await Promise.allSettled(pools.map((p) => p.drain(30_000)));
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  // Cold: every acquire starts a sandbox (the ENABLE_CONTAINER_POOL=false path).
  say(`cold: ${samples} on-demand acquires (runtime ${runtime.kind}, image ${base.pool.image})`);
  const onDemand = makePool(false, 0);
  pools.push(onDemand);
  onDemand.start();
  const cold: number[] = [];
  for (let i = 0; i < samples; i++) {
    const lease = await onDemand.acquire();
    cold.push(lease.acquireMs);
    await lease.release();
  }
  await onDemand.drain(30_000);

  // Warm: a spare is idle at every call.
  say(`warm: ${samples} pooled acquires`);
  const warmPool = makePool(true, 2);
  pools.push(warmPool);
  warmPool.start();
  const warm: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (!(await warmPool.whenWarm(60_000))) throw new Error('pool did not warm within 60 s');
    const lease = await warmPool.acquire();
    warm.push(lease.acquireMs);
    await lease.release();
  }
  await warmPool.drain(30_000);

  // Replenish: K sandboxes from empty, all started at once by the pool.
  say(`replenish: filling a pool of ${replenishTarget} from empty`);
  const fillPool = makePool(true, replenishTarget);
  pools.push(fillPool);
  const busyBefore = machineBusyTicks();
  const fillStart = performance.now();
  fillPool.start();
  if (!(await fillPool.whenWarm(180_000))) throw new Error(`pool of ${replenishTarget} did not fill within 180 s`);
  const fillSeconds = (performance.now() - fillStart) / 1000;
  const burstCpuSeconds = (machineBusyTicks() - busyBefore) / clockTicksPerSecond();
  // Per sandbox that came up: CPU a failed start burned is charged to the ones that did.
  const startedInBurst = fillPool.stats().created;
  // Memory of an idle, warm sandbox (cgroup usage minus page cache), from the engine.
  const memoryMiB: number[] = [];
  if (runtime.kind === 'docker') {
    await new Promise((r) => setTimeout(r, 2000));
    const docker = new Docker({ socketPath: base.docker.socketPath });
    for (const id of fillPool.ownedIds()) {
      const stats = (await docker.getContainer(id).stats({ stream: false })) as { memory_stats?: { usage?: number; stats?: { cache?: number; inactive_file?: number } } };
      const usage = stats.memory_stats?.usage ?? 0;
      const cache = stats.memory_stats?.stats?.cache ?? stats.memory_stats?.stats?.inactive_file ?? 0;
      if (usage > 0) memoryMiB.push(Math.round(((usage - cache) / 1048576) * 10) / 10);
    }
  }
  await fillPool.drain(60_000);

  const coldS = summary(cold);
  const warmS = summary(warm);
  const result = {
    cold: { p50: coldS.p50, p95: coldS.p95, p99: coldS.p99 },
    warm: { p50: warmS.p50, p95: warmS.p95, p99: warmS.p99 },
    // 0.01, like the p50s it divides: a ratio near 1 (e.g. on the process runtime) needs the decimals.
    ratio: Math.round((coldS.p50 / warmS.p50) * 100) / 100,
    replenishPerSecond: Math.round((replenishTarget / fillSeconds) * 100) / 100,
    samples,
    startCpuSeconds: Math.round((burstCpuSeconds / Math.max(1, startedInBurst)) * 1000) / 1000,
    idleSandboxMemoryMiB: memoryMiB.length ? summary(memoryMiB) : null,
    details: {
      cold: coldS,
      warm: warmS,
      replenish: { sandboxes: replenishTarget, started: startedInBurst, seconds: Math.round(fillSeconds * 100) / 100, machineCpuSeconds: Math.round(burstCpuSeconds * 100) / 100 },
    },
    environment: {
      date: new Date().toISOString(),
      runtime: runtime.kind,
      image: base.pool.image,
      cpus: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      sandboxLimits: base.sandbox,
    },
  };

  mkdirSync(path.dirname(values.out), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    const row = (name: string, s: ReturnType<typeof summary>): string =>
      `| ${name.padEnd(5)} | ${String(s.p50).padStart(8)} | ${String(s.p95).padStart(8)} | ${String(s.p99).padStart(8)} | ${String(s.max).padStart(8)} |`;
    process.stdout.write(
      [
        `sandbox pool benchmark (${samples} samples each, ${runtime.kind} runtime, ${os.cpus().length} cores)`,
        '',
        '| acquire |   p50 ms |   p95 ms |   p99 ms |   max ms |',
        '|---------|----------|----------|----------|----------|',
        row('cold', coldS),
        row('warm', warmS),
        '',
        `cold/warm p50 ratio: ${result.ratio}x`,
        `replenish: ${replenishTarget} sandboxes from empty in ${result.details.replenish.seconds} s = ${result.replenishPerSecond}/s`,
        `machine CPU per sandbox start (whole machine, during the burst): ${result.startCpuSeconds} CPU-s`,
        `idle sandbox memory (MiB, p50 / max): ${result.idleSandboxMemoryMiB ? `${result.idleSandboxMemoryMiB.p50} / ${result.idleSandboxMemoryMiB.max}` : 'n/a'}`,
        `JSON written to ${values.out}`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await cleanup();
}
