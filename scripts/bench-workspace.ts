/**
 * npm run bench:workspace [-- --samples N] [--store fs|redis] [--json] [--save | --out FILE]
 *
 * Snapshot and restore of a user's /workspace at 1 MiB and 10 MiB of files,
 * through the same path a replica uses (the sandbox's in-band channel, then
 * the store): a sandbox from the pool is filled over MCP (1 MiB files, of
 * real source code and of random base64 text: see contentOf), snapshotted
 * (pack + store), and restored into another warm sandbox (load + unpack),
 * N times each. Reports p50/p95/p99 and the compressed size, i.e. the
 * storage cost per user. The store is fs in a temp dir, or Redis on a
 * throwaway redis-server (--store redis). Writes the JSON to
 * results/bench/workspace.json (git-ignored), with --save to the tracked
 * bench/results/workspace.json, or to --out FILE.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/logger.js';
import { createContainerPool, type ContainerPool } from '../src/pool/container-pool.js';
import type { Lease } from '../src/pool/types.js';
import { selectRuntime } from '../src/runtime/select-runtime.js';
import { percentilesOf, type Percentiles } from '../src/util/async.js';
import { freePort } from '../src/util/free-port.js';
import { createFsWorkspaceStore } from '../src/workspace/fs-store.js';
import { createRedisWorkspaceStore } from '../src/workspace/redis-store.js';
import type { WorkspaceStore } from '../src/workspace/workspace-store.js';
import { createWorkspaces } from '../src/workspace/workspaces.js';
import { startRedisServer, type RedisServerProcess } from './lib/redis-server.js';
import { benchResultFileOrExit, shownPath } from './lib/results-path.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '20' },
    store: { type: 'string', default: 'fs' },
    json: { type: 'boolean', default: false },
    save: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const samples = Number(values.samples);
if (!Number.isInteger(samples) || samples < 1 || !['fs', 'redis'].includes(values.store)) {
  process.stderr.write('bench:workspace: --samples takes a whole number >= 1, --store fs or redis\n');
  process.exit(2);
}
const outFile = benchResultFileOrExit('bench:workspace', 'workspace.json', values);
const say = (line: string): void => void process.stderr.write(`${line}\n`);
const MIB = 1_048_576;

const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn', REPLICA_ID: `bench-ws-${process.pid}`, POOL_MIN_SIZE: '3', POOL_MAX_SIZE: '8' });
const logger = createLogger({ level: 'warn' });
const runtime = await selectRuntime({ mode: config.pool.runtime, production: false, dockerSocket: config.docker.socketPath, customSpec: [], logger });

let redis: RedisServerProcess | undefined;
let client: Redis | undefined;
const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-bench-ws-'));
async function makeStore(): Promise<WorkspaceStore> {
  if (values.store === 'fs') return createFsWorkspaceStore({ dir });
  redis = await startRedisServer(await freePort());
  client = new Redis(redis.url);
  return createRedisWorkspaceStore({ redis: client, prefix: 'bench:', ttlMs: 3_600_000 });
}

/**
 * File contents of a workspace, 1 MiB each: `text` is real source code (this
 * checkout's node_modules JavaScript, in a fixed order: what a coding
 * workspace holds), `random` is random base64 text, which no compressor
 * shrinks below 3/4 (the worst case for size, and for the bytes a restore
 * moves).
 */
function contentOf(kind: 'text' | 'random', mib: number): string[] {
  if (kind === 'random') return Array.from({ length: mib }, () => randomBytes(Math.ceil((MIB * 3) / 4)).toString('base64').slice(0, MIB));
  const parts: Buffer[] = [];
  let bytes = 0;
  function walk(dir: string): void {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (bytes >= mib * MIB) return;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.js') && !entry.name.endsWith('.min.js')) {
        const data = readFileSync(full);
        parts.push(data);
        bytes += data.length;
      }
    }
  }
  walk(path.resolve('node_modules'));
  if (bytes < mib * MIB) throw new Error(`node_modules holds only ${bytes} bytes of JavaScript`);
  const all = Buffer.concat(parts);
  // ASCII only, so that 1 MiB of characters is 1 MiB on disk.
  for (let i = 0; i < all.length; i++) if ((all[i] ?? 0) > 0x7f) all[i] = 0x3f;
  return Array.from({ length: mib }, (_, i) => all.subarray(i * MIB, (i + 1) * MIB).toString('latin1'));
}

