import { getHeapStatistics } from 'node:v8';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ChatObserver } from '../chat/chat-service.js';
import { QUOTA_WINDOWS } from '../protocol/errors.js';
import type { QuotaObserver } from '../quota/quota.js';
import type { PoolStats } from '../pool/pool-stats.js';
import type { PoolObserver } from '../pool/types.js';
import type { WorkspacesObserver } from '../workspace/workspaces.js';

/** One prom-client registry per app instance (no global default registry). */
export interface Metrics {
  registry: Registry;
  poolObserver: PoolObserver;
  chatObserver: ChatObserver;
  orphansRemoved: Counter;
  /** Gauges over the pool's stats, read when /metrics is scraped (registered once the pool exists). */
  watchPool(stats: () => PoolStats): void;
  /** Gauges over the realtime layer, read when /metrics is scraped (registered once it exists). */
  watchChat(gauges: ChatGauges): void;
  /** MCP gateway: calls and their latency by tool and outcome. */
  mcpCall(tool: string, ms: number, outcome: 'ok' | 'tool-error' | 'refused' | 'failed'): void;
  /** MCP gateway: a POST /mcp of one protocol era (`modern`: 2026-07-28, per-request `_meta`; `legacy`: 2025-era, sessions or not). */
  mcpRequest(era: 'modern' | 'legacy'): void;
  /** MCP sessions open on this replica, read when /metrics is scraped. */
  watchMcpSessions(count: () => number): void;
  /** Workspace snapshots and restores: latency, size, outcome. */
  workspaceObserver: WorkspacesObserver;
  /** Plans' quotas: calls counted, refusals, 80 % crossings, the store's latency and failures (by plan and window, never by user). */
  quotaObserver: QuotaObserver;
  /** Credentials refused at an edge: the Socket.IO handshake, /mcp, /me, operator routes. */
  authFailed(edge: AuthEdge): void;
  /** One HTTP request answered by the app (Hono): `route` is the registered path, never the URL. */
  httpRequest(method: string, route: string, status: number, ms: number): void;
  /** A user came back to their kept work: their parked sandbox resumed, or their snapshot restored into a fresh one. */
  returningUser(how: 'resumed' | 'restored'): void;
}

export type AuthEdge = 'socket' | 'mcp' | 'http';

/** Codes whose rates by plan the dashboard and alerts read: their series exist (at 0) from the start. */
const LIMIT_CODES = ['TOO_MANY_REQUESTS', 'QUOTA_EXCEEDED'] as const;
const HTTP_METHODS = new Set(['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS']);

/** Live numbers of the realtime layer. */
export interface ChatGauges {
  connections(): number;
  presences(): number;
  inFlight(): number;
  pendingApprovals(): number;
}

