import { SandpoolError, errorMessage, toClientError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ErrorBody } from '../protocol/errors.js';
import { CLIENT_EVENTS, type AckResponse, type MessageAccepted, type SessionInfo } from '../protocol/events.js';
import type { Authenticate } from '../auth/authenticator.js';
import type { OriginPolicy } from '../auth/origins.js';
import type { Presences } from '../chat/presence.js';
import type { EventBudget } from '../state/event-budget.js';
import type { SlotLimiter } from '../state/slot-limiter.js';
import { userRoom, type SandpoolIo } from './socket-server.js';

/** What the gateway needs from the chat layer. Payloads arrive unvalidated. */
export interface GatewayChat {
  connect(userId: string, options: { plan: string }): Promise<SessionInfo>;
  disconnect(userId: string): void;
  handleMessage(userId: string, payload: unknown, options: { plan: string }): Promise<MessageAccepted>;
  handleApproval(userId: string, payload: unknown): Promise<unknown>;
  wipeWorkspace(userId: string): Promise<void>;
}

export interface GatewayOptions {
  io: SandpoolIo;
  chat: GatewayChat;
  /** Who is here: a handshake that would need a presence beyond MAX_SESSIONS is refused. */
  presences: Pick<Presences, 'checkRoomFor'>;
  authenticate: Authenticate;
  origins: OriginPolicy;
  /** Sockets per user, all replicas (state.sockets). */
  sockets: SlotLimiter;
  maxSocketsPerUser: number;
  /** Events per user per second, across replicas (state.events). */
  budget: EventBudget;
  eventsPerSecond: number;
  logger: Logger;
  /** Refused connections and events, by code and, once the token is read, the user's plan (metrics). */
  onRejected(code: string, plan?: string): void;
  /** A handshake whose credentials were refused (metrics). */
  onAuthFailed?(): void;
}

/** The contract's client events (from its typed map): anything else is refused with BAD_REQUEST. */
const KNOWN_EVENTS: ReadonlySet<string> = new Set(CLIENT_EVENTS);

/**
 * Answers an event's ack from the work's outcome: the second of the two places
 * errors become responses (the first: the HTTP app's onError). Resolves with
 * the refusal, if any, for callers that must not leave it silent without an ack.
 */
async function answer<T extends object>(ack: ((response: AckResponse<T>) => void) | undefined, work: () => Promise<T>, log: Logger): Promise<ErrorBody | undefined> {
  try {
    const fields = await work();
    ack?.({ ok: true, ...fields });
    return undefined;
  } catch (err) {
    const body = toClientError(err, log);
    ack?.({ ok: false, error: body });
    return body;
  }
}

/**
 * The Socket.IO edge: authentication, the per-user event budget, and the
 * contract's events handed to the chat layer. It registers handlers; the
 * chat layer never reaches back into it.
 */
