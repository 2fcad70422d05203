/**
 * npm run bench:quota [-- --users N] [--calls N] [--concurrency N] [--json] [--save | --out FILE]
 *
 * The cost of one quota check, as a replica pays it: the Redis store (the
 * Lua script, EVALSHA over one ioredis connection) on a throwaway
 * redis-server on loopback, and the memory store for comparison.
 *   - Redis round trips per check: Redis's own command counts (INFO
 *     commandstats) before and after, over the checks made.
 *   - CPU per check: this process's (process.cpuUsage: ioredis encoding, the
 *     reply's decoding, the store's code) and Redis's (INFO commandstats
 *     usec_per_call of evalsha; INFO cpu for the whole server).
 *   - Latency per check, one at a time (p50/p95/p99, µs), and throughput with
 *     N checks in flight.
 *   - Memory per user in Redis: MEMORY USAGE of one user's hash with every
 *     bucket of every window in use (the bound), and the average over N users
 *     that each made a few calls (the common case).
 * Prints one JSON object (--json) or a summary. Writes the JSON to
 * results/bench/quota.json (git-ignored), with --save to the tracked
 * bench/results/quota.json that SCALABILITY.md links to, or to --out FILE.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createMemoryQuotaStore } from '../src/quota/memory-quota-store.js';
import type { QuotaLimits, QuotaStore } from '../src/quota/quota-store.js';
import { createRedisQuotaStore } from '../src/quota/redis-quota-store.js';
import { freePort } from '../src/util/free-port.js';
import { startRedisServer } from './lib/redis-server.js';
import { benchResultFileOrExit, shownPath, writeResultFile } from './lib/results-path.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1000' },
    calls: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
    save: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const outFile = benchResultFileOrExit('bench:quota', 'quota.json', values);
const users = Number(values.users);
const calls = Number(values.calls);
const concurrency = Number(values.concurrency);
if (![users, calls, concurrency].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write('bench:quota: --users, --calls and --concurrency take positive whole numbers\n');
  process.exit(2);
}
const say = (line: string): void => void process.stderr.write(`[bench:quota] ${line}\n`);

/** The free plan's limits, high enough that no check here is refused: every check counts. */
const LIMITS: QuotaLimits = { hour: 1_000_000, day: 1_000_000, month: 1_000_000 };

function percentilesUs(samplesNs: readonly bigint[]): { p50: number; p95: number; p99: number } {
  const sorted = [...samplesNs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const at = (p: number): number => Number(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0n) / 1000;
  return { p50: Math.round(at(50) * 10) / 10, p95: Math.round(at(95) * 10) / 10, p99: Math.round(at(99) * 10) / 10 };
}

async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const info = await redis.info('commandstats');
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)/gm)) stats.set(m[1] ?? '', { calls: Number(m[2]), usec: Number(m[3]) });
  return stats;
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (k: string): number => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return read('used_cpu_user') + read('used_cpu_sys');
}

/** One check at a time over `calls` checks spread across `users` users: latency and this process's CPU per check. */
async function sequential(store: QuotaStore, prefix: string): Promise<{ latencyUs: ReturnType<typeof percentilesUs>; cpuUsPerCheck: number; checks: number }> {
  const samples: bigint[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < calls; i++) {
    const started = process.hrtime.bigint();
    await store.check(`${prefix}${i % users}`, LIMITS, { count: true });
    samples.push(process.hrtime.bigint() - started);
  }
  const used = process.cpuUsage(cpu);
  return { latencyUs: percentilesUs(samples), cpuUsPerCheck: Math.round(((used.user + used.system) / calls) * 10) / 10, checks: calls };
}

/** `concurrency` checks in flight: checks per second. */
async function throughput(store: QuotaStore, prefix: string): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        const i = next++;
        await store.check(`${prefix}${i % users}`, LIMITS, { count: true });
      }
    }),
  );
  return Math.round(calls / ((performance.now() - started) / 1000));
}

