/**
 * A user inside a stack's network, for the swarm test (nothing outside the
 * stack's overlay network reaches it here: no iptables, so no published ports
 * or virtual IPs). Runs as a one-shot service with the repository mounted at
 * /repo:
 *   docker service create --network sandpool_default --restart-condition none \
 *     --mount type=bind,source=$PWD,target=/repo,readonly -e STACK_URL=... -e TOKEN=... -e OPERATOR_TOKEN=... -e USER_ID=... \
 *     <app image> node /repo/dist/test/support/stack-client.js
 * and prints one JSON line per step, which the test reads with `docker service logs`:
 *   cluster           the cluster view through nginx once every replica is ready
 *   seed              the seed flow (write, list, read) and where it ran
 *   ready-for-update  the test may now update the app service
 *   done              once every replica it first saw is replaced: its reconnects, and the same flow again
 *   failed            what went wrong (exit 1)
 */
import { converse } from './conversation.js';
import type { ClusterStats } from '../../src/http/http-app.js';
import type { SessionInfo } from '../../src/protocol/events.js';
import { connectUser, nextEvent, waitFor } from './helpers.js';

const url = process.env.STACK_URL ?? 'http://tasks.nginx:80';
const token = process.env.TOKEN ?? '';
/** For the cluster view (/stats/ needs an operator token). */
const operatorToken = process.env.OPERATOR_TOKEN ?? '';
const user = process.env.USER_ID ?? 'swarm-user';
const replicas = Number(process.env.REPLICAS ?? '4');
const say = (step: string, data: Record<string, unknown> = {}): void => void process.stdout.write(`${JSON.stringify({ step, ...data })}\n`);

async function clusterView(): Promise<ClusterStats> {
  const res = await fetch(`${url}/stats/pool?scope=cluster`, { headers: { authorization: `Bearer ${operatorToken}` }, signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`cluster view: HTTP ${res.status}`);
  return (await res.json()) as ClusterStats;
}

/** The seed flow: write a file, list the workspace, read the file back. */
async function seedFlow(socket: Parameters<typeof converse>[0], file: string, text: string): Promise<{ wrote: string; listed: string; read: string }> {
  const wrote = await converse(socket, `write "${text}" to /workspace/${file}`);
  const listed = await converse(socket, 'List all files in /workspace');
  const read = await converse(socket, `read /workspace/${file}`);
  return { wrote: wrote.contents[0] ?? '', listed: listed.contents[0] ?? '', read: read.contents[0] ?? '' };
}

try {
  const first = await waitFor('every replica ready behind nginx', async () => {
    const view = await clusterView();
    return view.replicas.length === replicas && view.replicas.every((r) => r.ready) ? view : undefined;
  }, 180_000, 1_000);
  const initial = new Set(first.replicas.map((r) => r.replica));
  say('cluster', { replicas: [...initial] });

  const socket = await connectUser(url, { token }, { uid: user, reconnection: true });
  const sessions: SessionInfo[] = [await nextEvent(socket, 'session')];
  let disconnects = 0;
  socket.on('disconnect', () => disconnects++);
  socket.on('session', (s) => sessions.push(s));
  say('seed', { replica: sessions[0]?.replica, sessionId: sessions[0]?.sessionId, ...(await seedFlow(socket, 'seed.txt', 'seeded in the swarm')) });

  say('ready-for-update');
  await waitFor('every replica replaced by the rolling update', async () => {
    const view = await clusterView().catch(() => undefined);
    return view !== undefined && view.replicas.length === replicas && view.replicas.every((r) => r.ready && !initial.has(r.replica));
  }, 600_000, 2_000);
  await waitFor('the socket to be connected', () => socket.connected, 60_000, 200);
  const after = await seedFlow(socket, 'after.txt', 'after the update');
  say('done', { disconnects, sessions, after, replicas: (await clusterView()).replicas.map((r) => r.replica) });
  socket.close();
  process.exit(0);
} catch (err) {
  say('failed', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
