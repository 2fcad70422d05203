import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ChatObserver } from '../chat/chat-service.js';
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
  /** A user came back to their kept work: their parked sandbox resumed, or their snapshot restored into a fresh one. */
  returningUser(how: 'resumed' | 'restored'): void;
}

/** Live numbers of the realtime layer. */
export interface ChatGauges {
  connections(): number;
  presences(): number;
  inFlight(): number;
  pendingApprovals(): number;
}

export function createMetrics(options: { replicaId: string }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ replica: options.replicaId });
  collectDefaultMetrics({ register: registry, prefix: 'sandpool_' });

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
    help: 'Refused messages, approvals and connections, by error code',
    labelNames: ['code'],
    registers: [registry],
  });
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
      gauge('sandpool_pool_total', 'All sandboxes of this replica (idle + active + starting)', (s) => s.total);
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
    chatObserver: {
      rejected: (code) => rejections.inc({ code }),
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
