/** A throwaway redis-server on a loopback port (no persistence), ready once it answers PING. */
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

export async function startRedisServer(port: number, options: Pick<SpawnOptions, 'detached' | 'onParentExit'> = {}): Promise<RedisServerProcess> {
  const url = `redis://127.0.0.1:${port}`;
  const proc = await startProcess({
    name: `redis-server :${port}`,
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    ...options,
    ready: () => answersPing(url),
    readyTimeoutMs: 10_000,
    pollMs: 50,
  });
  return { url, port, process: proc };
}