/** Writes these files (1 MiB each) into the sandbox over MCP. */
async function fill(lease: Lease, files: string[]): Promise<void> {
  for (const [i, content] of files.entries()) {
    const result = await lease.callTool('write_file', { path: `${lease.sandbox.workspaceDir}/file-${i}.txt`, content }, { timeoutMs: 60_000 });
    if (result.isError) throw new Error(`could not fill the workspace: ${JSON.stringify(result.content).slice(0, 200)}`);
  }
}

const pool: ContainerPool = createContainerPool({ runtime, pool: config.pool, sandbox: { ...config.sandbox, workspaceMb: 64 }, replicaId: config.server.replicaId, logger });
const store = await makeStore();
const workspaces = createWorkspaces({ store, maxBytes: 32 * MIB, timeoutMs: 60_000, logger, observer: { saved: () => undefined, restored: () => undefined } });
pool.start();
try {
  if (!(await pool.whenWarm(120_000))) throw new Error('the pool did not warm');
  const sizes = [1, 10];
  const results: Record<string, unknown> = {};
  for (const [mib, content] of sizes.flatMap((m) => (['text', 'random'] as const).map((c) => [m, c] as const))) {
    say(`bench:workspace: ${mib} MiB of ${content}, ${samples} snapshots and restores (${runtime.kind} runtime, ${store.kind} store)`);
    const source = await pool.acquire();
    if (!source.sandbox.workspace) throw new Error(`the sandbox image (${config.pool.image}) offers no workspace snapshots`);
    await fill(source, contentOf(content, mib));
    const user = `bench-${mib}-${content}`;
    const snapshotMs: number[] = [];
    const restoreMs: number[] = [];
    let archiveBytes = 0;
    for (let i = 0; i < samples; i++) {
      workspaces.markChanged(source.sandbox);
      let started = performance.now();
      const saved = await workspaces.save(user, source.sandbox);
      snapshotMs.push(performance.now() - started);
      if (saved.kind !== 'saved') throw new Error(`snapshot ${i}: ${JSON.stringify(saved)}`);
      archiveBytes = saved.archiveBytes;
      const target = await pool.acquire();
      started = performance.now();
      const restored = await workspaces.restore(user, target.sandbox);
      restoreMs.push(performance.now() - started);
      if (restored.kind !== 'restored' || restored.sizeBytes !== mib * MIB) throw new Error(`restore ${i}: ${JSON.stringify(restored)}`);
      await target.release();
    }
    await source.release();
    // What one user's snapshot really takes in Redis (value, key, hash and allocator overhead): the basis of the memory math.
    const redisBytes = client ? Number(await client.call('MEMORY', 'USAGE', `bench:workspace:${user}`, 'SAMPLES', '0')) : undefined;
    results[`${mib} MiB ${content}`] = { snapshotMs: percentilesOf(snapshotMs), restoreMs: percentilesOf(restoreMs), archiveBytes, ratio: Math.round((archiveBytes / (mib * MIB)) * 100) / 100, ...(redisBytes === undefined ? {} : { redisBytes }) };
  }
  const output = { samples, store: store.kind, runtime: runtime.kind, image: config.pool.image, results, environment: { date: new Date().toISOString(), cpus: os.cpus().length, node: process.version } };
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(output, null, 2)}\n`);
  if (values.json) {
    // stdout stays one JSON object; where it went is said on stderr.
    process.stdout.write(`${JSON.stringify(output)}\n`);
    say(`JSON written to ${shownPath(outFile)}`);
  } else {
    const lines = ['| workspace | snapshot p50 / p95 / p99 ms | restore p50 / p95 / p99 ms | compressed | in Redis |', '|---|---|---|---|---|'];
    for (const [name, r] of Object.entries(results) as Array<[string, { snapshotMs: Percentiles; restoreMs: Percentiles; archiveBytes: number; redisBytes?: number }]>) {
      const inRedis = r.redisBytes === undefined ? '–' : `${(r.redisBytes / MIB).toFixed(2)} MiB`;
      lines.push(`| ${name} | ${r.snapshotMs.p50} / ${r.snapshotMs.p95} / ${r.snapshotMs.p99} | ${r.restoreMs.p50} / ${r.restoreMs.p95} / ${r.restoreMs.p99} | ${(r.archiveBytes / MIB).toFixed(2)} MiB | ${inRedis} |`);
    }
    process.stdout.write(`${lines.join('\n')}\n\nJSON written to ${shownPath(outFile)}\n`);
  }
} finally {
  await pool.drain(30_000);
  await store.close();
  client?.disconnect();
  await redis?.process.stop('SIGKILL', 5_000);
  rmSync(dir, { recursive: true, force: true });
}
