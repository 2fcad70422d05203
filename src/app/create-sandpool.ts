import { existsSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAdaptorServer } from '@hono/node-server';
import { createAdapter } from '@socket.io/redis-adapter';
import { configWarnings, type Config } from '../config/config.js';
import { DEFAULT_POOL_IMAGE } from '../config/schema.js';
import { createProvider } from '../agent/providers/index.js';
import { createAuthenticator } from '../auth/authenticator.js';
import { createHostGuard } from '../auth/host-guard.js';
import { createOperatorGuard } from '../auth/operator-guard.js';
import { createOriginPolicy } from '../auth/origins.js';
import { createApprovalRegistry } from '../chat/approvals.js';
import { createChatService, type ChatService } from '../chat/chat-service.js';
import { createDirectToolCalls } from '../chat/direct-tool-calls.js';
import { createSandboxTools } from '../chat/sandbox-tools.js';
import { createSessionManager } from '../chat/sessions.js';
import { createToolCatalog } from '../chat/tool-catalog.js';
import { createHeartbeat, heartbeatTtlMs } from '../cluster/heartbeat.js';
import { createLiveness } from '../cluster/liveness.js';
import { connectRedis, connectRedisCommand, evictionPolicyOf, redactUrl } from '../cluster/redis-clients.js';
import { createSingleReplicaBus, type ReplicaBus } from '../cluster/replica-bus.js';
import { createAdminRoutes } from '../http/admin-routes.js';
import { createHttpApp } from '../http/http-app.js';
import { createMeRoutes } from '../http/me-routes.js';
import { notReadyReasons as readinessOf, type NotReadyReason } from '../http/readiness.js';
import { createMcpRoutes } from '../mcp-gateway/mcp-routes.js';
import { createMcpSessionHooks } from '../mcp-gateway/mcp-session-hooks.js';
import { createMcpSessionRegistry } from '../mcp-gateway/mcp-sessions.js';
import { createToolPolicy } from '../mcp-gateway/tool-policy.js';
import { createUserMcpServer } from '../mcp-gateway/user-mcp-server.js';
import { createLogger, type Logger } from '../logger.js';
import { createMetrics } from '../metrics/metrics.js';
import { createDeadReplicaReaper } from '../orphans/dead-replica-reaper.js';
import { createOrphanSweeper } from '../orphans/orphan-sweeper.js';
import { createContainerPool, ownerLabel, type ContainerPool } from '../pool/container-pool.js';
import { createPlanCatalog } from '../plans/plans.js';
import { createMemoryQuotaStore } from '../quota/memory-quota-store.js';
import { createQuota } from '../quota/quota.js';
import type { QuotaStore } from '../quota/quota-store.js';
import { createRedisQuotaStore } from '../quota/redis-quota-store.js';
import { installHandshakeGate, routingHintOf } from '../realtime/handshake-gate.js';
import { createOverflow } from '../realtime/overflow.js';
import { closeSockets, registerGateway } from '../realtime/gateway.js';
import { createSocketIoReplicaBus } from '../realtime/socket-io-replica-bus.js';
import { createSocketServer } from '../realtime/socket-server.js';
import { containerOnlySettings, selectRuntime } from '../runtime/select-runtime.js';
import type { ContainerRuntime } from '../runtime/types.js';
import { createMemoryState } from '../state/memory-state.js';
import { createRedisState } from '../state/redis-state.js';
import { createWorkspaceStore } from '../workspace/select-store.js';
import { createWorkspaces } from '../workspace/workspaces.js';
import type { SharedState } from '../state/types.js';
import { runShutdown } from './shutdown.js';

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
  notReadyReasons(): NotReadyReason[];
  /** Graceful, bounded shutdown: /ready 503, stop accepting, finish or fail in-flight work, drain the pool, quit Redis. */
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
  /** Where tool calls are counted, instead of the one the config selects (Redis when REDIS_URL is set, else memory). Closed on stop. */
  quotaStore?: QuotaStore;
}

/** The web page's files: <repo>/web, from src/ (tsx) or dist/src/ alike. */
function webRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const fromDist = path.resolve(here, '../../../web');
  return existsSync(fromDist) ? fromDist : path.resolve(here, '../../web');
}

