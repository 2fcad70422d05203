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
import { createAuthenticator, type Authenticate } from '../auth/authenticator.js';
import { createHostGuard, type HostGuard } from '../auth/host-guard.js';
import { createOperatorGuard, type OperatorGuard } from '../auth/operator-guard.js';
import { createOriginPolicy, type OriginPolicy } from '../auth/origins.js';
import { createApprovalRegistry, type ApprovalRegistry } from '../chat/approvals.js';
import { createChatService, type ChatService } from '../chat/chat-service.js';
import { createDirectToolCalls } from '../chat/direct-tool-calls.js';
import { createOwnership } from '../chat/ownership.js';
import { createPresences, type Presences } from '../chat/presence.js';
import { createSandboxLeases, type SandboxLeases } from '../chat/sandbox-leases.js';
import { createSandboxTools, type SandboxTools } from '../chat/sandbox-tools.js';
import { createToolCatalog } from '../chat/tool-catalog.js';
import { createHeartbeat, deadReplicaVisibleMs, ownershipTtlMs, type Heartbeat } from '../cluster/heartbeat.js';
import { createLiveness, type Liveness } from '../cluster/liveness.js';
import { connectRedis, connectRedisCommand, redactUrl, warnIfEvicting, type RedisClient, type RedisClients } from '../cluster/redis-clients.js';
import { createSingleReplicaBus, type ReplicaBus } from '../cluster/replica-bus.js';
import { createAdminRoutes } from '../http/admin-routes.js';
import { createHttpApp } from '../http/http-app.js';
import { createMeRoutes } from '../http/me-routes.js';
import { notReadyReasons as readinessOf, type NotReadyReason } from '../http/readiness.js';
import { createMcpRoutes, type McpGateway } from '../mcp-gateway/mcp-routes.js';
import { createMcpSessionHooks } from '../mcp-gateway/mcp-session-hooks.js';
import { createMcpSessionRegistry, type McpSessionRegistry } from '../mcp-gateway/mcp-sessions.js';
import { createRequestStateCheck } from '../mcp-gateway/request-state.js';
import { createToolPolicy } from '../mcp-gateway/tool-policy.js';
import { createMcpTools, createUserMcpServer, type McpTools } from '../mcp-gateway/user-mcp-server.js';
import { createLogger, type Logger } from '../logger.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import { createDeadReplicaReaper, type DeadReplicaReaper } from '../orphans/dead-replica-reaper.js';
import { createOrphanSweeper, type OrphanSweeper } from '../orphans/orphan-sweeper.js';
import { createContainerPool, ownerLabel, type ContainerPool } from '../pool/container-pool.js';
import { createPlanCatalog, type PlanCatalog } from '../plans/plans.js';
import { createMemoryQuotaStore } from '../quota/memory-quota-store.js';
import { createQuota, type Quota } from '../quota/quota.js';
import type { QuotaStore } from '../quota/quota-store.js';
import { createRedisQuotaStore } from '../quota/redis-quota-store.js';
import { installHandshakeGate, refuseNewHandshakes } from '../realtime/handshake-gate.js';
import { createOverflow } from '../realtime/overflow.js';
import { closeSockets, registerGateway } from '../realtime/gateway.js';
import { createSocketIoReplicaBus } from '../realtime/socket-io-replica-bus.js';
import { createSocketServer, type EmitToUser, type SandpoolIo } from '../realtime/socket-server.js';
import { containerOnlySettings, selectRuntime } from '../runtime/select-runtime.js';
import type { ContainerRuntime } from '../runtime/types.js';
import { createSharedState } from '../state/select-state.js';
import type { SharedState } from '../state/types.js';
import { createWorkspaceStore, snapshotRedisOf } from '../workspace/select-store.js';
import type { WorkspaceStore } from '../workspace/workspace-store.js';
import { createWorkspaces, type Workspaces } from '../workspace/workspaces.js';
import { runShutdown, shutdownPlan } from './shutdown.js';

