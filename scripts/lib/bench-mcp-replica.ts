/**
 * A replica for bench:mcp: `node dist/src/main.js`'s replica (the same
 * config, composition root and shutdown), forked with an IPC channel through
 * which the bench
 * - runs tool calls in users' own sandboxes directly, from this process, past
 *   the gateway (the stdio MCP client the replica holds for each sandbox):
 *   the baseline the gateway's latency is compared with;
 * - lets users go (their sandboxes with them) once they are done, as an
 *   idle timeout would, without waiting for it;
 * - reads this process's CPU time (process.cpuUsage) and its monotonic clock
 *   (to cut a --cpu-prof profile to a window);
 * - serves the floor of any HTTP front for the call: a bare node:http server
 *   (no auth, no router, no MCP, no limits) whose POST runs the same direct
 *   call and answers its result as JSON. What (b) costs beyond it is the
 *   gateway's own; what it costs beyond (a) is the HTTP hop's.
 * Not a product entry point: the bench starts it and stops it (SIGTERM).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSandpool } from '../../src/app/create-sandpool.js';
import { mapPaths } from '../../src/chat/sandbox-tools.js';
import type { CallToolResult } from '../../src/protocol/mcp-types.js';
import { loadConfig } from '../../src/config/config.js';
import { errorMessage } from '../../src/errors.js';

/** bench -> replica */
export type BenchRequest =
  | { id: number; op: 'direct'; users: string[]; calls: number; tool: string; args: Record<string, unknown> }
  | { id: number; op: 'cpu' }
  | { id: number; op: 'floor'; tool: string; args: Record<string, unknown> }
  | { id: number; op: 'release'; users: string[] };

/** replica -> bench */
export type BenchReply =
  | { op: 'listening'; url: string }
  | { id: number; op: 'direct'; ms: number[][]; errors: string[] }
  | { id: number; op: 'cpu'; userUs: number; systemUs: number; monotonicUs: number }
  | { id: number; op: 'release' }
  | { id: number; op: 'floor'; url: string }
  | { id: number; op: 'error'; message: string };

const send = (reply: BenchReply): void => void process.send?.(reply);
if (!process.send) {
  process.stderr.write('bench-mcp-replica: run by bench:mcp (it needs an IPC channel)\n');
  process.exit(2);
}

const app = await createSandpool(loadConfig(process.env));
let stopping = false;
const stop = (reason: string): void => {
  if (stopping) return;
  stopping = true;
  void app.stop(reason).finally(() => process.exit(0));
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
process.on('disconnect', () => stop('the bench went away'));

/**
 * `work` with the sandbox the user holds here (they made an MCP call before) and its call, the tool's
 * paths mapped as the replica maps them (the process runtime roots a sandbox elsewhere than /workspace).
 * Busy meanwhile, as the gateway's own calls make it: the idle release waits.
 */
async function inHeldSandbox<T>(user: string, tool: string, args: Record<string, unknown>, work: (call: () => Promise<CallToolResult>) => Promise<T>): Promise<T> {
  const presence = app.presences.get(user);
  if (!presence) throw new Error(`user ${user} is not present on this replica (make an MCP call first)`);
  const done = presence.begin();
  try {
    const { lease } = await app.leases.lease(presence);
    const inSandbox = mapPaths(lease.sandbox.workspaceDir).args(args);
    return await work(() => lease.callTool(tool, inSandbox));
  } finally {
    done();
  }
}

/** `calls` calls, one after another, in the sandbox the user holds here. */
function direct(user: string, calls: number, tool: string, args: Record<string, unknown>): Promise<number[]> {
  return inHeldSandbox(user, tool, args, async (call) => {
    const ms: number[] = [];
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      const result = await call();
      ms.push(performance.now() - started);
      if (result.isError) throw new Error(`${tool} failed in ${user}'s sandbox: ${JSON.stringify(result.content).slice(0, 200)}`);
    }
    return ms;
  });
}

/** The bare HTTP floor's server: POST /<user> runs one call in that user's held sandbox. */
async function startFloor(tool: string, args: Record<string, unknown>): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      inHeldSandbox(decodeURIComponent((req.url ?? '/').slice(1)), tool, args, (call) => call()).then(
        (result) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: 1, result })),
        (err: unknown) => res.writeHead(500).end(errorMessage(err)),
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.on('disconnect', () => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

process.on('message', (request: BenchRequest) => {
  if (request.op === 'floor') {
    void startFloor(request.tool, request.args).then(
      (url) => send({ id: request.id, op: 'floor', url }),
      (err: unknown) => send({ id: request.id, op: 'error', message: errorMessage(err) }),
    );
    return;
  }
  if (request.op === 'cpu') {
    const { user, system } = process.cpuUsage();
    send({ id: request.id, op: 'cpu', userUs: user, systemUs: system, monotonicUs: Number(process.hrtime.bigint() / 1000n) });
    return;
  }
  if (request.op === 'release') {
    void Promise.all(request.users.map((u) => app.presences.releaseIfUnheld(u))).then(
      () => send({ id: request.id, op: 'release' }),
      (err: unknown) => send({ id: request.id, op: 'error', message: errorMessage(err) }),
    );
    return;
  }
  const errors: string[] = [];
  void Promise.all(
    request.users.map((u) =>
      direct(u, request.calls, request.tool, request.args).catch((err: unknown) => {
        errors.push(errorMessage(err));
        return [];
      }),
    ),
  ).then(
    (ms) => send({ id: request.id, op: 'direct', ms, errors }),
    (err: unknown) => send({ id: request.id, op: 'error', message: errorMessage(err) }),
  );
});

send({ op: 'listening', url: app.url });
