import { randomUUID } from 'node:crypto';
import { WebStandardStreamableHTTPServerTransport, type Server } from '@modelcontextprotocol/server';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';

/** One MCP session (protocol 2025-11-25): whose it is, and the SDK transport and server that answer it. */
export interface McpSession {
  readonly id: string;
  readonly userId: string;
  readonly transport: WebStandardStreamableHTTPServerTransport;
}

export interface McpSessionRegistry {
  /**
   * A new session for the user (an initialize request): its transport, whose
   * handleRequest answers the initialize with the session id. The session is
   * registered once the SDK has initialized it.
   */
  open(userId: string, expiresAtMs: number | undefined): Promise<WebStandardStreamableHTTPServerTransport>;
  /** The user's session with that id; undefined for an unknown id or another user's (both answer 404). */
  get(id: string, userId: string): McpSession | undefined;
  /**
   * A request arrived on the session: it is not idle, and it lives until the
   * latest expiry of the tokens presented in it (a client that refreshes its
   * token keeps its session; one that stops ends with its last token).
   */
  touch(session: McpSession, expiresAtMs: number | undefined): void;
  count(): number;
  /** Closes every session (shutdown). */
  closeAll(): Promise<void>;
}

/** Why a session ended: DELETE, idle, its tokens expired, or shutdown. */
export type CloseReason = 'deleted' | 'idle' | 'expired' | 'shutdown';

export interface McpSessionRegistryOptions {
  /** A user's MCP server (fresh per session). */
  serverFor(userId: string): Server;
  /** Admits a new session of the user (the per-user cap) or throws; its id is known before the SDK announces it. */
  admit(userId: string, sessionId: string): Promise<void>;
  /** An idle session is closed after this long (SESSION_IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** Largest POST body the transport reads (413 above). */
  maxBodyBytes: number;
  /** A session began / ended (DELETE, idle, shutdown): the user's sandbox is held / let go. */
  onOpen(session: McpSession): void;
  onClose(session: McpSession, why: CloseReason): void;
  logger: Logger;
}

/**
 * MCP sessions on this replica. Ownership comes from the token, never from
 * the session id: a session id is only ever looked up together with the user
 * who presents it, so another user's id is as unknown as a made-up one.
 */
export function createMcpSessionRegistry(options: McpSessionRegistryOptions): McpSessionRegistry {
  const log = options.logger.child({ component: 'McpSessions' });
  type Entry = McpSession & { idle: NodeJS.Timeout | undefined; expiry: NodeJS.Timeout | undefined; expiresAtMs: number | undefined; closing: boolean };
  const sessions = new Map<string, Entry>();

  function close(id: string, why: CloseReason): void {
    const s = sessions.get(id);
    if (!s || s.closing) return;
    s.closing = true;
    sessions.delete(id);
    clearTimeout(s.idle);
    clearTimeout(s.expiry);
    options.onClose(s, why);
    log.info({ session: id, user: s.userId, why }, 'MCP session ended');
    // DELETE has closed the transport already; idle and shutdown close it here.
    if (why !== 'deleted') void s.transport.close().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not close an MCP transport'));
  }

  function armIdle(s: Entry): void {
    clearTimeout(s.idle);
    s.idle = setTimeout(() => close(s.id, 'idle'), options.idleTimeoutMs);
    s.idle.unref();
  }

  /** Closes the session, its open streams with it, when its latest token expires. */
  function armExpiry(s: Entry, expiresAtMs: number | undefined): void {
    if (expiresAtMs === undefined || (s.expiresAtMs !== undefined && expiresAtMs <= s.expiresAtMs)) return;
    s.expiresAtMs = expiresAtMs;
    clearTimeout(s.expiry);
    s.expiry = setTimeout(() => close(s.id, 'expired'), Math.min(Math.max(0, expiresAtMs - Date.now()), 2 ** 31 - 1));
    s.expiry.unref();
  }

  return {
    async open(userId, expiresAtMs) {
      const sessionId = randomUUID();
      await options.admit(userId, sessionId);
      const server = options.serverFor(userId);
      const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => sessionId,
        // SSE answers (with X-Accel-Buffering: no): what the sandbox says while
        // a call runs (progress, log messages) goes on the call's own stream.
        // JSON answers would drop it. Keep-alive comments every 15 s (the
        // SDK's default) keep a quiet stream from looking idle to a proxy.
        enableJsonResponse: false,
        maxRequestBodySize: options.maxBodyBytes,
        onsessioninitialized: (id) => {
          const s: Entry = { id, userId, transport, idle: undefined, expiry: undefined, expiresAtMs: undefined, closing: false };
          sessions.set(id, s);
          armIdle(s);
          armExpiry(s, expiresAtMs);
          options.onOpen(s);
          log.info({ session: id, user: userId }, 'MCP session opened');
        },
        onsessionclosed: (id) => close(id, 'deleted'),
      });
      await server.connect(transport);
      return transport;
    },
    get(id, userId) {
      const s = sessions.get(id);
      return s && s.userId === userId ? s : undefined;
    },
    touch(session, expiresAtMs) {
      const s = sessions.get(session.id);
      if (!s) return;
      armIdle(s);
      armExpiry(s, expiresAtMs);
    },
    count: () => sessions.size,
    async closeAll() {
      for (const id of [...sessions.keys()]) close(id, 'shutdown');
    },
  };
}
