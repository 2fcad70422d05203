import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HostGuard } from '../auth/host-guard.js';
import type { Logger } from '../logger.js';
import type { ErrorBody } from '../protocol/errors.js';
import type { Overflow } from './overflow.js';

/** A Socket.IO request that would open a new connection (no engine.io `sid` yet). */
export function isNewHandshake(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return url.startsWith('/socket.io/') && !/[?&]sid=/.test(url);
}

/** The routing hint `?uid=` of a request (never an identity: nginx hashes on it). */
export function routingHintOf(req: IncomingMessage): string | undefined {
  const url = new URL(req.url ?? '/', 'http://sandpool');
  return url.searchParams.get('uid') ?? undefined;
}

/** Why a new handshake goes to another replica, as the 503's body says it. */
export type HandshakeRefusal = ErrorBody;

interface Refusal {
  status: 403 | 503;
  error: ErrorBody;
}

const HOST_REFUSAL: Refusal = {
  status: 403,
  error: { code: 'FORBIDDEN', message: 'this server does not answer to that host name (ALLOWED_HOSTS, PUBLIC_URL): use its public address' },
};

const STATUS_TEXT = { 403: 'Forbidden', 503: 'Service Unavailable' } as const;

const DRAINING: HandshakeRefusal = { code: 'SHUTTING_DOWN', message: 'this replica is shutting down; connect again (another replica will answer)' };
const FULL: HandshakeRefusal = { code: 'TOO_MANY_REQUESTS', message: 'this replica is full; connect again (another replica has room)' };

/**
 * Which new handshakes go to another replica, and what the 503 says: all of
 * them while this replica drains, and a new user's while it is full and a
 * peer has room (overflow.ts).
 */
export function refuseNewHandshakes(options: { isDraining(): boolean; overflow: Overflow }): (req: IncomingMessage) => HandshakeRefusal | undefined {
  return (req) => {
    if (options.isDraining()) return DRAINING;
    if (options.overflow.passOn(routingHintOf(req))) return FULL;
    return undefined;
  };
}

/**
 * Every request, before Hono, Socket.IO or /mcp see it:
 * - one addressed to a Host the guard does not allow gets 403 (DNS rebinding);
 * - a new Socket.IO handshake that `refuse` turns away gets HTTP 503, which
 *   nginx retries on the next replica (`proxy_next_upstream ... http_503`),
 *   so a new user is served by another replica from the first request: while
 *   this one drains, or while it is full and another has room. Connected
 *   sockets stay.
 *
 * This reaches past Socket.IO: engine.io's `allowRequest` can only answer 403,
 * and nginx must not retry on a 403; and the Host check must cover WebSocket
 * upgrades as well as plain requests. So the HTTP server's `request` and
 * `upgrade` listeners (Socket.IO's and Hono's) are wrapped here, the one place
 * that does it; it must run after both attached theirs.
 */
export function installHandshakeGate(
  server: HttpServer,
  options: { hosts: HostGuard; refuse: (req: IncomingMessage) => HandshakeRefusal | undefined },
  logger: Logger,
): void {
  const onRequest = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  const onUpgrade = server.listeners('upgrade') as Array<(req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
  if (onRequest.length === 0 || onUpgrade.length === 0) {
    throw new Error('handshake gate: install it after Socket.IO and the HTTP app are attached to the server');
  }
  const refusalOf = (req: IncomingMessage): Refusal | undefined => {
    if (!options.hosts.allows(req.headers.host)) {
      logger.warn({ host: String(req.headers.host ?? '').slice(0, 128), path: (req.url ?? '').slice(0, 64) }, 'refused a request addressed to a host not allowed');
      return HOST_REFUSAL;
    }
    const refused = isNewHandshake(req) ? options.refuse(req) : undefined;
    return refused ? { status: 503, error: refused } : undefined;
  };
  const headersOf = (r: Refusal): Record<string, string> => ({
    'content-type': 'application/json',
    ...(r.status === 503 ? { 'retry-after': '1' } : {}),
    connection: 'close',
  });
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const refusal = refusalOf(req);
    if (refusal) {
      res.writeHead(refusal.status, headersOf(refusal)).end(JSON.stringify({ error: refusal.error }));
      return;
    }
    for (const listener of onRequest) listener.call(server, req, res);
  });
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refusal = refusalOf(req);
    if (refusal) {
      logger.debug({ code: refusal.error.code }, 'refused a WebSocket handshake');
      const body = JSON.stringify({ error: refusal.error });
      const headers = Object.entries({ ...headersOf(refusal), 'content-length': String(Buffer.byteLength(body)) })
        .map(([k, v]) => `${k}: ${v}`)
        .join('\r\n');
      socket.end(`HTTP/1.1 ${refusal.status} ${STATUS_TEXT[refusal.status]}\r\n${headers}\r\n\r\n${body}`);
      return;
    }
    for (const listener of onUpgrade) listener.call(server, req, socket, head);
  });
}