export function registerGateway(options: GatewayOptions): void {
  const { io, chat, budget } = options;
  const log = options.logger.child({ component: 'Realtime' });

  /** Who is connecting, or why not: origin, identity, replica capacity, the user's socket cap. */
  async function admit(socket: Parameters<Parameters<SandpoolIo['use']>[0]>[0]): Promise<void> {
    const { headers } = socket.handshake;
    const origin = typeof headers.origin === 'string' ? headers.origin : undefined;
    if (!options.origins.allows(origin)) {
      throw new SandpoolError('UNAUTHORIZED', `origin ${JSON.stringify(origin)} is not allowed to connect here (ALLOWED_ORIGINS)`);
    }
    const auth = (typeof socket.handshake.auth === 'object' && socket.handshake.auth !== null ? socket.handshake.auth : {}) as Record<string, unknown>;
    let identity: Awaited<ReturnType<Authenticate>>;
    try {
      identity = await options.authenticate({ token: auth.token, userId: auth.userId, plan: auth.plan });
    } catch (err) {
      options.onAuthFailed?.();
      throw err;
    }
    socket.data.plan = identity.plan;
    options.presences.checkRoomFor(identity.userId);
    let admitted: boolean;
    try {
      admitted = await options.sockets.tryAcquire(identity.userId, socket.id);
    } catch {
      throw new SandpoolError('INTERNAL', 'shared state (Redis) is unavailable; connect again shortly');
    }
    if (!admitted) {
      throw new SandpoolError('TOO_MANY_REQUESTS', `you already have ${options.maxSocketsPerUser} connections open (MAX_SOCKETS_PER_USER); close a tab and connect again`);
    }
    socket.data.userId = identity.userId;
    socket.data.expiresAtMs = identity.expiresAtMs;
  }

  io.use((socket, next) => {
    admit(socket)
      .then(() => next())
      .catch((err: unknown) => {
        const body = toClientError(err, log);
        options.onRejected(body.code, typeof socket.data.plan === 'string' ? socket.data.plan : undefined);
        // The contract: err.message is the code, err.data the whole error.
        next(Object.assign(new Error(body.code), { data: body }));
      });
  });

  io.on('connection', (socket) => {
    const { userId, plan } = socket.data;
    // A token's lifetime is the socket's: at expiry the client is told, then cut off, and reconnects with a fresh token.
    const expiresAtMs = socket.data.expiresAtMs;
    const expired = (): boolean => expiresAtMs !== undefined && Date.now() >= expiresAtMs;
    const expiry =
      expiresAtMs === undefined
        ? undefined
        : setTimeout(() => {
            socket.emit('auth:expired', {});
            socket.disconnect(true);
          }, Math.min(Math.max(0, expiresAtMs - Date.now()), 2 ** 31 - 1));
    // Join first: events of the user's requests reach this socket from now on.
    void socket.join(userRoom(userId));
    chat.connect(userId, { plan }).then(
      (info) => socket.emit('session', info),
      (err: unknown) => {
        // Only a race with MAX_SESSIONS gets here (the middleware checked it).
        const body = toClientError(err, log);
        options.onRejected(body.code, plan);
        socket.emit('request:error', { requestId: null, error: body });
        socket.disconnect(true);
      },
    );

    // Refusals within the current 10 s window: an occasional burst over a long-lived socket is not a flood.
    let strikes = 0;
    let strikeWindowAtMs = Date.now();
    socket.use(([event, ...args], next) => {
      const last: unknown = args[args.length - 1];
      const ack = typeof last === 'function' ? (last as (response: AckResponse) => void) : undefined;
      // Between expiry and the timer (or a clock jump): nothing more is accepted on this token.
      if (expired()) {
        options.onRejected('UNAUTHORIZED', plan);
        void answer(ack, () => Promise.reject(new SandpoolError('UNAUTHORIZED', 'your token has expired; reconnect with a fresh one')), log);
        return;
      }
      void budget.take(userId).then((allowed) => {
        if (!allowed) {
          options.onRejected('TOO_MANY_REQUESTS', plan);
          void answer(ack, () => Promise.reject(new SandpoolError('TOO_MANY_REQUESTS', `more than ${options.eventsPerSecond} events per second from this user`)), log);
          // A client that keeps flooding after being told is cut off.
          const now = Date.now();
          if (now - strikeWindowAtMs > 10_000) {
            strikes = 0;
            strikeWindowAtMs = now;
          }
          if (++strikes > options.eventsPerSecond * 10) socket.disconnect(true);
          return;
        }
        if (!KNOWN_EVENTS.has(event)) {
          options.onRejected('BAD_REQUEST', plan);
          void answer(ack, () => Promise.reject(new SandpoolError('BAD_REQUEST', `unknown event ${JSON.stringify(String(event).slice(0, 64))}`)), log);
          return;
        }
        next();
      });
    });

    socket.on('message', (payload, ack) => {
      void answer(ack, () => chat.handleMessage(userId, payload, { plan }), log).then((refused) => {
        // No ack to answer: the protocol still never leaves a refusal silent.
        if (refused && typeof ack !== 'function') socket.emit('request:error', { requestId: null, error: refused });
      });
    });

    socket.on('tool:approval', (payload, ack) => {
      void answer(
        ack,
        async () => {
          await chat.handleApproval(userId, payload);
          return {};
        },
        log,
      );
    });

    socket.on('workspace:wipe', (_payload, ack) => {
      void answer(
        ack,
        async () => {
          await chat.wipeWorkspace(userId);
          return {};
        },
        log,
      );
    });

    socket.on('disconnect', () => {
      clearTimeout(expiry);
      // Shared state may be down right now: the slot then expires on its own (REQUEST_SLOT_TTL_MS).
      options.sockets.release(userId, socket.id).catch((err: unknown) => log.warn({ user: userId, err: errorMessage(err) }, 'could not free a socket slot; it expires by itself'));
      chat.disconnect(userId);
    });
    socket.on('error', (err) => log.warn({ user: userId, err: err.message }, 'socket error'));
  });
}

/**
 * Closes every socket at the transport level, so clients see "transport
 * close" and reconnect by themselves (to a survivor, through nginx); a
 * Socket.IO-level disconnect would tell them not to. Then stops the server.
 */
export async function closeSockets(io: SandpoolIo): Promise<void> {
  for (const socket of io.sockets.sockets.values()) socket.conn.close();
  await new Promise<void>((resolve) => io.close(() => resolve()));
}
