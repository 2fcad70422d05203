/**
 * The measurements of bench:pool, one function per phase, each against one
 * image (so the CLI can interleave images sample by sample on a noisy machine).
 */
import Docker from 'dockerode';
import type { Config } from '../../src/config/config.js';
import type { Logger } from '../../src/logger.js';
import type { ContainerPool } from '../../src/pool/container-pool.js';
import type { Lease } from '../../src/pool/types.js';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import type { ContainerRuntime } from '../../src/runtime/types.js';
import { sleep } from '../../src/util/async.js';
import { startEngineCallCounter, type EngineCallKind } from './engine-call-counter.js';
import { clockTicksPerSecond, machineTicks } from './proc-stat.js';
import { beginStartCpu, type StartCpu } from './start-cpu.js';
import type { StartedPools } from './started-pools.js';

export interface PhaseContext {
  base: Config;
  runtime: ContainerRuntime;
  logger: Logger;
  /** Every pool made, for the clean-up on an interrupt. */
  pools: StartedPools;
}

export function makePool(ctx: PhaseContext, image: string, settings: { enabled: boolean; minSize: number; maxSize?: number }, runtime: ContainerRuntime = ctx.runtime): ContainerPool {
  return ctx.pools.start({
    runtime,
    pool: { ...ctx.base.pool, image, enabled: settings.enabled, minSize: settings.minSize, maxSize: settings.maxSize ?? ctx.base.pool.maxSize, demandHeadroom: 0 },
    sandbox: ctx.base.sandbox,
    replicaId: ctx.base.server.replicaId,
    logger: ctx.logger,
  });
}

/** One on-demand acquire (the ENABLE_CONTAINER_POOL=false path: create + start + MCP initialize + tools/list), in ms. */
export async function coldAcquire(pool: ContainerPool): Promise<number> {
  const lease = await pool.acquire();
  await lease.release();
  return lease.acquireMs;
}

/** One acquire with a spare idle, in ms. */
export async function warmAcquire(pool: ContainerPool): Promise<number> {
  if (!(await pool.whenWarm(60_000))) throw new Error('pool did not warm within 60 s');
  const lease = await pool.acquire();
  await lease.release();
  return lease.acquireMs;
}

export interface ReplenishResult {
  sandboxes: number;
  started: number;
  seconds: number;
  perSecond: number;
  /** The whole machine's CPU-seconds during the burst (/proc/stat), and per sandbox started. */
  machineCpuSeconds: number;
  startCpuSeconds: number;
  /** The same burst's CPU attributed to the processes doing the starts, per sandbox started. */
  attributedPerStart: StartCpu;
  /** Idle, warm sandboxes' memory (cgroup usage minus page cache, MiB), 2 s after the burst. */
  idleMemoryMiB: number[];
}

/** K sandboxes from empty, started by the pool (at most POOL_CREATE_CONCURRENCY at once). */
export async function replenish(ctx: PhaseContext, image: string, k: number): Promise<ReplenishResult> {
  const cpu = beginStartCpu();
  const busyBefore = machineTicks().busy;
  const t0 = performance.now();
  const pool = makePool(ctx, image, { enabled: true, minSize: k, maxSize: Math.max(ctx.base.pool.maxSize, k) });
  if (!(await pool.whenWarm(180_000))) throw new Error(`pool of ${k} did not fill within 180 s`);
  const seconds = (performance.now() - t0) / 1000;
  const machineCpuSeconds = (machineTicks().busy - busyBefore) / clockTicksPerSecond();
  const started = pool.stats().created;
  const ids = [...pool.ownedIds()];
  const attributed = cpu.finish(ids);
  const per = (x: number): number => Math.round((x / Math.max(1, started)) * 1000) / 1000;
  await sleep(2000);
  const idleMemoryMiB = ctx.runtime.kind === 'docker' ? await idleMemory(ctx.base.docker.socketPath, ids) : [];
  await pool.drain(60_000);
  return {
    sandboxes: k,
    started,
    seconds: Math.round(seconds * 100) / 100,
    perSecond: Math.round((k / seconds) * 100) / 100,
    machineCpuSeconds: Math.round(machineCpuSeconds * 100) / 100,
    startCpuSeconds: per(machineCpuSeconds),
    attributedPerStart: {
      sandboxes: per(attributed.sandboxes),
      engine: per(attributed.engine),
      shims: per(attributed.shims),
      self: per(attributed.self),
      total: per(attributed.total),
    },
    idleMemoryMiB,
  };
}

