import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { io as connectIo, type Socket } from 'socket.io-client';
import type { CallToolResult } from '../../src/protocol/mcp-types.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import type { ErrorBody } from '../../src/protocol/errors.js';
import type { ClientToServerEvents, ServerToClientEvents, SessionInfo } from '../../src/protocol/events.js';
import { sleep, withTimeout } from '../../src/util/async.js';
import { freePort } from '../../src/util/free-port.js';
import { startRedisServer } from '../../scripts/lib/redis-server.js';
import { startProcess, type StartedProcess } from '../../scripts/lib/start-process.js';

export { freePort, sleep };

export const execFileAsync = promisify(execFile);

/** A replica id no other test uses, so label filters isolate each test's containers. */
export function uniqueReplica(prefix: string): string {
  return `t-${prefix}-${randomBytes(3).toString('hex')}`;
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    REPLICA_ID: uniqueReplica('r'),
    POOL_MIN_SIZE: '1',
    POOL_MAX_SIZE: '4',
    POOL_ACQUIRE_TIMEOUT_MS: '20000',
    // No snapshots unless a test asks (workspaces.test.ts): nothing carries from one run to the next.
    WORKSPACE_STORE: 'none',
    // No parking unless a test asks (park.test.ts): a lease's end removes its sandbox, as most tests count on.
    PARK_MAX: '0',
    // Exactly POOL_MIN_SIZE spares unless a test asks: spares that follow arrivals (unit-tested in spare-target and
    // the pool's fake-runtime tests, measured by the load runs) would start containers no test here looks at.
    POOL_DEMAND_HEADROOM: '0',
    // The sandbox image under test: another tag than the shared default while the image changes.
    ...(process.env.POOL_IMAGE ? { POOL_IMAGE: process.env.POOL_IMAGE } : {}),
    ...overrides,
  });
}

export function testLogger(): Logger {
  return createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
}

/** Ids of containers carrying these labels, straight from the docker CLI (not our runtime). */
export async function dockerPs(labels: Record<string, string>): Promise<string[]> {
  const args = ['ps', '-a', '-q', '--no-trunc', ...Object.entries(labels).flatMap(([k, v]) => ['--filter', `label=${k}=${v}`])];
  const { stdout } = await execFileAsync('docker', args);
  return stdout.split('\n').filter(Boolean);
}

export async function dockerInspect(id: string): Promise<DockerInspect> {
  const { stdout } = await execFileAsync('docker', ['inspect', id]);
  const parsed = JSON.parse(stdout) as DockerInspect[];
  if (!parsed[0]) throw new Error(`no such container ${id}`);
  return parsed[0];
}