/** A running replica: the one object the composition root hands out. */
export interface Sandpool {
  readonly config: Config;
  readonly port: number;
  readonly url: string;
  readonly pool: ContainerPool;
  readonly runtime: ContainerRuntime;
  readonly chat: ChatService;
  /** Users present here, and the sandboxes they hold (bench:mcp calls a user's sandbox through them, past the gateway). */
  readonly presences: Presences;
  readonly leases: SandboxLeases;
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

/** Whether this replica is shutting down: set once by stop(), read by readiness, the handshake gate and the heartbeat. */
interface Lifecycle {
  draining: boolean;
}

/** What every wiring function gets. */
interface Basics {
  config: Config;
  replicaId: string;
  logger: Logger;
}

/** Who may do what: tokens, browser origins, Host names, operators. */
interface Guards {
  authenticate: Authenticate;
  origins: OriginPolicy;
  hosts: HostGuard;
  operators: OperatorGuard;
}

function wireGuards({ config, logger }: Basics, plans: PlanCatalog): Guards {
  const hosts = createHostGuard(config.auth);
  const operators = createOperatorGuard({ ...config.auth, authSecret: config.auth.secret });
  logger.info({ hosts: hosts.names, operatorEndpoints: operators.mode }, 'request guards');
  // A token's `plan` claim names one of the plans (DEFAULT_PLAN without it).
  return { authenticate: createAuthenticator(config.auth, plans), origins: createOriginPolicy(config.auth), hosts, operators };
}

/** Shared state: Redis for several replicas (with the Socket.IO adapter's connections), memory for one. */
async function wireState(
  { config, logger }: Basics,
  supplied: SharedState | undefined,
): Promise<{ state: SharedState; redis: RedisClients | undefined }> {
  const { redisUrl, redisPassword, redisConnectTimeoutMs, redisCommandTimeoutMs } = config.cluster;
  const redis = redisUrl
    ? await connectRedis({ url: redisUrl, password: redisPassword, logger, connectTimeoutMs: redisConnectTimeoutMs, commandTimeoutMs: redisCommandTimeoutMs })
    : undefined;
  if (redis) await warnIfEvicting(redis.command, logger);
  const state = supplied ?? createSharedState(config, { redis: redis?.command, logger });
  logger.info({ state: state.kind }, supplied ? 'shared state supplied by the caller' : redis ? `shared state in Redis at ${redactUrl(redisUrl ?? '')}` : 'single replica: state in memory');
  return { state, redis };
}

/** Plans (PLANS_FILE, read and checked by loadConfig) and where each user's tool calls are counted against them. */
function wirePlans(
  { config, logger }: Basics,
  deps: { redis: RedisClients | undefined; supplied: QuotaStore | undefined; metrics: (plans: readonly string[]) => Metrics },
): { plans: PlanCatalog; quota: Quota; quotaStore: QuotaStore; metrics: Metrics } {
  // Unset fields of a plan get the deployment's defaults.
  const plans = createPlanCatalog({
    plans: config.plans.specs,
    defaultPlan: config.plans.defaultPlan,
    maxInFlight: config.chat.maxRequestsPerUser,
    workspaceMaxBytes: config.workspace.maxBytes,
  });
  // Metrics are labelled by plan: their label values are the plans' names, known here.
  const metrics = deps.metrics(plans.names);
  const quotaStore = deps.supplied ?? (deps.redis ? createRedisQuotaStore({ redis: deps.redis.command, prefix: config.cluster.redisKeyPrefix }) : createMemoryQuotaStore());
  const quota = createQuota({ store: quotaStore, failMode: config.plans.quotaFailMode, logger, observer: metrics.quotaObserver });
  logger.info(
    { plans: plans.names, defaultPlan: plans.defaultPlan.name, quotaStore: quotaStore.kind, quotaFailMode: config.plans.quotaFailMode },
    `plans: ${plans.names.join(', ')} (default ${plans.defaultPlan.name}); tool calls counted in ${quotaStore.kind}`,
  );
  return { plans, quota, quotaStore, metrics };
}

/** The warm pool, which replicas are alive, and the sweeps that remove what nobody owns. */
function wirePool(
  { config, replicaId, logger }: Basics,
  deps: { runtime: ContainerRuntime; state: SharedState; metrics: Metrics },
): { pool: ContainerPool; liveness: Liveness; sweeper: OrphanSweeper; reaper: DeadReplicaReaper } {
  const { runtime, state, metrics } = deps;
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
    node: config.server.nodeName,
    // By then an unclaimed container of it counts as an orphan by age on its own node anyway.
    forgetOtherNodeAfterMs: config.orphans.graceMs,
    intervalMs: config.cluster.heartbeatIntervalMs,
    peers: liveness.peers,
    // Counted in orphansRemoved by the sweeper's onRemoved hook.
    removeReplica: (dead) => sweeper.removeDeadReplica(dead.replica, dead.lastSeenAtMs),
    logger,
  });
  return { pool, liveness, sweeper, reaper };
}

