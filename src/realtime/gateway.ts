import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Server, type Socket } from 'socket.io';
import { SandpoolError, toErrorBody, toSandpoolError, type ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ChatService, ServerEvents } from '../chat/chat-service.js';
import type { ClusterBus } from '../chat/cluster-bus.js';
import type { Authenticate } from './auth.js';

type Ack = (response: unknown) => void;

/** Client -> server events (../shared/protocol.md). Payloads are unknown until validated. */
export interface ClientEvents {
  message: (payload: unknown, ack?: Ack) => void;
  'tool:approval': (payload: unknown, ack?: Ack) => void;
}

interface SocketData {
  userId: string;
}

type ForwardedAck = { ok: true; requestId: string; sessionId: string } | { ok: false; error: { code: ErrorCode; message: string } } | null;

/** Replica-to-replica events (Redis adapter serverSideEmit, with acks). */
interface InterServerEvents {
  'sandpool:message': (msg: { target: string; userId: string; payload: unknown }, ack: (res: ForwardedAck) => void) => void;
  'sandpool:approval': (msg: { userId: string; callId: string; approved: boolean }, ack: (decided: boolean) => void) => void;
}

export type SandpoolIo = Server<ClientEvents, ServerEvents, InterServerEvents, SocketData>;
type SandpoolSocket = Socket<ClientEvents, ServerEvents, InterServerEvents, SocketData>;

/** Options of attachRealtime. */
export interface RealtimeOptions {
  httpServer: HttpServer;
  /** Resolved lazily: the chat service needs the bus this layer provides. */
  chat: () => ChatService;
  replicaId: string;
  /** Socket.IO adapter factory (the Redis adapter with several replicas). Default: in-memory. */
  adapter?: Parameters<SandpoolIo['adapter']>[0];

  authenticate: Authenticate;
  logger: Logger;
  maxMessageBytes: number;
  /** Per-socket event budget per second; the burst is twice that. */
  eventsPerSecond: number;
  /** Refused connections and events, by code (metrics). */
  onRejected?: (code: string) => void;
  /**
   * True while the replica drains: new Socket.IO handshakes get HTTP 503, so
   * nginx passes them to the next replica; connected sockets stay until closed.
   * Default: never.
   */
  isDraining?: () => boolean;
}

const KNOWN_EVENTS = new Set(['message', 'tool:approval']);

export function userRoom(userId: string): string {
  return `user:${userId}`;
}

/**
 * Emits one server event to a room. Socket.IO's generic emit typing cannot
 * follow a generic event name, so this is the one place the map is widened.
 */
export function emitToRoom<E extends keyof ServerEvents>(io: SandpoolIo, room: string, event: E, payload: Parameters<ServerEvents[E]>[0]): void {
  (io.to(room) as unknown as { emit(event: string, payload: unknown): boolean }).emit(event, payload);
}

/** A Socket.IO request that would open a new session (no engine.io `sid` yet). */
function isNewHandshake(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return url.startsWith('/socket.io/') && !/[?&]sid=/.test(url);
}

/**
 * Refuses new handshakes with 503 while `draining()`: wraps the listeners that
 * Socket.IO and Hono put on the HTTP server, so it must run after both attach.
 */
function refuseHandshakesWhile(server: HttpServer, draining: () => boolean, log: Logger): void {
  const body = JSON.stringify({ error: { code: 'SHUTTING_DOWN', message: 'this replica is shutting down; connect again (another replica will answer)' } });
  const onRequest = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (draining() && isNewHandshake(req)) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', connection: 'close' }).end(body);
      return;
    }
    for (const listener of onRequest) listener.call(server, req, res);
  });
  const onUpgrade = server.listeners('upgrade') as Array<(req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (draining() && isNewHandshake(req)) {
      log.debug('refused a WebSocket handshake while draining');
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    for (const listener of onUpgrade) listener.call(server, req, socket, head);
  });
}

/** The second of the two places errors become responses (the first: Hono onError). */
function ackError(ack: unknown, err: unknown): SandpoolError {
  const e = toSandpoolError(err);
  if (typeof ack === 'function') (ack as Ack)({ ok: false, error: toErrorBody(e) });
  return e;
}