/**
 * The composition root: wires config, runtime, shared state, pool, sweeper,
 * heartbeat, chat, HTTP and Socket.IO, and starts listening. It only wires:
 * every decision lives in the module it belongs to.
 */
export async function createSandpool(config: Config, options: SandpoolOptions = {}): Promise<Sandpool> {
  const startedAtMs = Date.now();
  const { server: serverConfig } = config;
  const replicaId = serverConfig.replicaId;
  const logger = options.logger ?? createLogger({ level: serverConfig.logLevel, replicaId });
  for (const warning of configWarnings(config)) logger.warn(`WARNING: ${warning}`);
  const runtime = await selectRuntime({
    mode: config.pool.runtime,
    production: serverConfig.nodeEnv === 'production',
    dockerSocket: config.docker.socketPath,
    // The process runtime has no image to run: an operator who chose one must hear that it is ignored.
    customSpec: containerOnlySettings(config.pool, DEFAULT_POOL_IMAGE),
    logger,
  });

  // Shared state: Redis for several replicas, memory for one.
  const redisPassword = config.cluster.redisPassword;
  const redis = config.cluster.redisUrl ? await connectRedis({ url: config.cluster.redisUrl, password: redisPassword, logger }) : undefined;
  if (redis) {
    const policy = await evictionPolicyOf(redis.command);
    if (policy !== undefined && policy !== 'noeviction') {
      logger.warn(`WARNING: REDIS_URL's Redis evicts keys under memory pressure (maxmemory-policy ${policy}): a request slot or owner record it drops lifts a limit silently. Run it with noeviction, and snapshots in their own Redis (WORKSPACE_REDIS_URL).`);
    }
  }
  const state: SharedState =
    options.state ??
    (redis
      ? createRedisState({
          redis: redis.command,
          maxRequestsPerUser: config.chat.maxRequestsPerUser,
          maxSocketsPerUser: config.auth.maxSocketsPerUser,
          eventsPerSecond: config.chat.socketEventsPerSecond,
          prefix: config.cluster.redisKeyPrefix,
          slotTtlMs: config.cluster.requestSlotTtlMs,
        })
      : createMemoryState({ maxRequestsPerUser: config.chat.maxRequestsPerUser, maxSocketsPerUser: config.auth.maxSocketsPerUser, eventsPerSecond: config.chat.socketEventsPerSecond }));
  logger.info(
    { state: state.kind },
    options.state ? 'shared state supplied by the caller' : redis ? `shared state in Redis at ${redactUrl(config.cluster.redisUrl ?? '')}` : 'single replica: state in memory',
  );

  // Plans were read and checked by loadConfig; here their unset fields get the deployment's defaults.
  const plans = createPlanCatalog({
    plans: config.plans.specs,
    defaultPlan: config.plans.defaultPlan,
    maxInFlight: config.chat.maxRequestsPerUser,
    workspaceMaxBytes: config.workspace.maxBytes,
  });
  const metrics = createMetrics({ replicaId, plans: plans.names });
  const quotaStore = options.quotaStore ?? (redis ? createRedisQuotaStore({ redis: redis.command, prefix: config.cluster.redisKeyPrefix }) : createMemoryQuotaStore());
  const quota = createQuota({ store: quotaStore, failMode: config.plans.quotaFailMode, logger, observer: metrics.quotaObserver });
  logger.info(
    { plans: plans.names, defaultPlan: plans.defaultPlan.name, quotaStore: quotaStore.kind, quotaFailMode: config.plans.quotaFailMode },
    `plans: ${plans.names.join(', ')} (default ${plans.defaultPlan.name}); tool calls counted in ${quotaStore.kind}`,
  );
  const pool = createContainerPool({ runtime, pool: config.pool, sandbox: config.sandbox, replicaId, logger, observer: metrics.poolObserver });
  metrics.watchPool(() => pool.stats());
  if (config.pool.enabled) logger.info('[Phase 2] Container pooling enabled');
  else logger.info('Container pooling disabled (ENABLE_CONTAINER_POOL=false): every sandbox is created on demand');

  const liveness = createLiveness({ registry: state.replicas, self: replicaId });
  const sweeper = createOrphanSweeper({
    runtime,
    replicaId,
    owner: ownerLabel(),
    ownedIds: () => pool.ownedIds(),
    logger,
    graceMs: config.orphans.graceMs,
    inFlightGraceMs: config.pool.createTimeoutMs * 2,
    intervalMs: config.orphans.sweepIntervalMs,
    deadReplicaGraceMs: config.orphans.deadReplicaGraceMs,
    isReplicaLive: liveness.isLive,
    onRemoved: (n) => metrics.orphansRemoved.inc(n),
  });
  const reaper = createDeadReplicaReaper({
    registry: state.replicas,
    self: replicaId,
    node: serverConfig.nodeName,
    // By then an unclaimed container of it counts as an orphan by age on its own node anyway.
    forgetOtherNodeAfterMs: config.orphans.graceMs,
    intervalMs: config.cluster.heartbeatIntervalMs,
    peers: liveness.peers,
    // Counted in orphansRemoved by the sweeper's onRemoved hook.
    removeReplica: (dead) => sweeper.removeDeadReplica(dead.replica, dead.lastSeenAtMs),
    logger,
  });

  // Users' files across sandboxes: snapshots in Redis (shared) or on this replica's disk.
  const snapshotRedis =
    config.workspace.store === 'redis' && config.workspace.redisUrl !== undefined && config.workspace.redisUrl !== config.cluster.redisUrl
      ? await connectRedisCommand({ url: config.workspace.redisUrl, password: redisPassword, logger })
      : redis;
  const workspaceStore = createWorkspaceStore(config.workspace, { redis: snapshotRedis?.command, prefix: config.cluster.redisKeyPrefix });
  const workspaces = createWorkspaces({
    store: workspaceStore,
    maxBytes: config.workspace.maxBytes,
    timeoutMs: config.chat.toolCallTimeoutMs,
    logger,
    observer: metrics.workspaceObserver,
  });
  logger.info({ store: workspaceStore.kind }, workspaceStore.kind === 'none' ? 'workspace snapshots off' : `workspace snapshots in ${workspaceStore.kind}`);

  // Outlives its replica on purpose: liveness comes from heartbeats, and a
  // survivor that finds a dead owner can tell the user their sandbox is gone.
  const ownerTtlMs = config.chat.sessionIdleTimeoutMs + heartbeatTtlMs(config.cluster.heartbeatIntervalMs);
  const heartbeat = createHeartbeat({
    state,
    liveness,
    startedAtMs,
    intervalMs: config.cluster.heartbeatIntervalMs,
    ownerTtlMs,
    logger,
  });
  const sessions = createSessionManager({
    chat: config.chat,
    pool,
    owners: state.owners,
    replicaId,
    ownerTtlMs,
    isReplicaLive: liveness.isLive,
    ensureCurrent: heartbeat.ensureCurrent,
    workspaces,
    logger,
  });
  heartbeat.track(sessions);

  const authenticate = createAuthenticator(config.auth, plans);
  const origins = createOriginPolicy(config.auth);
  const hosts = createHostGuard(config.auth);
  const operators = createOperatorGuard({ ...config.auth, authSecret: config.auth.secret });
  logger.info({ hosts: hosts.names, operatorEndpoints: operators.mode }, 'request guards');
  const provider = createProvider(config.llm);
  logger.info({ provider: provider.name, model: provider.model }, 'agent provider');
  const toolCatalog = createToolCatalog(pool);

  // Socket.IO first (attached to the HTTP server below): replicas route to each other over it.
  const adapter = redis ? createAdapter(redis.pub, redis.sub, { key: `${config.cluster.redisKeyPrefix}socket.io`, requestsTimeout: 5_000 }) : undefined;
  const { io, emitToUser } = createSocketServer({ adapter, maxMessageBytes: config.chat.maxMessageBytes, allowedOrigins: config.auth.allowedOrigins });
  const bus: ReplicaBus = redis ? createSocketIoReplicaBus({ io, replicaId, logger, toolCallSlackMs: config.pool.acquireTimeoutMs + 5_000 }) : createSingleReplicaBus();
  // A tool the image marks read-only leaves the files as they were: no snapshot after it.
  const sandboxTools = createSandboxTools({ sessions, bus, workspaces, quota, plans, isReadOnly: toolCatalog.isReadOnly });
  const directCalls = createDirectToolCalls({
    sessions,
    sandboxTools,
    limiter: state.limiter,
    plans,
    toolCallTimeoutMs: config.chat.toolCallTimeoutMs,
    logger,
    onRefused: (code, plan) => metrics.chatObserver.rejected(code, plan),
  });
  const toolPolicy = createToolPolicy(config.mcp.tools);
  const mcpServerFor = (userId: string): ReturnType<typeof createUserMcpServer> =>
    createUserMcpServer(userId, { tools: toolCatalog.raw, policy: toolPolicy, calls: directCalls, logger, observe: metrics.mcpCall });
  const mcpSessions = createMcpSessionRegistry({
    serverFor: mcpServerFor,
    idleTimeoutMs: config.chat.sessionIdleTimeoutMs,
    maxBodyBytes: config.mcp.maxBodyBytes,
    ...createMcpSessionHooks({ sockets: state.sockets, maxSocketsPerUser: config.auth.maxSocketsPerUser, sessions, owners: state.owners, bus, replicaId }),
    logger,
  });
  metrics.watchMcpSessions(mcpSessions.count);

  const approvals = createApprovalRegistry();
  const chat = createChatService({
    settings: config.chat,
    replicaId,
    provider,
    tools: toolCatalog,
    sandboxTools,
    sessions,
    approvals,
    state,
    bus,
    isReplicaLive: liveness.isLive,
    emit: emitToUser,
    logger,
    observer: metrics.chatObserver,
    plans,
    quota,
  });

  // HTTP (not listening yet), with Socket.IO attached to the same server.
  let draining = false;
  const notReadyReasons = (): NotReadyReason[] => readinessOf({ draining, pool: pool.stats(), stateHealthy: state.healthy() });
  // Known once listening (PORT=0 picks one).
  let url = '';
  const http = createHttpApp({
    webRoot: webRoot(),
    replicaId,
    startedAtMs,
    logger,
    metrics,
    poolStats: () => pool.stats(),
    clusterStats: async () => {
      const live = await liveness.live();
      // This replica's own numbers fresh, the others' as of their last beat.
      return [{ ...replicaNumbers(), replica: replicaId }, ...live.filter((r) => r.replica !== replicaId)];
    },
    notReadyReasons,
    isDraining: () => draining,
    allowedOrigins: config.auth.allowedOrigins,
    mcp: createMcpRoutes({
      authenticate,
      tokensAreJwts: config.auth.secret !== undefined,
      issuer: config.auth.issuer,
      origins,
      publicUrl: () => config.auth.publicUrl ?? url,
      sessions: mcpSessions,
      serverFor: mcpServerFor,
      maxBodyBytes: config.mcp.maxBodyBytes,
      logger,
      onAuthFailed: () => metrics.authFailed('mcp'),
    }),
    admin: createAdminRoutes({ wipeWorkspace: (userId) => chat.wipeWorkspace(userId) }),
    operators,
    me: createMeRoutes({ authenticate, tokensAreJwts: config.auth.secret !== undefined, plans, quota, onAuthFailed: () => metrics.authFailed('http') }),
  });
  const server = createAdaptorServer({ fetch: http.fetch }) as HttpServer;
  io.attach(server);
  const replicaNumbers = (): Record<string, unknown> => ({
    ...pool.stats(),
    // Which machine: a replica leases from its own node's engine, so a node's sandboxes are its replicas'.
    node: config.server.nodeName,
    connections: io.engine.clientsCount,
    sessions: sessions.count(),
    // With sessions, what other replicas read to pass new users on to one with room.
    maxSessions: config.chat.maxSessions,
    draining,
  });
  heartbeat.publish(replicaNumbers);

  bus.serve({
    message: (userId, payload, plan) => chat.handleMessage(userId, payload, { routed: true, ...(plan !== undefined ? { plan } : {}) }),
    approval: (userId, approval) => chat.handleApproval(userId, approval, { routed: true }),
    tool: (userId, call) => sandboxTools.runRouted(userId, call),
    release: (userId) => sessions.releaseIfUnheld(userId),
    wipe: (userId) => sessions.wipe(userId),
  });
  registerGateway({
    io,
    chat,
    authenticate,
    origins,
    sockets: state.sockets,
    maxSocketsPerUser: config.auth.maxSocketsPerUser,
    budget: state.events,
    eventsPerSecond: config.chat.socketEventsPerSecond,
    logger,
    onRejected: (code, plan) => metrics.chatObserver.rejected(code, plan),
    onAuthFailed: () => metrics.authFailed('socket'),
  });
  metrics.watchChat({
    connections: () => io.engine.clientsCount,
    sessions: sessions.count,
    inFlight: chat.inFlight,
    pendingApprovals: approvals.pendingCount,
  });
  const overflow = createOverflow({ hasRoomFor: chat.hasRoomFor, peers: liveness.peers });
  installHandshakeGate(
    server,
    {
      hosts,
      refuse: (req) => {
        if (draining) return { code: 'SHUTTING_DOWN', message: 'this replica is shutting down; connect again (another replica will answer)' };
        if (overflow.passOn(routingHintOf(req))) return { code: 'TOO_MANY_REQUESTS', message: 'this replica is full; connect again (another replica has room)' };
        return undefined;
      },
    },
    logger,
  );

  // First beat before anything else: other replicas must see this one alive
  // before it owns containers, and it must know who else is alive before sweeping.
  await heartbeat.start();
  // Sweep before warming: an earlier crash's containers count against nobody.
  await sweeper.sweep();
  sweeper.start();
  reaper.start();
  pool.start();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(serverConfig.port, serverConfig.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  url = `http://${serverConfig.host === '0.0.0.0' ? '127.0.0.1' : serverConfig.host}:${port}`;
  logger.info({ url, replica: replicaId, runtime: runtime.kind }, 'sandpool listening');

  if (options.warmTimeoutMs) await pool.whenWarm(options.warmTimeoutMs);

  const budgetMs = serverConfig.shutdownTimeoutMs;
  let stopped: Promise<void> | undefined;
  async function stop(reason: string): Promise<void> {
    // Readiness first: /ready answers 503 and new handshakes go to another replica.
    draining = true;
    logger.info({ reason, budgetMs }, 'shutting down');
    await runShutdown(
      [
        { name: 'stop background sweeps', run: () => (sweeper.stop(), reaper.stop()) },
        // Requests in flight get a share of the budget to finish; the rest fail with SHUTTING_DOWN.
        { name: 'finish requests in flight', maxMs: Math.min(5_000, budgetMs / 3) + 1_000, run: () => chat.shutdown(Math.min(5_000, budgetMs / 3)) },
        // Sockets are closed at the transport level: clients reconnect (through nginx) to a survivor.
        { name: 'close sockets', maxMs: 3_000, run: () => closeSockets(io) },
        { name: 'close MCP sessions', maxMs: 2_000, run: () => mcpSessions.closeAll() },
        {
          name: 'stop accepting HTTP',
          maxMs: 5_000,
          // Idle keep-alive sockets go now, busy ones get a bounded grace.
          run: () => {
            const closed = new Promise<void>((resolve) => server.close(() => resolve()));
            server.closeIdleConnections();
            return closed;
          },
          onTimeout: () => server.closeAllConnections(),
        },
        { name: 'drain the pool', run: (ms) => pool.drain(ms) },
        // Belt and braces: whatever still carries our owner label goes, however young.
        { name: 'remove our containers', run: () => sweeper.removeOwn() },
        { name: 'leave the cluster', maxMs: 2_000, run: () => heartbeat.stop() },
        { name: 'close shared state', maxMs: 2_000, run: () => state.close() },
        { name: 'close the quota store', maxMs: 2_000, run: () => quotaStore.close() },
        { name: 'close the workspace store', maxMs: 2_000, run: () => workspaceStore.close() },
        { name: 'quit Redis', maxMs: 3_000, run: () => Promise.all([redis?.quit(), snapshotRedis !== redis ? snapshotRedis?.quit() : undefined]) },
      ],
      { budgetMs, logger },
    );
    logger.info({ destroyed: pool.stats().destroyed }, 'shutdown complete');
  }

  return {
    config,
    port,
    url,
    pool,
    runtime,
    chat,
    logger,
    notReadyReasons,
    stop: (reason = 'stop requested') => (stopped ??= stop(reason)),
  };
}