const server = await startRedisServer(await freePort());
const redis = new Redis(server.url);
const admin = new Redis(server.url);
try {
  const store = createRedisQuotaStore({ redis, prefix: 'bench:' });
  // Warm up: the script is loaded (one EVAL after the first NOSCRIPT), connections settle.
  for (let i = 0; i < 200; i++) await store.check(`warm-${i}`, LIMITS, { count: true });

  say(`Redis store: ${calls} checks over ${users} users, one at a time`);
  const statsBefore = await commandStats(admin);
  const cpuBefore = await redisCpuSeconds(admin);
  const seq = await sequential(store, 'seq-');
  const cpuAfter = await redisCpuSeconds(admin);
  const statsAfter = await commandStats(admin);
  // Redis counts its own INFO calls too: those two are left out.
  const delta = [...statsAfter].map(([cmd, s]) => ({ cmd, calls: s.calls - (statsBefore.get(cmd)?.calls ?? 0), usec: s.usec - (statsBefore.get(cmd)?.usec ?? 0) })).filter((d) => d.calls > 0 && d.cmd !== 'info');
  const evalsha = delta.find((d) => d.cmd === 'evalsha') ?? { calls: 0, usec: 0 };
  const commandsPerCheck = delta.reduce((n, d) => n + d.calls, 0) / seq.checks;

  say(`Redis store: ${calls} checks with ${concurrency} in flight`);
  const perSecond = await throughput(store, 'tp-');

  // Memory: one user with every bucket of every window in use (the bound), on a moving clock.
  let clockMs = Date.UTC(2030, 0, 1);
  const boundStore = createRedisQuotaStore({ redis, prefix: 'bound:', now: () => clockMs });
  const unlimited: QuotaLimits = { hour: null, day: null, month: null };
  for (let h = 0; h < 31 * 24; h++) {
    clockMs = Date.UTC(2030, 0, 1) + h * 3_600_000;
    await boundStore.check('u', unlimited, { count: true });
  }
  for (let m = 1; m <= 61; m++) {
    clockMs += 60_000;
    await boundStore.check('u', unlimited, { count: true });
  }
  const boundFields = await admin.hlen('bound:quota:u');
  const boundBytes = Number(await admin.call('MEMORY', 'USAGE', 'bound:quota:u'));
  // The common case: each of `users` users made 5 calls within a minute.
  const typicalStore = createRedisQuotaStore({ redis, prefix: 'typ:' });
  for (let u = 0; u < users; u++) for (let c = 0; c < 5; c++) await typicalStore.check(`u${u}`, LIMITS, { count: true });
  let typicalBytes = 0;
  for (let u = 0; u < users; u++) typicalBytes += Number(await admin.call('MEMORY', 'USAGE', `typ:quota:u${u}`));

  say(`memory store: ${calls} checks, one at a time`);
  const memory = createMemoryQuotaStore();
  const memorySeq = await sequential(memory, 'm-');
  await memory.close();

  const result = {
    machine: { date: new Date().toISOString(), cpus: os.cpus().length, node: process.version },
    users,
    checks: calls,
    redis: {
      roundTripsPerCheck: Math.round((evalsha.calls / seq.checks) * 1000) / 1000,
      commandsPerCheck: Math.round(commandsPerCheck * 1000) / 1000,
      latencyUs: seq.latencyUs,
      appCpuUsPerCheck: seq.cpuUsPerCheck,
      redisCpuUsPerCheck: Math.round((evalsha.usec / Math.max(1, evalsha.calls)) * 10) / 10,
      redisServerCpuUsPerCheck: Math.round((((cpuAfter - cpuBefore) * 1e6) / seq.checks) * 10) / 10,
      checksPerSecond: { concurrency, value: perSecond },
      memoryPerUserBytes: { bound: boundBytes, boundCounters: boundFields, typical: Math.round(typicalBytes / users), typicalCallsPerUser: 5 },
    },
    memory: { latencyUs: memorySeq.latencyUs, appCpuUsPerCheck: memorySeq.cpuUsPerCheck },
  };
  writeResultFile(outFile, result);
  say(`JSON written to ${shownPath(outFile)}`);
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    const r = result.redis;
    process.stdout.write(
      [
        `quota check, Redis store: ${r.roundTripsPerCheck} round trip(s) and ${r.commandsPerCheck} Redis command(s) per check`,
        `  latency p50 ${r.latencyUs.p50} µs, p95 ${r.latencyUs.p95} µs, p99 ${r.latencyUs.p99} µs (one at a time, loopback)`,
        `  CPU per check: ${r.appCpuUsPerCheck} µs in the replica, ${r.redisCpuUsPerCheck} µs in Redis (the script; ${r.redisServerCpuUsPerCheck} µs for the whole server)`,
        `  ${r.checksPerSecond.value} checks/s with ${concurrency} in flight`,
        `  memory per user: ${r.memoryPerUserBytes.typical} B after 5 calls, at most ${r.memoryPerUserBytes.bound} B (${r.memoryPerUserBytes.boundCounters} counters: every bucket in use)`,
        `memory store: p50 ${result.memory.latencyUs.p50} µs, ${result.memory.appCpuUsPerCheck} µs CPU per check`,
      ].join('\n') + '\n',
    );
  }
} finally {
  redis.disconnect();
  admin.disconnect();
  await server.process.stop('SIGKILL', 5_000);
}
