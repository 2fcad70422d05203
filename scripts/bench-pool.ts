/**
 * npm run bench:pool [-- --json] [--samples N] [--replenish K] [--save | --out FILE] [--baseline IMAGE]
 *
 * Measures, in one run against the real engine, for POOL_IMAGE (and, with
 * --baseline, for another image the same way, interleaved sample by sample
 * so both see the same machine):
 * - cold: acquire() with pooling off (create + start + MCP initialize + tools/list),
 * - warm: acquire() from a warm pool (a spare is idle when it is called),
 * - replenishPerSecond: ready sandboxes per second while a pool of K fills from empty,
 * - startCpuSeconds: the whole machine's CPU-seconds (engine, runtime, sandbox
 *   and all else) per sandbox started in that burst, from /proc/stat; beside it
 *   the same burst attributed to the processes doing the starts,
 * - refillWithRemovals: a warm pool of K refilling after K hand-outs, once
 *   with the users holding on, once with their K sandboxes removed meanwhile,
 * - engineCalls: Docker API calls per start, per warm hand-out and per removal,
 *   counted on a pass-through socket,
 * - idleSandboxMemoryMiB: warm sandboxes' memory (cgroup usage minus page cache).
 * Prints a table (or only JSON with --json) and writes the JSON to
 * results/bench/pool.json (git-ignored), with --save to the tracked
 * bench/results/pool.json that SCALABILITY.md links to, or to --out FILE.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/logger.js';
import type { ContainerPool } from '../src/pool/container-pool.js';
import { selectRuntime } from '../src/runtime/select-runtime.js';
import { percentile } from '../src/util/async.js';
import { startedPools } from './lib/started-pools.js';
import {
  coldAcquire,
  engineCalls,
  makePool,
  replenish,
  refillWithRemovals,
  warmAcquire,
  type EngineCallsResult,
  type PhaseContext,
  type RemovalsResult,
  type ReplenishResult,
} from './lib/pool-phases.js';
import { benchResultFileOrExit, shownPath, writeResultFile } from './lib/results-path.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    samples: { type: 'string', default: '50' },
    replenish: { type: 'string', default: '10' },
    save: { type: 'boolean', default: false },
    out: { type: 'string' },
    baseline: { type: 'string' },
  },
});
const samples = Number(values.samples);
const replenishTarget = Number(values.replenish);
if (!Number.isInteger(samples) || samples < 1 || !Number.isInteger(replenishTarget) || replenishTarget < 1) {
  process.stderr.write('bench:pool: --samples and --replenish take whole numbers >= 1\n');
  process.exit(2);
}
const outFile = benchResultFileOrExit('bench:pool', 'pool.json', values);
const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const base = loadConfig({ ...process.env, LOG_LEVEL: 'warn', REPLICA_ID: `bench-${process.pid}`, POOL_MAX_SIZE: String(Math.max(20, replenishTarget * 2)) });
const logger = createLogger({ level: 'warn' });
const runtime = await selectRuntime({ mode: base.pool.runtime, production: false, dockerSocket: base.docker.socketPath, customSpec: [], logger });
const ctx: PhaseContext = { base, runtime, logger, pools: startedPools() };
const images = [base.pool.image, ...(values.baseline ? [values.baseline] : [])];

type Summary = { p50: number; p95: number; p99: number; mean: number; min: number; max: number };
function summary(xs: number[]): Summary {
  const sorted = [...xs].sort((a, b) => a - b);
  const mean = Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 100) / 100;
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), mean, min: percentile(sorted, 0), max: percentile(sorted, 100) };
}

const cleanup = async (): Promise<void> => {
  await ctx.pools.drainAll(30_000);
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

interface ImageRun {
  cold: number[];
  warm: number[];
  replenish?: ReplenishResult;
  removals?: RemovalsResult;
  calls?: EngineCallsResult;
}

try {
  const runs = new Map<string, ImageRun>(images.map((image) => [image, { cold: [], warm: [] }]));
  const each = async (phase: string, work: (image: string, run: ImageRun) => Promise<void>): Promise<void> => {
    say(`${phase} (${images.join(' vs ')})`);
    for (const image of images) await work(image, runs.get(image) as ImageRun);
  };

  // Cold and warm: one sample of each image in turn, so both see the same moments of a busy machine.
  say(`cold: ${samples} on-demand acquires per image (runtime ${runtime.kind}: ${images.join(' vs ')})`);
  const onDemand = new Map<string, ContainerPool>(images.map((image) => [image, makePool(ctx, image, { enabled: false, minSize: 0 })]));
  for (let i = 0; i < samples; i++) {
    for (const image of images) runs.get(image)?.cold.push(await coldAcquire(onDemand.get(image) as ContainerPool));
  }
  await Promise.all([...onDemand.values()].map((p) => p.drain(30_000)));

  say(`warm: ${samples} pooled acquires per image`);
  const warmPools = new Map<string, ContainerPool>(images.map((image) => [image, makePool(ctx, image, { enabled: true, minSize: 2 })]));
  for (let i = 0; i < samples; i++) {
    for (const image of images) runs.get(image)?.warm.push(await warmAcquire(warmPools.get(image) as ContainerPool));
  }
  await Promise.all([...warmPools.values()].map((p) => p.drain(30_000)));

  await each(`replenish: a pool of ${replenishTarget} from empty`, async (image, run) => {
    run.replenish = await replenish(ctx, image, replenishTarget);
  });
  await each(`refill after ${replenishTarget} hand-outs, the users holding on, then done at once (their sandboxes removed meanwhile)`, async (image, run) => {
    run.removals = await refillWithRemovals(ctx, image, replenishTarget);
  });
  if (runtime.kind === 'docker') {
    await each('engine calls per start, warm hand-out and removal', async (image, run) => {
      run.calls = await engineCalls(ctx, image);
    });
  }

  const resultOf = (image: string): Record<string, unknown> => {
    const run = runs.get(image) as ImageRun;
    const coldS = summary(run.cold);
    const warmS = summary(run.warm);
    const rep = run.replenish as ReplenishResult;
    return {
      cold: { p50: coldS.p50, p95: coldS.p95, p99: coldS.p99 },
      warm: { p50: warmS.p50, p95: warmS.p95, p99: warmS.p99 },
      // 0.01, like the p50s it divides: a ratio near 1 (e.g. on the process runtime) needs the decimals.
      ratio: Math.round((coldS.p50 / warmS.p50) * 100) / 100,
      replenishPerSecond: rep.perSecond,
      samples,
      // Per sandbox that came up: CPU a failed start burned is charged to the ones that did.
      startCpuSeconds: rep.startCpuSeconds,
      startCpuAttributed: rep.attributedPerStart,
      idleSandboxMemoryMiB: rep.idleMemoryMiB.length ? summary(rep.idleMemoryMiB) : null,
      refillWithRemovals: run.removals ?? null,
      engineCalls: run.calls ?? null,
      details: {
        cold: coldS,
        warm: warmS,
        replenish: { sandboxes: rep.sandboxes, started: rep.started, seconds: rep.seconds, machineCpuSeconds: rep.machineCpuSeconds },
      },
      image,
    };
  };
  const primary = resultOf(base.pool.image);
  const result = {
    ...primary,
    ...(values.baseline ? { baseline: resultOf(values.baseline) } : {}),
    environment: {
      date: new Date().toISOString(),
      runtime: runtime.kind,
      image: base.pool.image,
      cpus: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
      node: process.version,
      sandboxLimits: base.sandbox,
      createConcurrency: base.pool.createConcurrency,
      removeConcurrency: base.pool.removeConcurrency,
    },
  };

  writeResultFile(outFile, result);
  if (values.json) {
    // stdout stays one JSON object; where it went is said on stderr.
    process.stdout.write(`${JSON.stringify(result)}\n`);
    say(`JSON written to ${shownPath(outFile)}`);
  } else {
    process.stdout.write(`${table(images.map((image) => ({ image, r: resultOf(image) })))}\nJSON written to ${shownPath(outFile)}\n`);
  }
} finally {
  await cleanup();
}

/** One column per image: the numbers the goals are stated in. */
function table(columns: Array<{ image: string; r: Record<string, unknown> }>): string {
  const pick = (r: Record<string, unknown>, ...keys: string[]): unknown => keys.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), r);
  const calls = (r: Record<string, unknown>, which: keyof EngineCallsResult): string => {
    const c = pick(r, 'engineCalls', which) as Record<string, number> | undefined;
    return c ? Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ') || 'none' : 'n/a';
  };
  const rows: Array<[string, (r: Record<string, unknown>) => unknown]> = [
    ['cold acquire p50 / p95 ms', (r) => `${pick(r, 'cold', 'p50')} / ${pick(r, 'cold', 'p95')}`],
    ['warm acquire p50 / p95 ms', (r) => `${pick(r, 'warm', 'p50')} / ${pick(r, 'warm', 'p95')}`],
    [`replenish ${replenishTarget} from empty, /s`, (r) => pick(r, 'replenishPerSecond')],
    [`refill after ${replenishTarget} hand-outs, /s: users hold / removed meanwhile`, (r) => `${pick(r, 'refillWithRemovals', 'holding', 'perSecond')} / ${pick(r, 'refillWithRemovals', 'removing', 'perSecond')}`],
    ['CPU-s per start (whole machine)', (r) => pick(r, 'startCpuSeconds')],
    ['CPU-s per start (attributed: sandbox + engine + shims + self)', (r) => {
      const a = pick(r, 'startCpuAttributed') as Record<string, number> | undefined;
      return a ? `${a.total} (${a.sandboxes} + ${a.engine} + ${a.shims} + ${a.self})` : 'n/a';
    }],
    ['idle sandbox memory p50 MiB', (r) => pick(r, 'idleSandboxMemoryMiB', 'p50') ?? 'n/a'],
    ['engine calls per start', (r) => calls(r, 'perStart')],
    ['engine calls per warm hand-out', (r) => calls(r, 'perHandOut')],
    ['engine calls per removal', (r) => calls(r, 'perRemoval')],
  ];
  const header = `| | ${columns.map((c) => c.image).join(' | ')} |`;
  const rule = `|---|${columns.map(() => '---').join('|')}|`;
  const body = rows.map(([name, get]) => `| ${name} | ${columns.map((c) => String(get(c.r))).join(' | ')} |`);
  return [`sandbox pool benchmark (${samples} samples each, ${runtime.kind} runtime, ${os.cpus().length} cores, load ${os.loadavg()[0]?.toFixed(2)})`, '', header, rule, ...body, ''].join('\n');
}
