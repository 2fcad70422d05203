import { existsSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { errorMessage } from './errors.js';
import { createLocalPlanner } from './agent/local-planner.js';
import { createLlmProvider } from './agent/providers/index.js';
import type { LlmProvider } from './agent/types.js';
import { createApprovalRegistry } from './chat/approvals.js';
import { createChatService, type ChatService } from './chat/chat-service.js';
import { createSessionManager, type SessionManager } from './chat/sessions.js';
import { createHeartbeat, type Heartbeat } from './cluster/heartbeat.js';
import { createMemoryState } from './state/memory-state.js';
import { createRedisState } from './state/redis-state.js';
import type { SharedState } from './state/types.js';
import { Redis } from 'ioredis';
import { createAdapter } from '@socket.io/redis-adapter';
import { createHttpApp } from './http/http-app.js';
import { createAuthenticator } from './realtime/auth.js';
import { attachRealtime, emitToRoom, userRoom } from './realtime/gateway.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './metrics/metrics.js';
import { createOrphanSweeper } from './orphans/orphan-sweeper.js';
import { createContainerPool, ownerLabel, type ContainerPool } from './pool/container-pool.js';
import { selectRuntime } from './runtime/select-runtime.js';
import type { ContainerRuntime } from './runtime/types.js';
import { withTimeout } from './util/async.js';

/** A running replica: the one object the composition root hands out. */
export interface Sandpool {
  readonly config: Config;
  readonly port: number;
  readonly url: string;
  readonly pool: ContainerPool;
  readonly runtime: ContainerRuntime;
  readonly chat: ChatService;
  readonly logger: Logger;
  /** Why this replica cannot serve right now (what /ready reports); empty when ready. */
  notReadyReasons(): string[];
  /** Graceful, bounded shutdown: /ready 503, stop accepting, drain the pool, remove our containers. */
  stop(reason?: string): Promise<void>;
}

/** Options of createSandpool. */
export interface SandpoolOptions {
  logger?: Logger;
  /** Wait this long for the pool to warm before resolving (it keeps warming after). Default 0: do not wait. */
  warmTimeoutMs?: number;
  /**
   * Shared state to use instead of the one the config selects (Redis when
   * REDIS_URL is set, else memory). The replica closes it on stop.
   */
  state?: SharedState;
}

/** The web page's files: <repo>/web, from src/ (tsx) or dist/src/ alike. */
function webRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const fromDist = path.resolve(here, '../../web');
  return existsSync(fromDist) ? fromDist : path.resolve(here, '../web');
}

function createProvider(config: Config): LlmProvider {
  if (config.llm.provider === 'local') return createLocalPlanner();
  return createLlmProvider({
    provider: config.llm.provider,
    // Config already refused a missing key where the provider needs one.
    apiKey: config.llm[config.llm.provider].apiKey ?? 'unused',
    baseUrl: config.llm[config.llm.provider].baseUrl,
    model: config.llm.model,
    timeoutMs: config.llm.timeoutMs,
  });
}

