import { Redis } from 'ioredis';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { withTimeout } from '../util/async.js';

/** The three connections a replica keeps to Redis: commands, and the Socket.IO adapter's pub and sub. */
export interface RedisClients {
  command: Redis;
  pub: Redis;
  sub: Redis;
  /** QUIT on every connection, each bounded by `timeoutMs` (then cut). */
  quit(timeoutMs: number): Promise<void>;
}

/** One connection (the snapshot store's own Redis). */
export interface RedisClient {
  command: Redis;
  /** QUIT, bounded by `timeoutMs` (then cut). */
  quit(timeoutMs: number): Promise<void>;
}

export interface RedisConnectOptions {
  url: string;
  /** Used when the URL carries no password (REDIS_PASSWORD). */
  password: string | undefined;
  logger: Logger;
  /** REDIS_CONNECT_TIMEOUT_MS: start-up fails when Redis does not answer within it. */
  connectTimeoutMs: number;
  /** REDIS_COMMAND_TIMEOUT_MS: a command on the command connection without a reply fails after it. */
  commandTimeoutMs: number;
}

/** A Redis URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

async function connectAll<R extends string>(roles: readonly R[], options: RedisConnectOptions): Promise<Record<R, Redis> & { quit(timeoutMs: number): Promise<void> }> {
  const { url, logger } = options;
  const make = (role: string): Redis => {
    const client = new Redis(url, {
      ...(options.password !== undefined && !/\/\/[^@/]*@/.test(url) ? { password: options.password } : {}),
      // Fail a command after a couple of reconnect attempts instead of queueing it forever.
      maxRetriesPerRequest: 2,
      // And one whose reply never comes: seen after a Redis kill -9 and restart,
      // where a command in flight stayed pending and took a periodic loop (the
      // heartbeat, the dead-replica reaper) with it. Not on the adapter's
      // pub/sub connections, whose subscriptions are long-lived.
      ...(role === 'command' ? { commandTimeout: options.commandTimeoutMs } : {}),
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      lazyConnect: true,
    });
    let down = false;
    client.on('error', (err: Error) => {
      if (!down) logger.warn({ redis: role, url: redactUrl(url), err: err.message }, 'Redis connection error (retrying)');
      down = true;
    });
    client.on('ready', () => {
      if (down) logger.info({ redis: role, url: redactUrl(url) }, 'Redis connection restored');
      down = false;
    });
    return client;
  };
  const clients = Object.fromEntries(roles.map((role) => [role, make(role)])) as Record<R, Redis>;
  const all: Redis[] = Object.values(clients);
  try {
    await withTimeout(Promise.all(all.map((c) => c.connect())), options.connectTimeoutMs, `connecting to Redis at ${redactUrl(url)}`);
  } catch (err) {
    for (const c of all) c.disconnect();
    throw new Error(`Redis at ${redactUrl(url)} did not answer: ${errorMessage(err)}`);
  }
  return {
    ...clients,
    async quit(timeoutMs) {
      await Promise.allSettled(all.map((c) => withTimeout(c.quit(), timeoutMs, 'redis quit').catch(() => c.disconnect())));
    },
  };
}

/**
 * Connects all three; fails start-up if Redis does not answer within
 * `connectTimeoutMs`. A command on the command connection fails after
 * `commandTimeoutMs` without a reply.
 */
export function connectRedis(options: RedisConnectOptions): Promise<RedisClients> {
  return connectAll(['command', 'pub', 'sub'] as const, options);
}

/** A command connection only. */
export function connectRedisCommand(options: RedisConnectOptions): Promise<RedisClient> {
  return connectAll(['command'] as const, options);
}

/**
 * Warns when REDIS_URL's Redis may evict keys: a request slot or owner record
 * it drops lifts a limit silently.
 */
export async function warnIfEvicting(redis: Redis, logger: Logger): Promise<void> {
  const policy = await evictionPolicyOf(redis);
  if (policy === undefined || policy === 'noeviction') return;
  logger.warn(
    `WARNING: REDIS_URL's Redis evicts keys under memory pressure (maxmemory-policy ${policy}): a request slot or owner record it drops lifts a limit silently. Run it with noeviction, and snapshots in their own Redis (WORKSPACE_REDIS_URL).`,
  );
}

/**
 * The eviction policy of the Redis that keeps limits, owners and conversations,
 * or undefined where CONFIG is not allowed (managed Redis). Anything but
 * noeviction may drop those keys under memory pressure: they all expire, so
 * even volatile-* policies pick them, and a dropped slot silently lifts a limit.
 */
export async function evictionPolicyOf(redis: Redis): Promise<string | undefined> {
  try {
    const reply = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as unknown;
    return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
  } catch {
    return undefined;
  }
}
