/**
 * For the lab test (test/deploy/lab.test.ts): the lab's .lab/env, the stack's
 * views through nginx on the manager's netns address, users, and which
 * sandbox on which node's engine holds whose files.
 */
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { LAB_ENV_FILE, labNode, type LabNode } from '../../scripts/lib/lab-layout.js';
import { nodeDocker } from '../../scripts/lib/lab-node.js';
import { signOperatorToken } from '../../src/auth/operator-token.js';
import { sleep } from '../../src/util/async.js';
import { APP_LABEL_VALUE, LABELS } from '../../src/runtime/types.js';
import { stackSecrets } from './stack.js';
import { connectUser, nextEvent, type ClientSocket } from './helpers.js';
import { makeToken } from './tokens.js';
import type { SessionInfo } from '../../src/protocol/events.js';

export function readLabEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parseEnv(readFileSync(LAB_ENV_FILE, 'utf8')))) if (v !== undefined) out[k] = v;
  return out;
}

export interface ReplicaView {
  replica: string;
  node?: string;
  ready: boolean;
  sessions?: number;
  maxSessions?: number;
  draining?: boolean;
}

/** The cluster view through nginx (published on the manager's netns address). */
export async function clusterView(url: string): Promise<ReplicaView[]> {
  // /stats/ needs an operator token: signed with the stack's OPERATOR_SECRET (.secrets/, from npm run images).
  const token = await signOperatorToken({ secret: stackSecrets().OPERATOR_SECRET, subject: 'lab-test', ttlS: 300 });
  const res = await fetch(`${url}/stats/pool?scope=cluster`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`cluster view: HTTP ${res.status}`);
  return ((await res.json()) as { replicas: ReplicaView[] }).replicas;
}

/**
 * The replica nginx sends this user to while all are up (its home): /ready is
 * routed by the same ?uid= hash as the Socket.IO handshake, but never passed
 * on for a full replica.
 */
export async function homeOf(url: string, uid: string): Promise<string> {
  // nginx reloads when the replicas' addresses change (nginx/entrypoint.sh): a connection it closes then is tried again.
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${url}/ready?uid=${encodeURIComponent(uid)}`, { signal: AbortSignal.timeout(5_000) });
      return ((await res.json()) as { replica: string }).replica;
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(1_000);
    }
  }
}

export interface LabUser {
  uid: string;
  socket: ClientSocket;
  /** Every `session` event so far: one per (re)connect, with the replica that served it. */
  sessions: SessionInfo[];
}

/** A user that reconnects on its own (through nginx) when its connection drops, as the web client does. */
export async function labUser(url: string, secret: string, uid: string): Promise<LabUser> {
  const token = await makeToken({ sub: uid, exp: Math.floor(Date.now() / 1000) + 3600 }, { secret });
  const socket = await connectUser(url, { token }, { uid, reconnection: true });
  // connectUser closes the socket on a connect_error (right for the first connect); from now on a failed
  // attempt (nginx finding no replica for a moment: a node lost, a drain) must leave the client retrying.
  socket.removeAllListeners('connect_error');
  const user: LabUser = { uid, socket, sessions: [await nextEvent(socket, 'session')] };
  socket.on('session', (s) => void user.sessions.push(s));
  return user;
}

export function lastReplica(user: LabUser): string {
  return user.sessions.at(-1)?.replica ?? '';
}

/** The sandboxes (running) on one node's engine, with the files in each one's /workspace. */
export async function sandboxFiles(node: LabNode): Promise<Map<string, string[]>> {
  const ids = (await nodeDocker(node, ['ps', '-q', '--no-trunc', '--filter', `label=${LABELS.app}=${APP_LABEL_VALUE}`])).split('\n').filter(Boolean);
  const out = new Map<string, string[]>();
  for (const id of ids) {
    // No shell in the sandbox image: node lists the workspace.
    const files = await nodeDocker(node, ['exec', id, 'node', '-e', 'process.stdout.write(require("fs").readdirSync("/workspace").join("\\n"))']).catch(() => undefined);
    if (files !== undefined) out.set(id, files.split('\n').filter(Boolean));
  }
  return out;
}

/** Where the sandbox holding this file is: node index and container id, or undefined. */
export async function sandboxWith(file: string, nodes: readonly LabNode[]): Promise<{ node: number; id: string } | undefined> {
  for (const node of nodes) {
    for (const [id, files] of await sandboxFiles(node)) if (files.includes(file)) return { node: node.index, id };
  }
  return undefined;
}

/** Ids of every sandbox on a node's engine, in any state. */
export async function sandboxIds(node: LabNode, state: 'all' | 'running' = 'all'): Promise<string[]> {
  return (await nodeDocker(node, ['ps', ...(state === 'all' ? ['-a'] : []), '-q', '--no-trunc', '--filter', `label=${LABELS.app}=${APP_LABEL_VALUE}`])).split('\n').filter(Boolean);
}

/** The logs of every socket proxy container the node ran (swarm replaces a node's global task when the node returns). */
export async function proxyLogs(node: LabNode): Promise<string> {
  const ids = (await nodeDocker(node, ['ps', '-a', '-q', '--filter', 'label=com.docker.swarm.service.name=sandpool_docker-proxy'])).split('\n').filter(Boolean);
  const logs = await Promise.all(ids.map((id) => nodeDocker(node, ['logs', id]).catch((err: unknown) => String(err))));
  return logs.join('\n');
}

/** The app task's container of a replica (REPLICA_ID is `<container hostname>-3000`), on a node's engine. */
export function appContainer(replica: string): string {
  return replica.replace(/-\d+$/, '');
}

export const manager = (): LabNode => labNode(1);