export function createMetrics(options: { replicaId: string; plans?: readonly string[] }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ replica: options.replicaId });
  collectDefaultMetrics({ register: registry, prefix: 'sandpool_' });
  const plans = options.plans ?? [];
  // Labels are the plans' names (PLANS_FILE: a handful); a refusal before the token is read has plan "none".
  const planLabel = (plan: string | undefined): string => (plan !== undefined && plans.includes(plan) ? plan : 'none');

  /** A gauge read when /metrics is scraped. */
  const liveGauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };

  const acquireSeconds = new Histogram({
    name: 'sandpool_pool_acquire_seconds',
    help: 'Time for acquire() to hand out a ready sandbox',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const createSeconds = new Histogram({
    name: 'sandpool_pool_create_seconds',
    help: 'Time to start one sandbox (create + start + MCP initialize + tools/list)',
    buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
    registers: [registry],
  });
  const createFailures = new Counter({
    name: 'sandpool_pool_create_failures_total',
    help: 'Sandbox starts that failed',
    registers: [registry],
  });
  const destroyed = new Counter({ name: 'sandpool_pool_destroyed_total', help: 'Sandboxes destroyed', registers: [registry] });
  const resumes = new Counter({ name: 'sandpool_park_resumes_total', help: 'Parked sandboxes resumed for their user', registers: [registry] });
  const resumeSeconds = new Histogram({
    name: 'sandpool_park_resume_seconds',
    help: 'Time to resume a parked sandbox (unpause + MCP ping)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const parkEvictions = new Counter({
    name: 'sandpool_park_evictions_total',
    help: 'Parked sandboxes removed instead of resumed, by reason (count, ttl, demand, failed, wipe, shutdown, ownership)',
    labelNames: ['reason'],
    registers: [registry],
  });
  const returningUsers = new Counter({
    name: 'sandpool_park_returning_users_total',
    help: 'Users whose new lease found their work kept: resumed from a parked sandbox, or restored from a snapshot (hit ratio = resumes / this)',
    labelNames: ['how'],
    registers: [registry],
  });
  const replaced = new Counter({
    name: 'sandpool_pool_replaced_total',
    help: 'Sandboxes found dead on a lease\'s first use and replaced without the user seeing an error',
    registers: [registry],
  });
  const orphansRemoved = new Counter({
    name: 'sandpool_orphans_removed_total',
    help: 'Containers removed by the orphan sweep',
    registers: [registry],
  });

  const rejections = new Counter({
    name: 'sandpool_rejections_total',
    help: 'Refusals clients got (messages, approvals, connections, events, MCP tool calls, tool calls ended by QUOTA_EXCEEDED), by error code and plan ("none" before the token is read)',
    labelNames: ['code', 'plan'],
    registers: [registry],
  });
  const quotaCalls = new Counter({ name: 'sandpool_quota_calls_total', help: 'Tool calls counted against plans\' quotas (chat and MCP), by plan', labelNames: ['plan'], registers: [registry] });
  const quotaRefusals = new Counter({
    name: 'sandpool_quota_refusals_total',
    help: 'Messages and tool calls refused with QUOTA_EXCEEDED, by plan and the full window',
    labelNames: ['plan', 'window'],
    registers: [registry],
  });
  const quotaWarnings = new Counter({
    name: 'sandpool_quota_warnings_total',
    help: 'Users approaching their limit: a call that took a window from below 80 % of its limit to 80 % or more, by plan and window',
    labelNames: ['plan', 'window'],
    registers: [registry],
  });
  const quotaFailures = new Counter({
    name: 'sandpool_quota_limiter_failures_total',
    help: 'Quota checks the store (Redis) could not answer, by QUOTA_FAIL_MODE: closed refused the call, open let it through uncounted',
    labelNames: ['mode'],
    registers: [registry],
  });
  const quotaCheckSeconds = new Histogram({
    name: 'sandpool_quota_check_seconds',
    help: 'Latency of one quota check (one Redis round trip with REDIS_URL)',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'sandpool_auth_failures_total',
    help: 'Credentials refused (a missing, bad, expired or foreign token; an unknown plan), by edge: socket (Socket.IO handshake), mcp, http (/me, operator routes)',
    labelNames: ['edge'],
    registers: [registry],
  });
  const httpSeconds = new Histogram({
    name: 'sandpool_http_request_duration_seconds',
    help: 'HTTP requests the app answered (not Socket.IO), by method, registered route and status class (2xx, 4xx, 5xx)',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  // Every series the dashboard and the alerts read exists from the start, at 0: a rate is 0, not "no data".
  for (const plan of [...plans, 'none']) for (const code of LIMIT_CODES) rejections.inc({ code, plan }, 0);
  for (const plan of plans) {
    quotaCalls.inc({ plan }, 0);
    for (const window of QUOTA_WINDOWS) {
      quotaRefusals.inc({ plan, window }, 0);
      quotaWarnings.inc({ plan, window }, 0);
    }
  }
  for (const mode of ['closed', 'open']) quotaFailures.inc({ mode }, 0);
  for (const edge of ['socket', 'mcp', 'http']) authFailures.inc({ edge }, 0);
  liveGauge('sandpool_nodejs_heap_limit_bytes', "V8's heap size limit (what the heap may grow to before the process dies)", () => getHeapStatistics().heap_size_limit);
  const approvalWait = new Histogram({
    name: 'sandpool_approval_wait_seconds',
    help: 'Time from tool:request to the user\'s decision (or timeout)',
    labelNames: ['outcome'],
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  const firstToolResult = new Histogram({
    name: 'sandpool_time_to_first_tool_result_seconds',
    help: 'Time from an accepted message to its first tool:result (approval wait included)',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const requestSeconds = new Histogram({
    name: 'sandpool_request_duration_seconds',
    help: 'Time from an accepted message to message:done or request:error',
    labelNames: ['outcome'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [registry],
  });

  const mcpCalls = new Counter({
    name: 'sandpool_mcp_calls_total',
    help: 'MCP tools/call requests, by tool and outcome (ok, tool-error: the tool answered isError, refused, failed)',
    labelNames: ['tool', 'outcome'],
    registers: [registry],
  });
  const mcpRequests = new Counter({
    name: 'sandpool_mcp_requests_total',
    help: 'POST /mcp by protocol era: modern (2026-07-28, stateless) or legacy (2025-era: sessions, or stateless)',
    labelNames: ['era'],
    registers: [registry],
  });
  const mcpCallSeconds = new Histogram({
    name: 'sandpool_mcp_call_seconds',
    help: 'MCP tools/call latency at the gateway, by tool',
    labelNames: ['tool'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  const workspaceSeconds = new Histogram({
    name: 'sandpool_workspace_seconds',
    help: 'Workspace snapshot (save) and restore latency, by operation and outcome',
    labelNames: ['operation', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const workspaceBytes = new Histogram({
    name: 'sandpool_workspace_archive_bytes',
    help: 'Compressed size of workspace snapshots saved and restored',
    labelNames: ['operation'],
    buckets: [1024, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864],
    registers: [registry],
  });

  return {
    registry,
    orphansRemoved,
    workspaceObserver: {
      saved(ms, bytes, outcome) {
        if (outcome === 'unchanged' || outcome === 'unsupported') return;
        workspaceSeconds.observe({ operation: 'save', outcome }, ms / 1000);
        if (outcome === 'saved') workspaceBytes.observe({ operation: 'save' }, bytes);
      },
      restored(ms, bytes, outcome) {
        if (outcome === 'unsupported') return;
        workspaceSeconds.observe({ operation: 'restore', outcome }, ms / 1000);
        if (outcome === 'restored') workspaceBytes.observe({ operation: 'restore' }, bytes);
      },
    },
    mcpCall(tool, ms, outcome) {
      mcpCalls.inc({ tool, outcome });
      mcpCallSeconds.observe({ tool }, ms / 1000);
    },
    mcpRequest(era) {
      mcpRequests.inc({ era });
    },
    watchMcpSessions(count) {
      liveGauge('sandpool_mcp_sessions', 'MCP sessions open on this replica', count);
    },
    watchPool(stats) {
      const gauge = (name: string, help: string, pick: (s: PoolStats) => number): void => liveGauge(name, help, () => pick(stats()));
      gauge('sandpool_pool_idle', 'Warm sandboxes ready to hand out', (s) => s.idle);
      gauge('sandpool_pool_active', 'Sandboxes leased to users', (s) => s.active);
      gauge('sandpool_pool_total', 'All sandboxes of this replica (idle + active + parked + starting)', (s) => s.total);
      gauge('sandpool_pool_parked', 'Sandboxes frozen for their users (PARK_MAX), in total but not idle or active', (s) => s.parked);
      gauge('sandpool_pool_creating', 'Sandboxes starting right now', (s) => s.creating);
      gauge('sandpool_pool_pending', 'acquire() calls waiting for a sandbox', (s) => s.pending);
      gauge('sandpool_pool_max', 'POOL_MAX_SIZE', (s) => s.maxPoolSize);
      gauge('sandpool_pool_min', 'POOL_MIN_SIZE', (s) => s.minPoolSize);
      gauge('sandpool_pool_spare_target', 'Spares kept now: POOL_MIN_SIZE, or more for the recent arrival rate', (s) => s.spareTarget);
      gauge('sandpool_pool_arrival_rate', 'Peak acquires per second (10 s averages) within POOL_DEMAND_WINDOW_MS', (s) => s.arrivalRate);
      gauge('sandpool_pool_removing', 'Used sandboxes queued for removal or being removed', (s) => s.removing);
      gauge('sandpool_pool_ready', '1 when the pool can serve a new user', (s) => (s.ready ? 1 : 0));
    },
    watchChat(g) {
      liveGauge('sandpool_socket_connections', 'Connected Socket.IO sockets', g.connections);
      liveGauge('sandpool_sessions', 'Users present on this replica (MAX_SESSIONS caps them)', g.presences);
      liveGauge('sandpool_requests_in_flight', 'Chat requests accepted and not yet done or failed', g.inFlight);
      liveGauge('sandpool_approvals_pending', "Tool calls waiting for the user's approval", g.pendingApprovals);
    },
    quotaObserver: {
      checked: (ms) => quotaCheckSeconds.observe(ms / 1000),
      counted: (plan) => quotaCalls.inc({ plan: planLabel(plan) }),
      refused: (plan, window) => quotaRefusals.inc({ plan: planLabel(plan), window }),
      crossedWarning: (plan, window) => quotaWarnings.inc({ plan: planLabel(plan), window }),
      storeFailed: (mode) => quotaFailures.inc({ mode }),
    },
    authFailed: (edge) => authFailures.inc({ edge }),
    httpRequest(method, route, status, ms) {
      httpSeconds.observe({ method: HTTP_METHODS.has(method) ? method : 'other', route, status: `${Math.floor(status / 100)}xx` }, ms / 1000);
    },
    chatObserver: {
      rejected: (code, plan) => rejections.inc({ code, plan: planLabel(plan) }),
      approvalWaited: (ms, verdict) => approvalWait.observe({ outcome: verdict }, ms / 1000),
      firstToolResult: (ms) => firstToolResult.observe(ms / 1000),
      requestFinished: (ms, outcome) => requestSeconds.observe({ outcome }, ms / 1000),
    },
    poolObserver: {
      acquired: (ms) => acquireSeconds.observe(ms / 1000),
      created: (ms) => createSeconds.observe(ms / 1000),
      createFailed: () => createFailures.inc(),
      destroyed: () => destroyed.inc(),
      replaced: () => replaced.inc(),
      resumed: (ms) => {
        resumes.inc();
        resumeSeconds.observe(ms / 1000);
      },
      parkEvicted: (reason) => parkEvictions.inc({ reason }),
    },
    returningUser: (how) => returningUsers.inc({ how }),
  };
}