/** Users' files across sandboxes: snapshots in Redis (shared) or on this replica's disk. */
async function wireWorkspaces(
  { config, logger }: Basics,
  deps: { redis: RedisClients | undefined; metrics: Metrics },
): Promise<{ workspaces: Workspaces; store: WorkspaceStore; snapshotRedis: RedisClient | undefined }> {
  const where = snapshotRedisOf(config);
  const { redisPassword: password, redisConnectTimeoutMs: connectTimeoutMs, redisCommandTimeoutMs: commandTimeoutMs } = config.cluster;
  const snapshotRedis =
    where.kind === 'own' ? await connectRedisCommand({ url: where.url, password, logger, connectTimeoutMs, commandTimeoutMs }) : where.kind === 'shared' ? deps.redis : undefined;
  const store = createWorkspaceStore(config.workspace, { redis: snapshotRedis?.command, prefix: config.cluster.redisKeyPrefix });
  const workspaces = createWorkspaces({ store, maxBytes: config.workspace.maxBytes, timeoutMs: config.chat.toolCallTimeoutMs, logger, observer: deps.metrics.workspaceObserver });
  logger.info({ store: store.kind }, store.kind === 'none' ? 'workspace snapshots off' : `workspace snapshots in ${store.kind}`);
  return { workspaces, store, snapshotRedis };
}

/** Who is here, their sandboxes and who owns them, kept current by this replica's heartbeat. */
function wireUsers(
  { config, replicaId, logger }: Basics,
  deps: { state: SharedState; liveness: Liveness; pool: ContainerPool; workspaces: Workspaces; metrics: Metrics; startedAtMs: number },
): { heartbeat: Heartbeat; presences: Presences; leases: SandboxLeases; ownership: ReturnType<typeof createOwnership> } {
  const { state, liveness } = deps;
  const ownerTtlMs = ownershipTtlMs(config.chat.sessionIdleTimeoutMs, config.cluster.heartbeatIntervalMs);
  const heartbeat = createHeartbeat({ state, liveness, startedAtMs: deps.startedAtMs, intervalMs: config.cluster.heartbeatIntervalMs, ownerTtlMs, logger });
  const ownership = createOwnership({ owners: state.owners, replicaId, ownerTtlMs, isReplicaLive: liveness.isLive, logger });
  const leases = createSandboxLeases({
    pool: deps.pool,
    ownership,
    ensureCurrent: heartbeat.ensureCurrent,
    workspaces: deps.workspaces,
    logger,
    observer: { returningUser: deps.metrics.returningUser },
  });
  const presences = createPresences({ settings: config.chat, sandbox: leases });
  heartbeat.track(leases);
  return { heartbeat, presences, leases, ownership };
}