/** Connects the three Redis clients (commands, adapter pub, adapter sub); fails start-up if Redis does not answer. */
async function connectRedis(url: string, logger: Logger): Promise<{ command: Redis; pub: Redis; sub: Redis; quit(): Promise<void> }> {
  const make = (role: string): Redis => {
    const client = new Redis(url, {
      // Fail a command after a couple of reconnect attempts instead of queueing it forever.
      maxRetriesPerRequest: 2,
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
  try {
    await withTimeout(Promise.all(Object.values(clients).map((c) => c.connect())), 10_000, `connecting to Redis at ${redactUrl(url)}`);
  } catch (err) {
    for (const c of Object.values(clients)) c.disconnect();
    throw new Error(`Redis at ${redactUrl(url)} did not answer: ${errorMessage(err)}`);
  }
  return {
    ...clients,
    async quit() {
      await Promise.allSettled(Object.values(clients).map((c) => withTimeout(c.quit(), 2_000, 'redis quit').catch(() => c.disconnect())));
    },
  };
}

/** A Redis URL without its password, for logs and errors. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/** Composition root: wires config, runtime, shared state, pool, sweeper, heartbeat, chat, HTTP and Socket.IO, and starts listening. */
export async function createSandpool(config: Config, options: SandpoolOptions = {}): Promise<Sandpool> {
  const startedAtMs = Date.now();
  const logger = options.logger ?? createLogger({ level: config.server.logLevel, replicaId: config.server.replicaId });
  const runtime = await selectRuntime({
    mode: config.pool.runtime,
    production: config.server.nodeEnv === 'production',
    dockerSocket: config.docker.socketPath,
    logger,
  });

  // Shared state: Redis for several replicas, memory for one.
  const redis = config.cluster.redisUrl ? await connectRedis(config.cluster.redisUrl, logger) : undefined;
  const state: SharedState = options.state
    ?? (redis
    ? createRedisState({
        redis: redis.command,
        maxRequestsPerUser: config.chat.maxRequestsPerUser,
        prefix: config.cluster.redisKeyPrefix,
        slotTtlMs: config.cluster.requestSlotTtlMs,
      })
    : createMemoryState({ maxRequestsPerUser: config.chat.maxRequestsPerUser }));
  logger.info({ state: state.kind }, options.state ? 'shared state supplied by the caller' : redis ? `shared state in Redis at ${redactUrl(config.cluster.redisUrl ?? '')}` : 'single replica: state in memory');

  let stopping = false;
  let realtime: ReturnType<typeof attachRealtime> | undefined;
  let chat: ChatService | undefined;
  let sessions: SessionManager | undefined;
  const approvals = createApprovalRegistry();
  // Metrics read the pool lazily, so the registry can exist before the pool.
  let pool: ContainerPool | undefined;
  const metrics = createMetrics({
    replicaId: config.server.replicaId,
    poolStats: () => pool!.stats(),
    chat: () =>
      realtime && chat && sessions
        ? { connections: realtime.connections, sessions: sessions.count, inFlight: chat.inFlight, pendingApprovals: approvals.pendingCount }
        : undefined,
  });
  pool = createContainerPool({
    runtime,
    pool: config.pool,
    sandbox: config.sandbox,
    replicaId: config.server.replicaId,
    logger,
    observer: metrics.poolObserver,
  });
  const thePool = pool;
  if (config.pool.enabled) logger.info('[Phase 2] Container pooling enabled');
  else logger.info('Container pooling disabled (ENABLE_CONTAINER_POOL=false): every sandbox is created on demand');

  let heartbeat: Heartbeat | undefined;
  const sweeper = createOrphanSweeper({
    runtime,
    replicaId: config.server.replicaId,
    owner: ownerLabel(),
    ownedIds: () => thePool.ownedIds(),
    logger,
    graceMs: config.orphans.graceMs,
    inFlightGraceMs: config.pool.createTimeoutMs * 2,
    intervalMs: config.orphans.sweepIntervalMs,
    isReplicaLive: redis ? (id) => heartbeat?.checkLive(id) ?? false : undefined,
    onRemoved: (n) => metrics.orphansRemoved.inc(n),
  });

  const theSessions = createSessionManager({
    chat: config.chat,
    pool: thePool,
    owners: state.owners,
    replicaId: config.server.replicaId,
    // Outlives its replica on purpose: liveness comes from heartbeats, and a
    // survivor that finds a dead owner can tell the user their sandbox is gone.
    ownerTtlMs: config.chat.sessionIdleTimeoutMs + config.cluster.heartbeatIntervalMs * 3,
    isReplicaLive: async (id) => (heartbeat ? heartbeat.checkLive(id) : id === config.server.replicaId),
    logger,
  });
  sessions = theSessions;
  const theHeartbeat = createHeartbeat({
    state,
    replicaId: config.server.replicaId,
    startedAtMs,
    intervalMs: config.cluster.heartbeatIntervalMs,
    snapshot: () => ({ ...thePool.stats(), connections: realtime?.connections() ?? 0, sessions: theSessions.count() }),
    leasedUsers: theSessions.leasedUsers,
    ownerTtlMs: config.chat.sessionIdleTimeoutMs + config.cluster.heartbeatIntervalMs * 3,
    // Counted in orphansRemoved by the sweeper's onRemoved hook.
    onDeadReplica: async (dead) => void (await sweeper.removeReplica(dead)),
    logger,
  });
  heartbeat = theHeartbeat;
  // First beat before anything else: other replicas must see this one alive
  // before it owns containers, and it must know who else is alive before sweeping.
  await theHeartbeat.start();
  // Sweep before warming: an earlier crash's containers count against nobody.
  await sweeper.sweep();
  sweeper.start();
  thePool.start();

  const notReadyReasons = (): string[] => {
    if (stopping) return ['shutting down'];
    const reasons: string[] = [];
    const s = thePool.stats();
    if (!s.ready) reasons.push(s.lastError ? `sandbox pool not ready: ${s.lastError}` : 'sandbox pool warming up');
    if (!state.healthy()) reasons.push('Redis is unreachable');
    return reasons;
  };

  const provider = createProvider(config);
  logger.info({ provider: provider.name, model: provider.model }, 'agent provider');

  const http = createHttpApp({
    webRoot: webRoot(),
    replicaId: config.server.replicaId,
    startedAtMs,
    logger,
    metrics,
    poolStats: () => thePool.stats(),
    clusterStats: async () => {
      const live = await theHeartbeat.live();
      // This replica's own numbers fresh, the others' as of their last beat.
      const own = { ...thePool.stats(), replica: config.server.replicaId, connections: realtime?.connections() ?? 0, sessions: theSessions.count() };
      return [own, ...live.filter((r) => r.replica !== config.server.replicaId)];
    },
    notReadyReasons,
    isDraining: () => stopping,
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: http.fetch, port: config.server.port, hostname: config.server.host }, () => resolve(s));
    s.once('error', reject);
  });
  realtime = attachRealtime({
    httpServer: server as HttpServer,
    chat: () => theChat,
    replicaId: config.server.replicaId,
    adapter: redis ? createAdapter(redis.pub, redis.sub, { key: `${config.cluster.redisKeyPrefix}socket.io`, requestsTimeout: 5_000 }) : undefined,
    authenticate: createAuthenticator(config.auth.secret),
    logger,
    maxMessageBytes: config.chat.maxMessageBytes,
    eventsPerSecond: config.chat.socketEventsPerSecond,
    onRejected: (code) => metrics.chatObserver.rejected?.(code),
    isDraining: () => stopping,
  });
  const theRealtime = realtime;
  const theChat = createChatService({
    chat: config.chat,
    replicaId: config.server.replicaId,
    provider,
    pool: thePool,
    sessions: theSessions,
    approvals,
    state,
    bus: theRealtime.bus,
    isReplicaLive: theHeartbeat.checkLive,
    emit: (userId, event, payload) => emitToRoom(theRealtime.io, userRoom(userId), event, payload),
    logger,
    observer: metrics.chatObserver,
  });
  chat = theChat;
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.server.host === '0.0.0.0' ? '127.0.0.1' : config.server.host}:${port}`;
  logger.info({ url, replica: config.server.replicaId, runtime: runtime.kind }, 'sandpool listening');

  if (options.warmTimeoutMs) await thePool.whenWarm(options.warmTimeoutMs);

  let stopped: Promise<void> | undefined;
  async function stop(reason = 'stop requested'): Promise<void> {
    stopping = true;
    const budget = config.server.shutdownTimeoutMs;
    const deadline = Date.now() + budget;
    const left = (): number => Math.max(100, deadline - Date.now());
    logger.info({ reason, budgetMs: budget }, 'shutting down');
    sweeper.stop();
    // Requests in flight get a share of the budget to finish; the rest fail with SHUTTING_DOWN.
    await theChat.shutdown(Math.min(5_000, budget / 3));
    // Sockets are closed at the transport level: clients reconnect (through nginx) to a survivor.
    await withTimeout(theRealtime.close(), Math.min(left(), 3_000), 'socket.io close').catch(() => undefined);
    // Stop accepting; idle keep-alive sockets go now, busy ones get a bounded grace.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if ('closeIdleConnections' in server) server.closeIdleConnections();
    await withTimeout(closed, Math.min(left(), 5_000), 'http close').catch(() => {
      if ('closeAllConnections' in server) server.closeAllConnections();
    });
    await thePool.drain(left());
    // Belt and braces: whatever still carries our owner label goes, however young.
    await withTimeout(sweeper.removeOwn(), left(), 'final sweep').catch((err: unknown) =>
      logger.warn({ err: errorMessage(err) }, 'final sweep incomplete'),
    );
    await withTimeout(theHeartbeat.stop(), Math.min(left(), 2_000), 'leave cluster').catch(() => undefined);
    await state.close();
    await redis?.quit();
    logger.info({ destroyed: thePool.stats().destroyed }, 'shutdown complete');
  }

  return {
    config,
    port,
    url,
    pool: thePool,
    runtime,
    chat: theChat,
    logger,
    notReadyReasons,
    stop: (reason) => (stopped ??= stop(reason)),
  };
}

/** CLI entry: `npm start`. Reads .env (if present) and the environment, exits non-zero on bad config. */
async function runMain(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sandpool: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const app = await createSandpool(config).catch((err: unknown) => {
    process.stderr.write(`sandpool: could not start: ${errorMessage(err)}\n`);
    process.exit(1);
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      app.logger.warn('second signal: exiting now');
      process.exit(1);
    }
    void app.stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        app.logger.error({ err: errorMessage(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A rejection nobody awaited comes from best-effort background work (the
  // Socket.IO Redis adapter publishes without awaiting, for one): while Redis
  // is down it must not take every user of this replica down with it.
  process.on('unhandledRejection', (reason) => {
    app.logger.error({ err: errorMessage(reason) }, 'unhandled promise rejection (kept running)');
  });
  // A thrown exception leaves unknown state: stop cleanly (our containers are
  // removed, not orphaned), then exit non-zero for the supervisor to restart us.
  process.on('uncaughtException', (err) => {
    app.logger.fatal({ err: errorMessage(err), stack: err.stack }, 'uncaught exception: shutting down');
    const exit = setTimeout(() => process.exit(1), app.config.server.shutdownTimeoutMs + 1_000);
    exit.unref();
    void app.stop('uncaught exception').finally(() => process.exit(1));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runMain();
}