export interface DockerInspect {
  Id: string;
  State: { Running: boolean; Status: string };
  Config: { User: string; Labels: Record<string, string>; Image: string };
  HostConfig: {
    NetworkMode: string;
    CapDrop: string[] | null;
    SecurityOpt: string[] | null;
    ReadonlyRootfs: boolean;
    Tmpfs: Record<string, string> | null;
    Memory: number;
    NanoCpus: number;
    PidsLimit: number | null;
    ShmSize: number;
    Ulimits: Array<{ Name: string; Soft: number; Hard: number }> | null;
  };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      // Bounded by the deadline on a timer that holds the event loop: on
      // Node 20 a fetch whose peer closes at once never settles and holds
      // nothing (a port docker-proxy publishes before its container
      // listens), and the test file would end with its hook still pending.
      const value = await withTimeout(Promise.resolve().then(fn), Math.max(deadline - Date.now(), everyMs), `an attempt at ${what}`);
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

export function textOf(result: CallToolResult): string {
  return result.content
    .map((c) => (c.type === 'text' ? c.text : ''))
    .join('\n');
}

/**
 * A sandpool replica as a real child process (`node dist/src/main.js`, output
 * captured), resolved once its output matches `ready`.
 */
export function startReplica(env: Record<string, string>, ready: RegExp, readyTimeoutMs: number): Promise<StartedProcess> {
  return startProcess({
    name: `replica ${env.REPLICA_ID ?? ''}`,
    command: process.execPath,
    args: ['dist/src/main.js'],
    // AUTH_SECRET '' (unset) unless given: not the one `npm run images` writes to .env, which main.js would read.
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', AUTH_SECRET: '', WORKSPACE_STORE: 'none', ...env },
    ready,
    readyTimeoutMs,
  });
}

// --- Socket.IO client helpers ---------------------------------------------------

/** A test's or script's socket, typed with the wire contract (src/protocol/events.ts) like the server's. */
export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** What a server event carries. */
export type EventPayload<E extends keyof ServerToClientEvents> = Parameters<ServerToClientEvents[E]>[0];

/** What a client event's ack answers (`AckResponse<...>` of the contract). */
type AckOf<E extends keyof ClientToServerEvents> = Parameters<NonNullable<Parameters<ClientToServerEvents[E]>[1]>>[0];

/**
 * An ack as tests read it: the contract's either-or, with both sides' fields
 * optional, so a test can assert on `ok`, `error?.code` or `requestId`
 * without narrowing first.
 */
export type AckView<R> = { ok: boolean; error?: ErrorBody } & Partial<Omit<Extract<R, { ok: true }>, 'ok'>>;

/** Every event a test socket received, in order, from the moment it was created. */
const received = new WeakMap<ClientSocket, Array<{ event: string; payload: unknown; taken: boolean }>>();
const arrivals = new WeakMap<ClientSocket, Set<() => void>>();
/** Waits to end when the test closes the socket: nothing can arrive any more, and a pending wait's timer would keep the file's process alive. */
const closings = new WeakMap<ClientSocket, Set<() => void>>();

/** Connects like the contract says: auth + uid routing hint. Rejects with the connect_error. */
export function connectUser(
  url: string,
  auth: Record<string, unknown>,
  options: { uid?: string; transports?: Array<'websocket' | 'polling'>; reconnection?: boolean } = {},
): Promise<ClientSocket> {
  const socket: ClientSocket = connectIo(url, {
    auth,
    query: { uid: options.uid ?? String(auth.userId ?? 'x') },
    transports: options.transports ?? ['websocket'],
    reconnection: options.reconnection ?? false,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    forceNew: true,
  });
  // Record from the start: an event can arrive in the same tick as an ack,
  // before the test's await continuation could add a listener.
  const log: Array<{ event: string; payload: unknown; taken: boolean }> = [];
  const waiters = new Set<() => void>();
  const onClose = new Set<() => void>();
  received.set(socket, log);
  arrivals.set(socket, waiters);
  closings.set(socket, onClose);
  socket.onAny((event: string, payload: unknown) => {
    log.push({ event, payload, taken: false });
    for (const w of [...waiters]) w();
  });
  // Closed by the test itself (not a server-side drop, after which the client may reconnect).
  socket.on('disconnect', (reason) => {
    if (reason === 'io client disconnect') for (const end of [...onClose]) end();
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

/** Sends a client event the contract allows and resolves with its ack. */
export function emitAck<E extends keyof ClientToServerEvents>(socket: ClientSocket, event: E, payload: Parameters<ClientToServerEvents[E]>[0]): Promise<AckView<AckOf<E>>> {
  return emitUnchecked(socket, event, payload) as Promise<AckView<AckOf<E>>>;
}

/** Sends what the contract does not allow (an unknown event, a payload of the wrong shape), as a misbehaving client would; resolves with its ack. */
export function emitUnchecked(socket: ClientSocket, event: string, ...args: unknown[]): Promise<AckView<AckOf<'message'>>> {
  return (socket as unknown as Socket).timeout(10_000).emitWithAck(event, ...args) as Promise<AckView<AckOf<'message'>>>;
}

/** Sends without an ack what the contract does not allow (a refusal must still not be silent). */
export function sendUnchecked(socket: ClientSocket, event: string, ...args: unknown[]): void {
  (socket as unknown as Socket).emit(event, ...args);
}

/**
 * The first not-yet-taken `event` matching `match`, already received or still
 * to come; taking it means a later call will not return it again. Aborting
 * `signal` stops the wait without taking anything (a race's losers must not
 * take an event a later wait is for).
 */
export function nextEvent<E extends keyof ServerToClientEvents>(
  socket: ClientSocket,
  event: E,
  match: (p: EventPayload<E>) => boolean = () => true,
  timeoutMs = 20_000,
  signal?: AbortSignal,
): Promise<EventPayload<E>> {
  type T = EventPayload<E>;
  const log = received.get(socket);
  const waiters = arrivals.get(socket);
  const onClose = closings.get(socket);
  if (!log || !waiters || !onClose) return Promise.reject(new Error('socket was not made by connectUser'));
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const hit = log.find((e) => !e.taken && e.event === event && match(e.payload as T));
      if (!hit) return false;
      hit.taken = true;
      waiters.delete(onArrival);
      onClose.delete(closed);
      clearTimeout(timer);
      resolve(hit.payload as T);
      return true;
    };
    const onArrival = (): void => void check();
    const stop = (why: string): void => {
      if (!waiters.delete(onArrival)) return;
      onClose.delete(closed);
      clearTimeout(timer);
      reject(new Error(why));
    };
    const closed = (): void => stop(`the socket was closed while waiting for ${event}`);
    const timer = setTimeout(() => stop(`no ${event} within ${timeoutMs} ms`), timeoutMs);
    waiters.add(onArrival);
    onClose.add(closed);
    if (check()) return;
    if (signal?.aborted) return stop(`stopped waiting for ${event}`);
    if (socket.disconnected && !socket.active) return closed();
    signal?.addEventListener('abort', () => stop(`stopped waiting for ${event}`), { once: true });
  });
}

/** Connects a user (auth, uid routing hint) and waits for the `session` event that greets every new socket. */
export async function connectWithSession(
  url: string,
  auth: Record<string, unknown>,
  options: Parameters<typeof connectUser>[2] & { sessionTimeoutMs?: number } = {},
): Promise<{ socket: ClientSocket; session: SessionInfo }> {
  const socket = await connectUser(url, auth, options);
  return { socket, session: await nextEvent(socket, 'session', () => true, options.sessionTimeoutMs) };
}

/** The sockets a test file opens, closed together in its `after` hook. */
export interface UserSockets {
  /** Connects `userId` (development identity) and waits for its `session` event. */
  connect(url: string, userId: string, options?: Parameters<typeof connectWithSession>[2]): Promise<{ socket: ClientSocket; session: SessionInfo }>;
  /** Closes it with the others (a socket opened some other way). */
  track(socket: ClientSocket): void;
  closeAll(): void;
}

export function userSockets(): UserSockets {
  const open: ClientSocket[] = [];
  return {
    async connect(url, userId, options) {
      const connected = await connectWithSession(url, { userId }, options);
      open.push(connected.socket);
      return connected;
    },
    track: (socket) => void open.push(socket),
    closeAll() {
      for (const s of open.splice(0)) s.close();
    },
  };
}

// --- Redis for tests: a real redis-server child process on a free loopback port ---

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Stops and starts it again on the same port (data is not kept). */
  restart(): Promise<void>;
}

export async function startRedis(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  let server: StartedProcess;
  const launch = async (): Promise<void> => {
    server = (await startRedisServer(p)).process;
  };
  const stop = async (): Promise<void> => {
    await server.stop('SIGKILL', 5_000);
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}