/** The Socket.IO server and the replica bus over it, before the HTTP server it is attached to: replicas route to each other over it. */
function wireSockets({ config, replicaId, logger }: Basics, redis: RedisClients | undefined): { io: SandpoolIo; emitToUser: EmitToUser; bus: ReplicaBus } {
  const { redisKeyPrefix, replicaRequestTimeoutMs } = config.cluster;
  const adapter = redis ? createAdapter(redis.pub, redis.sub, { key: `${redisKeyPrefix}socket.io`, requestsTimeout: replicaRequestTimeoutMs }) : undefined;
  const { io, emitToUser } = createSocketServer({ adapter, maxMessageBytes: config.chat.maxMessageBytes, allowedOrigins: config.auth.allowedOrigins });
  // A routed tool call may wait for a sandbox on the other replica, then for the hop back.
  const toolCallSlackMs = config.pool.acquireTimeoutMs + replicaRequestTimeoutMs;
  const bus = redis ? createSocketIoReplicaBus({ io, replicaId, logger, toolCallSlackMs }) : createSingleReplicaBus();
  return { io, emitToUser, bus };
}

/** The chat service and what MCP clients call directly, over the user's sandbox here or on its owner. */
function wireChat(
  { config, replicaId, logger }: Basics,
  deps: {
    state: SharedState;
    pool: ContainerPool;
    users: ReturnType<typeof wireUsers>;
    workspaces: Workspaces;
    sockets: ReturnType<typeof wireSockets>;
    metrics: Metrics;
    plans: PlanCatalog;
    quota: Quota;
  },
): { chat: ChatService; approvals: ApprovalRegistry; sandboxTools: SandboxTools; mcpSessions: McpSessionRegistry; mcpServerFor: (userId: string) => ReturnType<typeof createUserMcpServer>; mcpTools: McpTools } {
  const { state, users, sockets, metrics, plans, quota } = deps;
  const { presences, leases, ownership } = users;
  const { bus } = sockets;
  const provider = createProvider(config.llm);
  logger.info({ provider: provider.name, model: provider.model }, 'agent provider');
  const toolCatalog = createToolCatalog(deps.pool);
  // A routed call or message whose owner gives no answer waits (bounded) for that owner's heartbeat to lapse.
  const silentOwner = { lapseMs: deadReplicaVisibleMs(config.cluster.heartbeatIntervalMs), pollMs: config.cluster.heartbeatIntervalMs };
  // A tool the image marks read-only leaves the files as they were: no snapshot after it.
  const sandboxTools = createSandboxTools({ presences, leases, bus, ownership, silentOwner, workspaces: deps.workspaces, quota, plans, isReadOnly: toolCatalog.isReadOnly });
  const calls = createDirectToolCalls({
    presences,
    sandboxTools,
    limiter: state.limiter,
    plans,
    toolCallTimeoutMs: config.chat.toolCallTimeoutMs,
    logger,
    onRefused: (code, plan) => metrics.chatObserver.rejected(code, plan),
  });
  const policy = createToolPolicy(config.mcp.tools);
  const verifyRequestState = createRequestStateCheck();
  const mcpTools = createMcpTools({ tools: toolCatalog.raw, policy, calls, logger, observe: metrics.mcpCall });
  const mcpServerFor = (userId: string): ReturnType<typeof createUserMcpServer> => createUserMcpServer(userId, { tools: mcpTools, logger, verifyRequestState });
  const mcpSessions = createMcpSessionRegistry({
    serverFor: mcpServerFor,
    idleTimeoutMs: config.chat.sessionIdleTimeoutMs,
    maxBodyBytes: config.mcp.maxBodyBytes,
    ...createMcpSessionHooks({ sockets: state.sockets, maxSocketsPerUser: config.auth.maxSocketsPerUser, presences, owners: state.owners, bus, replicaId }),
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
    presences,
    leases,
    ownership,
    silentOwner,
    approvals,
    state,
    bus,
    emit: sockets.emitToUser,
    logger,
    observer: metrics.chatObserver,
    plans,
    quota,
  });
  return { chat, approvals, sandboxTools, mcpSessions, mcpServerFor, mcpTools };
}

