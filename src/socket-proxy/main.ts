/**
 * The Docker socket proxy as a program (the compose files and the swarm stack run it beside the app):
 *   POOL_IMAGE=<image>[,<image>...] node dist/src/socket-proxy/main.js --listen /run/sandpool/docker.sock [--upstream /var/run/docker.sock]
 * The app points DOCKER_SOCKET at --listen; only this process sees the engine's socket.
 * Its variables (POOL_IMAGE, PROXY_MAX_*) are in proxy-config.ts and docs/socket-proxy.md;
 * it does not start when none of POOL_IMAGE's images is on the engine.
 * Its container healthcheck is check.ts (a module of its own, quick to start).
 * It also runs the node's own sweeper (node-sweeper.ts): sandboxes whose owner replica container stopped.
 */
import { chmodSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorMessage } from '../errors.js';
import { createLogger } from '../logger.js';
import { createEngineClient } from './engine-client.js';
import { createImageAllowList } from './image-allow-list.js';
import { createNodeSweeper } from './node-sweeper.js';
import { createLimitsOf, loadProxySettings, type ProxySettings } from './proxy-config.js';
import { createSocketProxy } from './socket-proxy.js';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    upstream: { type: 'string', default: '/var/run/docker.sock' },
    'log-level': { type: 'string', default: process.env.LOG_LEVEL ?? 'info' },
  },
});
if (!values.listen) {
  process.stderr.write('socket-proxy: --listen <socket path> is required (the healthcheck is check.js <socket path>)\n');
  process.exit(2);
}
const listen = values.listen;
const logger = createLogger({ level: values['log-level'] });
let settings: ProxySettings;
try {
  settings = loadProxySettings(process.env);
} catch (err) {
  process.stderr.write(`socket-proxy: ${errorMessage(err)}\n`);
  process.exit(2);
}
const limits = createLimitsOf(settings);
const images = createImageAllowList({ names: settings.images, engine: createEngineClient({ socketPath: values.upstream }), logger });
try {
  const resolved = await images.load();
  logger.info({ images: Object.fromEntries(resolved), limits }, 'sandbox images and limits');
} catch (err) {
  process.stderr.write(`socket-proxy: ${errorMessage(err)}\n`);
  process.exit(1);
}
const server = createSocketProxy({ upstreamSocket: values.upstream, logger, images, limits });
const sweeper = createNodeSweeper({ engine: createEngineClient({ socketPath: values.upstream }), logger, intervalMs: settings.sweepIntervalMs });
sweeper.start();
// A socket file left by a killed predecessor would make listen fail.
rmSync(listen, { force: true });
server.listen(listen, () => {
  // Shared with the app container only (a volume of the stack): any uid there may use it.
  chmodSync(listen, 0o666);
  logger.info({ listen, upstream: values.upstream }, 'Docker socket proxy listening');
});
const stop = (): void => {
  sweeper.stop();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