export function attachRealtime(options: RealtimeOptions): { io: SandpoolIo; bus: ClusterBus | undefined; connections(): number; close(): Promise<void> } {
  const { logger } = options;
  const chat = (): ChatService => options.chat();
  const log = logger.child({ component: 'Realtime' });
  const io: SandpoolIo = new Server(options.httpServer, {
    ...(options.adapter ? { adapter: options.adapter } : {}),
    // Room for a message at the limit (JSON-escaped, worst case 6x) so it gets
    // a PAYLOAD_TOO_LARGE ack rather than a dropped connection.
    maxHttpBufferSize: Math.max(1_000_000, options.maxMessageBytes * 6 + 4096),
    pingInterval: 25_000,
    pingTimeout: 20_000,
    serveClient: true,
    connectionStateRecovery: undefined,
  });

  if (options.isDraining) refuseHandshakesWhile(options.httpServer, options.isDraining, log);

  io.use((socket, next) => {
    options
      .authenticate(socket.handshake.auth)
      .then((userId) => {
        chat().checkCapacity(userId);
        socket.data.userId = userId;
        next();
      })
      .catch((err: unknown) => {
        const e = toSandpoolError(err);
        options.onRejected?.(e.code);
        const error = new Error(e.code) as Error & { data: { code: string; message: string } };
        error.data = toErrorBody(e);
        next(error);
      });
  });

  io.on('connection', (socket: SandpoolSocket) => {
    const userId = socket.data.userId;
    // Join first: events of the user's requests reach this socket from now on.
    void socket.join(userRoom(userId));
    chat().connect(userId).then(
      (sessionInfo) => socket.emit('session', sessionInfo),
      (err: unknown) => {
        // Only a race with MAX_SESSIONS gets here (the middleware checked it).
        const e = toSandpoolError(err);
        options.onRejected?.(e.code);
        socket.emit('request:error', { requestId: null, error: toErrorBody(e) });
        socket.disconnect(true);
      },
    );

    // Token bucket per socket: floods get refused, not queued.
    let tokens = options.eventsPerSecond * 2;
    let refilledAt = Date.now();
    // Refusals within the current 10 s window: an occasional burst over a long session is not a flood.
    let strikes = 0;
    let strikeWindowAt = Date.now();
    socket.use(([event, ...args], next) => {
      const ack = args[args.length - 1];
      const now = Date.now();
      tokens = Math.min(options.eventsPerSecond * 2, tokens + ((now - refilledAt) / 1000) * options.eventsPerSecond);
      refilledAt = now;
      if (tokens < 1) {
        options.onRejected?.('TOO_MANY_REQUESTS');
        ackError(ack, new SandpoolError('TOO_MANY_REQUESTS', `more than ${options.eventsPerSecond} events per second from this connection`));
        // A client that keeps flooding after being told is cut off.
        if (now - strikeWindowAt > 10_000) {
          strikes = 0;
          strikeWindowAt = now;
        }
        if (++strikes > options.eventsPerSecond * 10) socket.disconnect(true);
        return;
      }
      tokens--;
      if (!KNOWN_EVENTS.has(event)) {
        options.onRejected?.('BAD_REQUEST');
        ackError(ack, new SandpoolError('BAD_REQUEST', `unknown event ${JSON.stringify(String(event).slice(0, 64))}`));
        return;
      }
      next();
    });

    socket.on('message', (payload, ack) => {
      chat().handleMessage(userId, payload).then(
        ({ requestId, sessionId }) => {
          if (typeof ack === 'function') ack({ ok: true, requestId, sessionId });
        },
        (err: unknown) => {
          const e = ackError(ack, err);
          // No ack to answer: the protocol still never leaves a refusal silent.
          if (typeof ack !== 'function') socket.emit('request:error', { requestId: null, error: toErrorBody(e) });
        },
      );
    });

    socket.on('tool:approval', (payload, ack) => {
      chat().handleApproval(userId, payload).then(
        () => {
          if (typeof ack === 'function') ack({ ok: true });
        },
        (err: unknown) => void ackError(ack, err),
      );
    });

    socket.on('disconnect', () => chat().disconnect(userId));
    socket.on('error', (err) => log.warn({ user: userId, err: err.message }, 'socket error'));
  });

  // Replica-to-replica calls: only with a cluster adapter (its requestsTimeout bounds them).
  let bus: ClusterBus | undefined;
  if (options.adapter) {
    io.on('sandpool:message', (msg, ack) => {
      if (msg.target !== options.replicaId) return ack(null);
      chat().handleMessage(msg.userId, msg.payload, { forwarded: true }).then(
        ({ requestId, sessionId }) => ack({ ok: true, requestId, sessionId }),
        (err: unknown) => ack({ ok: false, error: toErrorBody(err) }),
      );
    });
    io.on('sandpool:approval', (msg, ack) => {
      chat().handleApproval(msg.userId, { callId: msg.callId, approved: msg.approved }, { forwarded: true }).then(
        () => ack(true),
        () => ack(false),
      );
    });
    bus = {
      forwardMessage(target, userId, payload) {
        return new Promise((resolve, reject) => {
          io.serverSideEmit('sandpool:message', { target, userId, payload }, (err: Error | null, responses: ForwardedAck[]) => {
            const answer = (responses ?? []).find((r): r is NonNullable<ForwardedAck> => r !== null);
            if (answer?.ok) return resolve({ requestId: answer.requestId, sessionId: answer.sessionId });
            if (answer && !answer.ok) return reject(new SandpoolError(answer.error.code, answer.error.message));
            reject(new SandpoolError('SANDBOX_FAILED', `replica ${target}, which holds your sandbox, did not answer${err ? ` (${err.message})` : ''}; try again`));
          });
        });
      },
      forwardApproval(userId, approval) {
        return new Promise((resolve) => {
          io.serverSideEmit('sandpool:approval', { userId, ...approval }, (_err: Error | null, responses: boolean[]) => {
            resolve((responses ?? []).some((r) => r === true));
          });
        });
      },
    };
  }

  return {
    io,
    bus,
    connections: () => io.engine.clientsCount,
    async close() {
      // Close at the transport level: clients see "transport close" and
      // reconnect by themselves (to a survivor, through nginx). A Socket.IO
      // level disconnect would tell them not to.
      for (const socket of io.sockets.sockets.values()) socket.conn.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
    },
  };
}