/** The HTTP app (not listening yet) on a server the Socket.IO server is attached to. */
function wireHttp(
  { config, replicaId, logger }: Basics,
  deps: {
    startedAtMs: number;
    metrics: Metrics;
    pool: ContainerPool;
    liveness: Liveness;
    heartbeat: Heartbeat;
    chatLayer: ReturnType<typeof wireChat>;
    io: SandpoolIo;
    guards: Guards;
    plans: PlanCatalog;
    quota: Quota;
    notReadyReasons: () => NotReadyReason[];
    lifecycle: Lifecycle;
    /** Known once listening (PORT=0 picks one). */
    url: () => string;
  },
): { server: HttpServer; mcp: McpGateway } {
  const { pool, liveness, chatLayer, guards } = deps;
  const mcp = createMcpRoutes({
    authenticate: guards.authenticate,
    tokensAreJwts: config.auth.secret !== undefined,
    issuer: config.auth.issuer,
    origins: guards.origins,
    publicUrl: () => config.auth.publicUrl ?? deps.url(),
    sessions: chatLayer.mcpSessions,
    serverFor: chatLayer.mcpServerFor,
    tools: chatLayer.mcpTools,
    maxBodyBytes: config.mcp.maxBodyBytes,
    logger,
    observeEra: deps.metrics.mcpRequest,
    onAuthFailed: () => deps.metrics.authFailed('mcp'),
  });
  const http = createHttpApp({
    webRoot: webRoot(),
    replicaId,
    startedAtMs: deps.startedAtMs,
    logger,
    metrics: deps.metrics,
    poolStats: () => pool.stats(),
    clusterStats: async () => {
      const live = await liveness.live();
      // This replica's own numbers fresh, the others' as of their last beat.
      return [deps.heartbeat.record(), ...live.filter((r) => r.replica !== replicaId)];
    },
    notReadyReasons: deps.notReadyReasons,
    isDraining: () => deps.lifecycle.draining,
    allowedOrigins: config.auth.allowedOrigins,
    mcp: mcp.routes,
    admin: createAdminRoutes({ wipeWorkspace: (userId) => chatLayer.chat.wipeWorkspace(userId) }),
    operators: guards.operators,
    me: createMeRoutes({
      authenticate: guards.authenticate,
      tokensAreJwts: config.auth.secret !== undefined,
      plans: deps.plans,
      quota: deps.quota,
      onAuthFailed: () => deps.metrics.authFailed('http'),
    }),
  });
  const server = createAdaptorServer({ fetch: http.fetch }) as HttpServer;
  deps.io.attach(server);
  return { server, mcp };
}

/**
 * What other replicas see and send here, the Socket.IO gateway, and the gate
 * in front of new handshakes (draining, or full while a peer has room).
 */
