import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.js';

/** A Socket.IO request that would open a new session (no engine.io `sid` yet). */
function isNewHandshake(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return url.startsWith('/socket.io/') && !/[?&]sid=/.test(url);
}

/**
 * While `draining()`, new Socket.IO handshakes get HTTP 503, which nginx
 * retries on the next replica, so a new user is served by a survivor from the
 * first request; connected sockets stay until they are closed.
 *
 * This reaches past Socket.IO: engine.io's `allowRequest` can only answer 403,
 * and nginx must not retry on a 403. So the HTTP server's `request` and
 * `upgrade` listeners (Socket.IO's and Hono's) are wrapped here, the one place
 * that does it; it must run after both attached theirs.
 */
export function installDrainGate(server: HttpServer, draining: () => boolean, logger: Logger): void {
  const body = JSON.stringify({ error: { code: 'SHUTTING_DOWN', message: 'this replica is shutting down; connect again (another replica will answer)' } });
  const onRequest = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  const onUpgrade = server.listeners('upgrade') as Array<(req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
  if (onRequest.length === 0 || onUpgrade.length === 0) {
    throw new Error('drain gate: install it after Socket.IO and the HTTP app are attached to the server');
  }
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (draining() && isNewHandshake(req)) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', connection: 'close' }).end(body);
      return;
    }
    for (const listener of onRequest) listener.call(server, req, res);
  });
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (draining() && isNewHandshake(req)) {
      logger.debug('refused a WebSocket handshake while draining');
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    for (const listener of onUpgrade) listener.call(server, req, socket, head);
  });
}
