import { Redis } from 'ioredis';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { withTimeout } from '../util/async.js';

/** The three connections a replica keeps to Redis: commands, and the Socket.IO adapter's pub and sub. */
export interface RedisClients {
  command: Redis;
  pub: Redis;
  sub: Redis;
  quit(): Promise<void>;
}

/** No command sandpool sends (the largest: a 16 MiB workspace snapshot) takes this long on a healthy Redis. */
const COMMAND_TIMEOUT_MS = 10_000;

/** A Redis URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/**
 * Connects all three; fails start-up if Redis does not answer within
 * `connectTimeoutMs`. A command on the command connection fails after
 * `commandTimeoutMs` without a reply.
 */
export async function connectRedis(url: string, logger: Logger, connectTimeoutMs = 10_000, commandTimeoutMs = COMMAND_TIMEOUT_MS): Promise<RedisClients> {
  const make = (role: string): Redis => {
    const client = new Redis(url, {
      // Fail a command after a couple of reconnect attempts instead of queueing it forever.
      maxRetriesPerRequest: 2,
      // And one whose reply never comes: seen after a Redis kill -9 and restart,
      // where a command in flight stayed pending and took a periodic loop (the
      // heartbeat, the dead-replica reaper) with it. Not on the adapter's
      // pub/sub connections, whose subscriptions are long-lived.
      ...(role === 'command' ? { commandTimeout: commandTimeoutMs } : {}),
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      lazyConnect: true,
    });
    let down = false;
    client.on('error', (err: Error) => {
      if (!down) logger.warn({ redis: role, err: err.message }, 'Redis connection error (retrying)');
      down = true;
    });
    client.on('ready', () => {
      if (down) logger.info({ redis: role }, 'Redis connection restored');
      down = false;
    });
    return client;
  };
  const clients = { command: make('command'), pub: make('pub'), sub: make('sub') };
  const all = Object.values(clients);
  try {
    await withTimeout(Promise.all(all.map((c) => c.connect())), connectTimeoutMs, `connecting to Redis at ${redactUrl(url)}`);
  } catch (err) {
    for (const c of all) c.disconnect();
    throw new Error(`Redis at ${redactUrl(url)} did not answer: ${errorMessage(err)}`);
  }
  return {
    ...clients,
    async quit() {
      await Promise.allSettled(all.map((c) => withTimeout(c.quit(), 2_000, 'redis quit').catch(() => c.disconnect())));
    },
  };
}
