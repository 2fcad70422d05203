import { request, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createEngineClient } from '../../src/socket-proxy/engine-client.js';
import { createImageAllowList } from '../../src/socket-proxy/image-allow-list.js';
import { createLimitsOf, loadProxySettings, type ProxySettings } from '../../src/socket-proxy/proxy-config.js';
import { createSocketProxy } from '../../src/socket-proxy/socket-proxy.js';
import { testLogger } from './helpers.js';

export interface RunningProxy {
  socketPath: string;
  settings: ProxySettings;
  /** POOL_IMAGE's names and the image ids they resolved to. */
  images: ReadonlyMap<string, string>;
  close(): Promise<void>;
}

let proxies = 0;

/** A socket proxy in this process, in front of the real engine, configured by a proxy environment (POOL_IMAGE, PROXY_MAX_*). */
export async function startSocketProxy(env: Record<string, string | undefined>, upstreamSocket = '/var/run/docker.sock'): Promise<RunningProxy> {
  const settings = loadProxySettings(env);
  const logger = testLogger();
  const allowList = createImageAllowList({ names: settings.images, engine: createEngineClient({ socketPath: upstreamSocket }), logger });
  const images = await allowList.load();
  const socketPath = path.join(os.tmpdir(), `sandpool-proxy-${process.pid}-${++proxies}.sock`);
  const server: Server = createSocketProxy({ upstreamSocket, logger, images: allowList, limits: createLimitsOf(settings) });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    settings,
    images,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One raw Docker API call over a unix socket: the body is sent as these exact bytes. */
export function rawCall(socketPath: string, method: string, apiPath: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = request({ socketPath, method, path: apiPath, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
