import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.js';
import type { ErrorBody } from '../protocol/errors.js';

/** A Socket.IO request that would open a new session (no engine.io `sid` yet). */
export function isNewHandshake(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return url.startsWith('/socket.io/') && !/[?&]sid=/.test(url);
}

/** The routing hint `?uid=` of a request (never an identity: nginx hashes on it). */
export function uidOf(req: IncomingMessage): string | undefined {
  const url = new URL(req.url ?? '/', 'http://sandpool');
  return url.searchParams.get('uid') ?? undefined;
}

/** Why a new handshake goes to another replica, as the 503's body says it. */
export type HandshakeRefusal = ErrorBody;

/**
 * New Socket.IO handshakes that `refuse` turns away get HTTP 503, which nginx
 * retries on the next replica (`proxy_next_upstream ... http_503`), so a new
 * user is served by another replica from the first request: while this one
 * drains, or while it is full and another has room. Connected sockets stay.
 *
 * This reaches past Socket.IO: engine.io's `allowRequest` can only answer 403,
 * and nginx must not retry on a 403. So the HTTP server's `request` and
 * `upgrade` listeners (Socket.IO's and Hono's) are wrapped here, the one place
 * that does it; it must run after both attached theirs.
 */
export function installHandshakeGate(server: HttpServer, refuse: (req: IncomingMessage) => HandshakeRefusal | undefined, logger: Logger): void {
  const onRequest = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  const onUpgrade = server.listeners('upgrade') as Array<(req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
  if (onRequest.length === 0 || onUpgrade.length === 0) {
    throw new Error('handshake gate: install it after Socket.IO and the HTTP app are attached to the server');
  }
  const refusalOf = (req: IncomingMessage): HandshakeRefusal | undefined => (isNewHandshake(req) ? refuse(req) : undefined);
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const refusal = refusalOf(req);
    if (refusal) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', connection: 'close' }).end(JSON.stringify({ error: refusal }));
      return;
    }
    for (const listener of onRequest) listener.call(server, req, res);
  });
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refusal = refusalOf(req);
    if (refusal) {
      logger.debug({ code: refusal.code }, 'passed a WebSocket handshake on to another replica');
      const body = JSON.stringify({ error: refusal });
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    for (const listener of onUpgrade) listener.call(server, req, socket, head);
  });
}
