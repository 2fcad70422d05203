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
 *   (to cut a --cpu-prof profile to a window).
 * Not a product entry point: the bench starts it and stops it (SIGTERM).
 */
import { createSandpool } from '../../src/app/create-sandpool.js';
import { loadConfig } from '../../src/config/config.js';
import { errorMessage } from '../../src/errors.js';

/** bench -> replica */
export type BenchRequest =
  | { id: number; op: 'direct'; users: string[]; calls: number; tool: string; args: Record<string, unknown> }
  | { id: number; op: 'cpu' }
  | { id: number; op: 'release'; users: string[] };

/** replica -> bench */
export type BenchReply =
  | { op: 'listening'; url: string }
  | { id: number; op: 'direct'; ms: number[][]; errors: string[] }
  | { id: number; op: 'cpu'; userUs: number; systemUs: number; monotonicUs: number }
  | { id: number; op: 'release' }
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

/** `calls` calls, one after another, in the sandbox the user holds here (they made an MCP call before). */
async function direct(user: string, calls: number, tool: string, args: Record<string, unknown>): Promise<number[]> {
  const presence = app.presences.get(user);
  if (!presence) throw new Error(`user ${user} is not present on this replica (make an MCP call first)`);
  // Busy, as the gateway's own calls make it: the idle release waits.
  const done = presence.begin();
  try {
    const { lease } = await app.leases.lease(presence);
    // The process runtime roots a sandbox elsewhere than /workspace.
    const inSandbox = Object.fromEntries(Object.entries(args).map(([k, v]) => [k, typeof v === 'string' && v.startsWith('/workspace') ? lease.sandbox.workspaceDir + v.slice('/workspace'.length) : v]));
    const ms: number[] = [];
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      const result = await lease.callTool(tool, inSandbox);
      ms.push(performance.now() - started);
      if (result.isError) throw new Error(`${tool} failed in ${user}'s sandbox: ${JSON.stringify(result.content).slice(0, 200)}`);
    }
    return ms;
  } finally {
    done();
  }
}

process.on('message', (request: BenchRequest) => {
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
