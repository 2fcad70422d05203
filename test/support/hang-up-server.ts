/**
 * An HTTP server on 127.0.0.1 that closes its first `hangUps` connections as
 * soon as it accepts them, then answers 200: what a client sees from a port
 * docker-proxy publishes before the container behind it listens. Node 20's
 * fetch never settles on such a connection.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HangUpServer {
  url: string;
  /** Connections accepted so far, hung up on or served. */
  connections: () => number;
  close: () => Promise<void>;
}

export async function startHangUpServer(hangUps: number): Promise<HangUpServer> {
  let accepted = 0;
  const server = http.createServer((_req, res) => res.end('ok'));
  server.on('connection', (socket) => {
    accepted += 1;
    if (accepted <= hangUps) socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    connections: () => accepted,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