function wireRealtime(
  { config, logger }: Basics,
  deps: {
    server: HttpServer;
    io: SandpoolIo;
    bus: ReplicaBus;
    state: SharedState;
    pool: ContainerPool;
    liveness: Liveness;
    users: ReturnType<typeof wireUsers>;
    chatLayer: ReturnType<typeof wireChat>;
    metrics: Metrics;
    guards: Guards;
    lifecycle: Lifecycle;
  },
): void {
  const { io, state, users, metrics } = deps;
  const { chat, sandboxTools, approvals } = deps.chatLayer;
  users.heartbeat.publish(() => ({
    ...deps.pool.stats(),
    // Which machine: a replica leases from its own node's engine, so a node's sandboxes are its replicas'.
    node: config.server.nodeName,
    connections: io.engine.clientsCount,
    sessions: users.presences.count(),
    // With sessions, what other replicas read to pass new users on to one with room.
    maxSessions: config.chat.maxSessions,
    draining: deps.lifecycle.draining,
  }));
  deps.bus.serve({
    message: (userId, payload, plan) => chat.handleMessage(userId, payload, { routed: true, ...(plan !== undefined ? { plan } : {}) }),
    approval: (userId, approval) => chat.handleApproval(userId, approval, { routed: true }),
    tool: (userId, call, onNotice) => sandboxTools.runRouted(userId, call, onNotice),
    release: (userId) => users.presences.releaseIfUnheld(userId),
    wipe: (userId) => users.leases.wipe(userId),
  });
  registerGateway({
    io,
    chat,
    presences: users.presences,
    authenticate: deps.guards.authenticate,
    origins: deps.guards.origins,
    sockets: state.sockets,
    maxSocketsPerUser: config.auth.maxSocketsPerUser,
    budget: state.events,
    eventsPerSecond: config.chat.socketEventsPerSecond,
    logger,
    onRejected: (code, plan) => metrics.chatObserver.rejected(code, plan),
    onAuthFailed: () => metrics.authFailed('socket'),
  });
  metrics.watchChat({ connections: () => io.engine.clientsCount, presences: users.presences.count, inFlight: chat.inFlight, pendingApprovals: approvals.pendingCount });
  const overflow = createOverflow({ hasRoomFor: users.presences.hasRoomFor, peers: deps.liveness.peers });
  installHandshakeGate(deps.server, { hosts: deps.guards.hosts, refuse: refuseNewHandshakes({ isDraining: () => deps.lifecycle.draining, overflow }) }, logger);
}

/** The ordered, bounded stop (app/shutdown.ts) of what was wired; called once, later calls share it. */
function wireShutdown(
  { config, logger }: Basics,
  deps: {
    lifecycle: Lifecycle;
    server: HttpServer;
    mcp: McpGateway;
    io: SandpoolIo;
    pool: ContainerPool;
    sweeper: OrphanSweeper;
    reaper: DeadReplicaReaper;
    users: ReturnType<typeof wireUsers>;
    chatLayer: ReturnType<typeof wireChat>;
    state: SharedState;
    quotaStore: QuotaStore;
    store: WorkspaceStore;
    redis: RedisClients | undefined;
    snapshotRedis: RedisClient | undefined;
  },
): (reason: string) => Promise<void> {
  const { server, pool, sweeper, reaper, redis, snapshotRedis } = deps;
  const settings = {
    budgetMs: config.server.shutdownTimeoutMs,
    requestGraceMs: config.server.shutdownRequestGraceMs,
    httpGraceMs: config.server.shutdownHttpGraceMs,
    stepTimeoutMs: config.server.shutdownStepTimeoutMs,
  };
  const steps = shutdownPlan(
    {
      stopSweeps: () => (sweeper.stop(), reaper.stop()),
      finishRequests: (graceMs) => deps.chatLayer.chat.shutdown(graceMs),
      closeSockets: () => closeSockets(deps.io),
      // Sessions (2025-11-25), and the 2026-07-28 exchanges and listen streams in flight.
      closeMcpSessions: async () => void (await Promise.all([deps.chatLayer.mcpSessions.closeAll(), deps.mcp.close()])),
      closeHttp: () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        return closed;
      },
      cutHttp: () => server.closeAllConnections(),
      drainPool: (ms) => pool.drain(ms),
      removeOwnContainers: () => sweeper.removeOwn(),
      leaveCluster: () => deps.users.heartbeat.stop(),
      closeSharedState: () => deps.state.close(),
      closeQuotaStore: () => deps.quotaStore.close(),
      closeWorkspaceStore: () => deps.store.close(),
      quitRedis: (ms) => Promise.all([redis?.quit(ms), snapshotRedis !== redis ? snapshotRedis?.quit(ms) : undefined]),
    },
    settings,
  );
  async function stop(reason: string): Promise<void> {
    // Readiness first: /ready answers 503 and new handshakes go to another replica.
    deps.lifecycle.draining = true;
    logger.info({ reason, budgetMs: settings.budgetMs }, 'shutting down');
    await runShutdown(steps, { budgetMs: settings.budgetMs, logger });
    logger.info({ destroyed: pool.stats().destroyed }, 'shutdown complete');
  }
  let stopped: Promise<void> | undefined;
  return (reason) => (stopped ??= stop(reason));
}

