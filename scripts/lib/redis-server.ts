/**
 * A redis-server on a loopback port, ready once it answers PING: without
 * persistence (tests), or with an append-only file fsynced every second in
 * `dir`, as a deployment should run it (a restart then keeps sessions,
 * histories and ownership).
 */
import { Redis } from 'ioredis';
import { startProcess, type SpawnOptions, type StartedProcess } from './start-process.js';

export interface RedisServerProcess {
  url: string;
  port: number;
  process: StartedProcess;
}

async function answersPing(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } finally {
    client.disconnect();
  }
}

/** redis-server's arguments: the same ones start it again over the same data. */
export function redisServerArgs(port: number, persistence: { dir: string } | undefined): string[] {
  const base = ['--port', String(port), '--bind', '127.0.0.1', '--save', ''];
  return persistence ? [...base, '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', persistence.dir] : [...base, '--appendonly', 'no'];
}

export async function startRedisServer(
  port: number,
  options: Pick<SpawnOptions, 'detached' | 'onParentExit'> & { persistence?: { dir: string } } = {},
): Promise<RedisServerProcess> {
  const url = `redis://127.0.0.1:${port}`;
  const { persistence, ...spawnOptions } = options;
  const proc = await startProcess({
    name: `redis-server :${port}`,
    command: 'redis-server',
    args: redisServerArgs(port, persistence),
    ...spawnOptions,
    ready: () => answersPing(url),
    readyTimeoutMs: 10_000,
    pollMs: 50,
  });
  return { url, port, process: proc };
}