/** Memory of each container as the engine reports it: usage minus page cache, MiB. */
async function idleMemory(socketPath: string, ids: readonly string[]): Promise<number[]> {
  const docker = new Docker({ socketPath });
  const out: number[] = [];
  for (const id of ids) {
    const stats = (await docker.getContainer(id).stats({ stream: false })) as { memory_stats?: { usage?: number; stats?: { cache?: number; inactive_file?: number } } };
    const usage = stats.memory_stats?.usage ?? 0;
    const cache = stats.memory_stats?.stats?.cache ?? stats.memory_stats?.stats?.inactive_file ?? 0;
    if (usage > 0) out.push(Math.round(((usage - cache) / 1048576) * 10) / 10);
  }
  return out;
}

export interface RefillResult {
  /** K spares handed out at once from a warm pool of K, and refilled. */
  sandboxes: number;
  /** Seconds from the hand-outs until K spares were idle again. */
  seconds: number;
  perSecond: number;
}

export interface RemovalsResult {
  /** The users keep their sandboxes while the pool refills. */
  holding: RefillResult;
  /** The users are done at once: their K sandboxes are removed while the pool refills. */
  removing: RefillResult & { removalsDoneSeconds: number };
}

/**
 * One pool, as a replica has it: K spares handed out at once start K
 * refills; either the K users hold on, or they are done at once and their
 * sandboxes are removed while the refills run. The refill rate of both shows
 * what removals cost the starts.
 */
export async function refillWithRemovals(ctx: PhaseContext, image: string, k: number): Promise<RemovalsResult> {
  const refill = async (releaseAtOnce: boolean): Promise<RefillResult & { removalsDoneSeconds: number }> => {
    const pool = makePool(ctx, image, { enabled: true, minSize: k, maxSize: 2 * k });
    if (!(await pool.whenWarm(180_000))) throw new Error(`pool of ${k} did not fill within 180 s`);
    const t0 = performance.now();
    const leases = await Promise.all(Array.from({ length: k }, () => pool.acquire()));
    const removed = releaseAtOnce ? Promise.all(leases.map((l) => l.release())).then(() => performance.now()) : undefined;
    if (!(await pool.whenWarm(180_000))) throw new Error(`pool of ${k} did not refill within 180 s`);
    const seconds = (performance.now() - t0) / 1000;
    const removalsDone = removed ? await removed : performance.now();
    await Promise.all(leases.map((l) => l.release()));
    await pool.drain(60_000);
    const round = (x: number): number => Math.round(x * 100) / 100;
    return { sandboxes: k, seconds: round(seconds), perSecond: round(k / seconds), removalsDoneSeconds: round((removalsDone - t0) / 1000) };
  };
  const held = await refill(false);
  const removing = await refill(true);
  return { holding: { sandboxes: held.sandboxes, seconds: held.seconds, perSecond: held.perSecond }, removing };
}

export type CallCounts = Partial<Record<EngineCallKind, number>>;

export interface EngineCallsResult {
  perStart: CallCounts;
  perHandOut: CallCounts;
  perRemoval: CallCounts;
}

/** The engine calls of one start, one warm hand-out and one removal, counted on the socket. */
export async function engineCalls(ctx: PhaseContext, image: string, n = 3): Promise<EngineCallsResult> {
  const counter = await startEngineCallCounter(ctx.base.docker.socketPath);
  const runtime = createDockerRuntime({ socketPath: counter.socketPath, logger: ctx.logger });
  const per = (total: Record<EngineCallKind, number>, count: number): CallCounts =>
    Object.fromEntries(Object.entries(total).filter(([, v]) => v > 0).map(([kind, v]) => [kind, Math.round((v / count) * 100) / 100]));
  try {
    // max = min: once every spare is leased no refill can start, so the hand-outs and removals are counted alone.
    const pool = makePool(ctx, image, { enabled: true, minSize: n, maxSize: n }, runtime);
    if (!(await pool.whenWarm(120_000))) throw new Error(`pool of ${n} did not warm within 120 s`);
    const perStart = per(counter.counts(), pool.stats().created);
    counter.reset();
    const leases: Lease[] = [];
    for (let i = 0; i < n; i++) leases.push(await pool.acquire());
    const perHandOut = per(counter.counts(), n);
    counter.reset();
    // Drain: the leases' removals, and no start after them.
    await pool.drain(60_000);
    const perRemoval = per(counter.counts(), n);
    return { perStart, perHandOut, perRemoval };
  } finally {
    await counter.close();
  }
}