/** Listens on HOST:PORT; resolves with the port (PORT=0 picks one). */
async function listen(server: HttpServer, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
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
  const basics: Basics = { config, replicaId, logger };
  for (const warning of configWarnings(config)) logger.warn(`WARNING: ${warning}`);
  const runtime = await selectRuntime({
    mode: config.pool.runtime,
    production: serverConfig.nodeEnv === 'production',
    dockerSocket: config.docker.socketPath,
    // The process runtime has no image to run: an operator who chose one must hear that it is ignored.
    customSpec: containerOnlySettings(config.pool, DEFAULT_POOL_IMAGE),
    logger,
  });
  const { state, redis } = await wireState(basics, options.state);
  const { plans, quota, quotaStore, metrics } = wirePlans(basics, { redis, supplied: options.quotaStore, metrics: (names) => createMetrics({ replicaId, plans: names }) });
  const { pool, liveness, sweeper, reaper } = wirePool(basics, { runtime, state, metrics });
  const { workspaces, store, snapshotRedis } = await wireWorkspaces(basics, { redis, metrics });
  const users = wireUsers(basics, { state, liveness, pool, workspaces, metrics, startedAtMs });
  const sockets = wireSockets(basics, redis);
  const chatLayer = wireChat(basics, { state, pool, users, workspaces, sockets, metrics, plans, quota });

  const lifecycle: Lifecycle = { draining: false };
  const notReadyReasons = (): NotReadyReason[] => readinessOf({ draining: lifecycle.draining, pool: pool.stats(), poolHasWarmed: pool.hasWarmed(), stateHealthy: state.healthy() });
  const guards = wireGuards(basics, plans);
  let url = '';
  const { server, mcp } = wireHttp(basics, { startedAtMs, metrics, pool, liveness, heartbeat: users.heartbeat, chatLayer, io: sockets.io, guards, plans, quota, notReadyReasons, lifecycle, url: () => url });
  wireRealtime(basics, { server, io: sockets.io, bus: sockets.bus, state, pool, liveness, users, chatLayer, metrics, guards, lifecycle });

  // First beat before anything else: other replicas must see this one alive
  // before it owns containers, and it must know who else is alive before sweeping.
  await users.heartbeat.start();
  // Sweep before warming: an earlier crash's containers count against nobody.
  await sweeper.sweep();
  sweeper.start();
  reaper.start();
  pool.start();
  const port = await listen(server, serverConfig.host, serverConfig.port);
  url = `http://${serverConfig.host === '0.0.0.0' ? '127.0.0.1' : serverConfig.host}:${port}`;
  logger.info({ url, replica: replicaId, runtime: runtime.kind }, 'sandpool listening');
  if (options.warmTimeoutMs) await pool.whenWarm(options.warmTimeoutMs);

  const stop = wireShutdown(basics, { lifecycle, server, mcp, io: sockets.io, pool, sweeper, reaper, users, chatLayer, state, quotaStore, store, redis, snapshotRedis });

  return {
    config,
    port,
    url,
    pool,
    runtime,
    chat: chatLayer.chat,
    presences: users.presences,
    leases: users.leases,
    logger,
    notReadyReasons,
    stop: (reason = 'stop requested') => stop(reason),
  };
}
