/**
 * npm run bench:chat [-- --users N] [--url URL] [--json] [--save | --out FILE]
 *
 * N users (default 50) each run the seed scenario once, all at the same time,
 * against one replica: connect, "List all files in /workspace", approve the
 * tool call as soon as it arrives, wait for message:done. Reports time from
 * `message` to the first tool:result and to message:done (p50/p95/p99) and
 * the error count. Without --url it starts one replica (`node dist/src/main.js`,
 * POOL_MIN_SIZE from the environment, default 10) and stops it afterwards.
 * Writes the JSON to results/bench/chat.json (git-ignored), with --save to
 * the tracked bench/results/chat.json, or to --out FILE.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../src/protocol/events.js';
import { percentilesOf } from '../src/util/async.js';
import { freePort } from '../src/util/free-port.js';
import { benchResultFileOrExit, shownPath, writeResultFile } from './lib/results-path.js';
import { httpOk, spawnProcess, type StartedProcess } from './lib/start-process.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '50' },
    url: { type: 'string' },
    json: { type: 'boolean', default: false },
    save: { type: 'boolean', default: false },
    out: { type: 'string' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
});
const users = Number(values.users);
const timeoutMs = Number(values['timeout-ms']);
if (!Number.isInteger(users) || users < 1) {
  process.stderr.write('bench:chat: --users takes a whole number >= 1\n');
  process.exit(2);
}
const outFile = benchResultFileOrExit('bench:chat', 'chat.json', values);
const say = (line: string): void => void process.stderr.write(`${line}\n`);

let replica: StartedProcess | undefined;
async function startReplica(): Promise<string> {
  const port = await freePort();
  const minSize = process.env.POOL_MIN_SIZE ?? '10';
  const url = `http://127.0.0.1:${port}`;
  // Known before it is ready, so that Ctrl-C during the warm-up stops it too.
  replica = spawnProcess({
    name: 'the replica',
    command: process.execPath,
    args: ['dist/src/main.js'],
    // Its users connect with the development identity: .env's AUTH_SECRET (`npm run images`) is the compose stack's.
    env: { ...process.env, AUTH_SECRET: process.env.AUTH_SECRET ?? '', PORT: String(port), HOST: '127.0.0.1', REPLICA_ID: `bench-chat-${process.pid}`, POOL_MIN_SIZE: minSize, LOG_LEVEL: 'warn' },
    stdout: 'ignore',
    stderr: 'inherit',
  });
  await replica.waitReady(httpOk(`${url}/ready`), 120_000, 250);
  return url;
}

async function stopReplica(): Promise<void> {
  // It drains a warm pool of POOL_MIN_SIZE sandboxes first.
  await replica?.stop('SIGTERM', 60_000);
}

interface Outcome {
  ok: boolean;
  error?: string;
  firstResultMs?: number;
  doneMs?: number;
}

function runUser(url: string, n: number): Promise<Outcome> {
  const userId = `bench-${process.pid}-${n}`;
  return new Promise<Outcome>((resolve) => {
    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { auth: { userId }, query: { uid: userId }, transports: ['websocket'], reconnection: false, forceNew: true });
    let sentAt = 0;
    let requestId: string | undefined;
    let firstResultMs: number | undefined;
    const finish = (outcome: Outcome): void => {
      clearTimeout(timer);
      socket.close();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ ok: false, error: `TIMEOUT after ${timeoutMs} ms` }), timeoutMs);
    socket.on('connect_error', (err) => finish({ ok: false, error: `connect_error ${err.message}` }));
    socket.on('tool:request', (p) => {
      if (p.requestId === requestId || requestId === undefined) socket.emit('tool:approval', { callId: p.callId, approved: true });
    });
    socket.on('tool:result', (p) => {
      if (p.requestId !== requestId || firstResultMs !== undefined) return;
      firstResultMs = performance.now() - sentAt;
      if (!p.ok) finish({ ok: false, error: 'tool:result not ok' });
    });
    socket.on('message:done', (p) => {
      if (p.requestId === requestId) finish({ ok: true, firstResultMs, doneMs: performance.now() - sentAt });
    });
    socket.on('request:error', (p) => {
      if (p.requestId === requestId) finish({ ok: false, error: p.error.code });
    });
    socket.on('connect', () => {
      sentAt = performance.now();
      socket.emit('message', 'List all files in /workspace', (ack) => {
        if (ack.ok) requestId = ack.requestId;
        else finish({ ok: false, error: ack.error.code });
      });
    });
  });
}

process.once('SIGINT', () => void stopReplica().then(() => process.exit(130)));
try {
  const url = values.url ?? (await startReplica());
  say(`bench:chat: ${users} concurrent users against ${url}`);
  const started = performance.now();
  const outcomes = await Promise.all(Array.from({ length: users }, (_, i) => runUser(url, i)));
  const wallSeconds = (performance.now() - started) / 1000;
  const ok = outcomes.filter((o) => o.ok);
  const errors = outcomes.filter((o) => !o.ok);
  const errorCodes: Record<string, number> = {};
  for (const e of errors) errorCodes[e.error ?? '?'] = (errorCodes[e.error ?? '?'] ?? 0) + 1;
  const pool = (await fetch(`${url}/stats/pool`).then((r) => r.json(), () => null)) as { acquireLatencyMs?: unknown; createLatencyMs?: unknown } | null;
  const result = {
    users,
    completed: ok.length,
    errors: errors.length,
    errorCodes,
    firstToolResultMs: percentilesOf(ok.flatMap((o) => (o.firstResultMs === undefined ? [] : [o.firstResultMs]))),
    doneMs: percentilesOf(ok.flatMap((o) => (o.doneMs === undefined ? [] : [o.doneMs]))),
    wallSeconds: Math.round(wallSeconds * 100) / 100,
    poolAcquireMs: pool?.acquireLatencyMs ?? null,
    environment: { date: new Date().toISOString(), cpus: os.cpus().length, node: process.version, poolMinSize: values.url ? null : (process.env.POOL_MIN_SIZE ?? '10') },
  };
  writeResultFile(outFile, result);
  if (values.json) {
    // stdout stays one JSON object; where it went is said on stderr.
    process.stdout.write(`${JSON.stringify(result)}\n`);
    say(`JSON written to ${shownPath(outFile)}`);
  } else {
    const row = (name: string, s: { p50: number | null; p95: number | null; p99: number | null }): string =>
      `| ${name.padEnd(18)} | ${String(s.p50).padStart(8)} | ${String(s.p95).padStart(8)} | ${String(s.p99).padStart(8)} |`;
    process.stdout.write(
      [
        `chat benchmark: ${users} concurrent users, seed scenario, auto-approval (${os.cpus().length} cores)`,
        '',
        '| from `message` to  |   p50 ms |   p95 ms |   p99 ms |',
        '|--------------------|----------|----------|----------|',
        row('first tool:result', result.firstToolResultMs),
        row('message:done', result.doneMs),
        '',
        `completed ${ok.length}/${users}, errors ${errors.length}${errors.length ? ` ${JSON.stringify(errorCodes)}` : ''}, wall ${result.wallSeconds} s`,
        `pool acquire on the replica: ${JSON.stringify(result.poolAcquireMs)}`,
        `JSON written to ${shownPath(outFile)}`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await stopReplica();
}
