/**
 * The socket proxy's container healthcheck:
 *   node dist/src/socket-proxy/check.js /run/sandpool/docker.sock
 * exits 0 when the engine answers a ping through the proxy, 1 otherwise.
 *
 * A module of its own that imports node:http only: a healthcheck that loads
 * the proxy's whole program (logger, schema) took over 2 s to start on a busy
 * machine, its 3 s timeout then failed it, the orchestrator replaced the
 * proxy, and every sandbox's attach stream through it broke.
 */
import { request } from 'node:http';

export function pingThrough(socketPath: string, timeoutMs = 2_500): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const socketPath = process.argv[2];
if (socketPath === undefined) {
  process.stderr.write('usage: node dist/src/socket-proxy/check.js <proxy socket>\n');
  process.exit(2);
}
process.exit((await pingThrough(socketPath)) ? 0 : 1);
