/**
 * npm run bench:mcp [-- --users N] [--reads R] [--waves W] [--workspace-store fs|none] [--overlap] [--url URL] [--json] [--save | --out FILE]
 *
 * N MCP clients (the official SDK, Streamable HTTP; default 20) at the same
 * time against one replica. Each opens a session, makes its first tools/call
 * (write a small file: the user's sandbox is taken from the warm spares), then
 * R calls reading that file back in the sandbox it now holds. The reads start
 * once every user of the wave made their first call and the pool has
 * replaced the spares they took (no start in flight): held-sandbox latency,
 * not the cost of N sandbox starts, which bench:pool measures. --overlap
 * starts each user's reads right after its first call instead, while those
 * starts run (what a replica taking new users sees). Reports, at the
 * client, the first call's latency and the held-sandbox read latency
 * (p50/p95/p99) and the errors. Without --url it starts one replica
 * (`node dist/src/main.js`) with a warm spare per user (POOL_MIN_SIZE = N + 2)
 * and stops it afterwards; with --url it watches no pool (reads start once
 * every first call is done). --waves W runs W such groups of new users one
 * after another, each once the pool holds a spare per user again and has no
 * start or removal in flight, for more first-call samples "while spares
 * last". --workspace-store (default fs) sets the replica's WORKSPACE_STORE:
 * `none` shows what the snapshot after each write adds to a call.
 * Writes the JSON to results/bench/mcp.json (git-ignored), with --save to
 * the tracked bench/results/mcp.json, or to --out FILE.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type Percentiles, percentilesOf, sleep } from '../src/util/async.js';
import { freePort } from '../src/util/free-port.js';
import { machineTicks } from './lib/proc-stat.js';
import { benchResultFileOrExit, shownPath } from './lib/results-path.js';
import { httpOk, spawnProcess, type StartedProcess } from './lib/start-process.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '20' },
    reads: { type: 'string', default: '20' },
    waves: { type: 'string', default: '1' },
    'workspace-store': { type: 'string', default: 'fs' },
    overlap: { type: 'boolean', default: false },
    url: { type: 'string' },
    json: { type: 'boolean', default: false },
    save: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const users = Number(values.users);
const reads = Number(values.reads);
const waves = Number(values.waves);
const workspaceStore = values['workspace-store'];
if (![users, reads, waves].every((n) => Number.isInteger(n) && n >= 1) || !['fs', 'none'].includes(workspaceStore)) {
  process.stderr.write('bench:mcp: --users, --reads and --waves take whole numbers >= 1, --workspace-store fs or none\n');
  process.exit(2);
}
const outFile = benchResultFileOrExit('bench:mcp', 'mcp.json', values);
const say = (line: string): void => void process.stderr.write(`${line}\n`);

let replica: StartedProcess | undefined;
// The replica's workspace snapshots (the write calls save one, as they would in use), thrown away afterwards.
const workspaceDir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-bench-mcp-'));
async function startReplica(): Promise<string> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  replica = spawnProcess({
    name: 'the replica',
    command: process.execPath,
    args: ['dist/src/main.js'],
    // Its users connect with the development identity: .env's AUTH_SECRET (`npm run images`) is the compose stack's.
    env: { ...process.env, AUTH_SECRET: process.env.AUTH_SECRET ?? '', PORT: String(port), HOST: '127.0.0.1', REPLICA_ID: `bench-mcp-${process.pid}`, POOL_MIN_SIZE: String(users + 2), POOL_MAX_SIZE: String(users * 2 + 4), LOG_LEVEL: 'warn', WORKSPACE_STORE: workspaceStore, WORKSPACE_DIR: workspaceDir },
    stdout: 'ignore',
    stderr: 'inherit',
  });
  await replica.waitReady(httpOk(`${url}/ready`), 180_000, 250);
  return url;
}

interface UserOutcome {
  firstCallMs?: number;
  readMs: number[];
  error?: string;
}

/** `firstCallDone` is called once: after the first call, or when it failed; reads wait for `readsMayStart`. */
async function runUser(url: string, n: number, firstCallDone: () => void, readsMayStart: Promise<void>): Promise<UserOutcome> {
  const userId = `bench-mcp-${process.pid}-${n}`;
  // The replica's dev identity (no AUTH_SECRET): the bearer token is the user id.
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${userId}` } } });
  const client = new Client({ name: 'bench-mcp', version: '1.0.0' });
  const outcome: UserOutcome = { readMs: [] };
  try {
    await client.connect(transport);
    let started = performance.now();
    await client.callTool({ name: 'write_file', arguments: { path: '/workspace/bench.txt', content: `small file of ${userId}` } });
    outcome.firstCallMs = performance.now() - started;
    firstCallDone();
    await readsMayStart;
    for (let i = 0; i < reads; i++) {
      started = performance.now();
      const result = await client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/bench.txt' } });
      outcome.readMs.push(performance.now() - started);
      if (result.isError) throw new Error(`read failed: ${JSON.stringify(result.content)}`);
    }
    await transport.terminateSession();
  } catch (err) {
    outcome.error = err instanceof Error ? err.message : String(err);
    // A user whose first call failed still counts as done with it: the others' reads must not wait for it.
    if (outcome.firstCallMs === undefined) firstCallDone();
  } finally {
    await client.close().catch(() => undefined);
  }
  return outcome;
}

interface PoolView {
  idle: number;
  active: number;
  creating: number;
  removing: number;
  spareTarget: number;
  maxPoolSize: number;
}

/**
 * Until `settled` holds for the pool and nothing starts or is being removed:
 * the previous wave's clean-up (its sandboxes' removal, their replacements'
 * starts) must not land on this wave's calls.
 */
async function waitForQuietPool(url: string, what: string, settled: (pool: PoolView) => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const pool = (await (await fetch(`${url}/stats/pool`, { signal: AbortSignal.timeout(5_000) })).json()) as PoolView;
    if (settled(pool) && pool.creating === 0 && pool.removing === 0) return;
    if (Date.now() > deadline) throw new Error(`the pool did not settle (${what}) in 120 s: ${JSON.stringify(pool)}`);
    await sleep(100);
  }
}

/** Every spare taken is replaced (refills wait POOL_REFILL_DELAY_MS, then start): as many idle as the pool aims for, or has room for. */
const refilled = (pool: PoolView): boolean => pool.idle >= Math.min(pool.spareTarget, pool.maxPoolSize - pool.active);

/** One wave of `users` new users at once; with --url (a pool this bench does not know) reads start once every first call is done. */
async function runWave(url: string, wave: number): Promise<UserOutcome[]> {
  const each = (firstCallDone: () => void, readsMayStart: Promise<void>): Promise<UserOutcome[]> =>
    Promise.all(Array.from({ length: users }, (_, i) => runUser(url, wave * users + i, firstCallDone, readsMayStart)));
  if (values.overlap) return each(() => undefined, Promise.resolve());
  let open: () => void = () => undefined;
  const readsMayStart = new Promise<void>((resolve) => (open = resolve));
  let firstCallsLeft = users;
  const firstCallDone = (): void => {
    if (--firstCallsLeft > 0) return;
    if (values.url) return open();
    // A pool that does not settle (a failed start) leaves the reads to run anyway, and says so.
    waitForQuietPool(url, 'spares replaced', refilled).then(open, (err: unknown) => {
      say(`bench:mcp: ${err instanceof Error ? err.message : String(err)}; reading anyway`);
      open();
    });
  };
  return each(firstCallDone, readsMayStart);
}

function summary(xs: number[]): (Percentiles & { n: number }) | null {
  return xs.length === 0 ? null : { ...percentilesOf(xs), n: xs.length };
}

try {
  const url = values.url ?? (await startReplica());
  const outcomes: UserOutcome[] = [];
  const ticksBefore = machineTicks();
  for (let wave = 0; wave < waves; wave++) {
    // A new user takes a warm spare: wait until the pool holds one per user again, and is quiet.
    if (!values.url) await waitForQuietPool(url, `${users} spares`, (pool) => pool.idle >= users);
    say(`bench:mcp: ${users} MCP clients at once against ${url}, ${reads} reads each (wave ${wave + 1} of ${waves})`);
    outcomes.push(...(await runWave(url, wave)));
  }
  const ticksAfter = machineTicks();
  const share = (part: number): number => Math.round((part / Math.max(1, ticksAfter.all - ticksBefore.all)) * 1000) / 1000;
  const errors = outcomes.filter((o) => o.error).map((o) => o.error);
  const firstCalls = outcomes.flatMap((o) => (o.firstCallMs === undefined ? [] : [o.firstCallMs]));
  const result = {
    users,
    readsPerUser: reads,
    waves,
    readsStart: values.overlap ? 'right after the first call, while the pool replaces the spares taken' : 'once the pool replaced the spares taken',
    workspaceStore: values.url ? 'as the replica at --url has it' : workspaceStore,
    firstCallMs: summary(firstCalls),
    // Few enough to keep: the tail of a few dozen samples is a handful of values.
    firstCallSamplesMs: firstCalls.map((ms) => Math.round(ms * 100) / 100),
    heldReadMs: summary(outcomes.flatMap((o) => o.readMs)),
    errors: errors.length,
    errorSamples: errors.slice(0, 5),
    environment: {
      date: new Date().toISOString(),
      cpus: os.cpus().length,
      node: process.version,
      url: values.url ?? 'a replica started by the bench',
      // Over the waves, all cores: how busy the machine was, and how much of it the hypervisor gave to others (steal): runs differ by it.
      machineBusyShare: share(ticksAfter.busy - ticksBefore.busy),
      machineStealShare: share(ticksAfter.steal - ticksBefore.steal),
    },
  };
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  if (values.json) {
    // stdout stays one JSON object; where it went is said on stderr.
    process.stdout.write(`${JSON.stringify(result)}\n`);
    say(`JSON written to ${shownPath(outFile)}`);
  } else {
    const row = (name: string, s: ReturnType<typeof summary>): string => `| ${name} | ${s ? `${s.p50} | ${s.p95} | ${s.p99} | ${s.n}` : '– | – | – | 0'} |`;
    process.stdout.write(
      [
        `MCP gateway benchmark (${users} clients at once, ${waves} wave(s), workspace store ${result.workspaceStore}, ${os.cpus().length} cores)`,
        '',
        '| tools/call | p50 ms | p95 ms | p99 ms | n |',
        '|---|---|---|---|---|',
        row('first call of a new user (warm spare)', result.firstCallMs),
        row('small-file read, held sandbox', result.heldReadMs),
        '',
        `errors: ${result.errors}; machine busy ${(result.environment.machineBusyShare * 100).toFixed(1)}%, of which stolen by the hypervisor ${(result.environment.machineStealShare * 100).toFixed(1)}%`,
        `JSON written to ${shownPath(outFile)}`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await replica?.stop('SIGTERM', 60_000);
  rmSync(workspaceDir, { recursive: true, force: true });
}
