/**
 * npm run bench:mcp [-- --users N] [--reads R] [--waves W] [--workspace-store fs|none] [--url URL] [--json] [--out FILE]
 *
 * N MCP clients (the official SDK, Streamable HTTP; default 20) at the same
 * time against one replica. Each opens a session, makes its first tools/call
 * (write a small file: the user's sandbox is taken from the warm spares), then
 * R calls reading that file back in the sandbox it now holds. Reports, at the
 * client, the first call's latency and the held-sandbox read latency
 * (p50/p95/p99) and the errors. Without --url it starts one replica
 * (`node dist/src/main.js`) with a warm spare per user (POOL_MIN_SIZE = N + 2)
 * and stops it afterwards. --waves W runs W such groups of new users one
 * after another, each once the pool holds a spare per user again and has
 * no start or removal in flight, for more first-call samples "while spares
 * last". --workspace-store (default fs)
 * sets the replica's WORKSPACE_STORE: `none` shows what the snapshot after
 * each write adds to a call.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { percentilesOf, type Percentiles } from '../src/util/async.js';
import { freePort } from '../src/util/free-port.js';
import { httpOk, spawnProcess, type StartedProcess } from './lib/start-process.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '20' },
    reads: { type: 'string', default: '20' },
    waves: { type: 'string', default: '1' },
    'workspace-store': { type: 'string', default: 'fs' },
    url: { type: 'string' },
    json: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results/mcp.json' },
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

async function runUser(url: string, n: number): Promise<UserOutcome> {
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
    for (let i = 0; i < reads; i++) {
      started = performance.now();
      const result = await client.callTool({ name: 'read_text_file', arguments: { path: '/workspace/bench.txt' } });
      outcome.readMs.push(performance.now() - started);
      if (result.isError) throw new Error(`read failed: ${JSON.stringify(result.content)}`);
    }
    await transport.terminateSession();
  } catch (err) {
    outcome.error = err instanceof Error ? err.message : String(err);
  } finally {
    await client.close().catch(() => undefined);
  }
  return outcome;
}

/**
 * Until the pool holds a warm spare per user and nothing starts or is being
 * removed: the previous wave's clean-up (its sandboxes' removal, their
 * replacements' starts) must not land on this wave's first calls.
 */
async function waitForQuietPool(url: string, spares: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const stats = (await (await fetch(`${url}/stats/pool`)).json()) as { idle?: number; creating?: number; removing?: number };
    if ((stats.idle ?? 0) >= spares && stats.creating === 0 && stats.removing === 0) return;
    if (Date.now() > deadline) throw new Error(`the pool did not settle with ${spares} spares in 120 s (${JSON.stringify(stats)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function summary(xs: number[]): (Percentiles & { n: number }) | null {
  return xs.length === 0 ? null : { ...percentilesOf(xs), n: xs.length };
}

try {
  const url = values.url ?? (await startReplica());
  const outcomes: UserOutcome[] = [];
  for (let wave = 0; wave < waves; wave++) {
    // A new user takes a warm spare: wait until the pool holds one per user again, and is quiet.
    if (!values.url) await waitForQuietPool(url, users);
    say(`bench:mcp: ${users} MCP clients at once against ${url}, ${reads} reads each (wave ${wave + 1} of ${waves})`);
    outcomes.push(...(await Promise.all(Array.from({ length: users }, (_, n) => runUser(url, wave * users + n)))));
  }
  const errors = outcomes.filter((o) => o.error).map((o) => o.error);
  const result = {
    users,
    readsPerUser: reads,
    waves,
    workspaceStore: values.url ? 'as the replica at --url has it' : workspaceStore,
    firstCallMs: summary(outcomes.flatMap((o) => (o.firstCallMs === undefined ? [] : [o.firstCallMs]))),
    heldReadMs: summary(outcomes.flatMap((o) => o.readMs)),
    errors: errors.length,
    errorSamples: errors.slice(0, 5),
    environment: { date: new Date().toISOString(), cpus: os.cpus().length, node: process.version, url: values.url ?? 'a replica started by the bench' },
  };
  mkdirSync(path.dirname(values.out), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
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
        `errors: ${result.errors}`,
        `JSON written to ${values.out}`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await replica?.stop('SIGTERM', 60_000);
  rmSync(workspaceDir, { recursive: true, force: true });
}
