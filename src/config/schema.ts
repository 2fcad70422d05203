import os from 'node:os';
import { EnvVarError, bool, custom, int, num, oneOf, optionalStr, optionalUrl, str, type EnvTree } from './env-var.js';
import { maxSessionsFor, replicaLimits } from './session-capacity.js';
import { DEFAULT_PLANS, PLAN_NAME, PlansFileError, readPlansFile, type PlanSpecs } from '../plans/plans.js';

/** The image pool/build.sh builds; POOL_IMAGE's default. */
export const DEFAULT_POOL_IMAGE = 'sandpool-sandbox:latest';

/** POOL_COMMAND: a JSON array of strings, or words split on whitespace. */
function parseCommand(raw: string): string[] {
  const text = raw.trim();
  if (text.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed) && parsed.length > 0 && parsed.every((p) => typeof p === 'string')) return parsed as string[];
    } catch {
      /* reported below */
    }
    throw new EnvVarError('must be a JSON array of strings or space-separated words');
  }
  return text.split(/\s+/).filter(Boolean);
}

/** ALLOWED_ORIGINS: comma-separated origins, each exactly scheme://host[:port]. */
function parseOrigins(raw: string): string[] {
  const origins = raw.split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of origins) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new EnvVarError(`${JSON.stringify(origin)} is not an origin (scheme://host[:port])`);
    }
    if (!['http:', 'https:'].includes(url.protocol) || url.origin !== origin) {
      throw new EnvVarError(`${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path or trailing slash)`);
    }
  }
  return origins;
}

/** PLANS_FILE: read and checked once, at start; every problem in the file is listed. */
function parsePlansFile(raw: string): PlanSpecs {
  try {
    return readPlansFile(raw.trim());
  } catch (err) {
    if (err instanceof PlansFileError) throw new EnvVarError(err.message);
    throw err;
  }
}

/** PUBLIC_URL: an origin, exactly scheme://host[:port]. */
function parsePublicUrl(raw: string): string {
  const origins = parseOrigins(raw);
  if (origins.length !== 1 || origins[0] === undefined) throw new EnvVarError('must be one origin (scheme://host[:port])');
  return origins[0];
}

/** ALLOWED_HOSTS: comma-separated host names or IP literals (IPv6 in brackets), without a port. */
function parseHosts(raw: string): string[] {
  const hosts = raw.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean);
  for (const host of hosts) {
    if (!/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*)$/.test(host)) {
      throw new EnvVarError(`${JSON.stringify(host)} is not a host name (no scheme, port or path; IPv6 in brackets)`);
    }
  }
  return hosts;
}

/** MCP_TOOLS: every tool, the read-only ones, or these names. */
export type McpToolPolicySetting = 'all' | 'read-only' | readonly string[];

function parseToolPolicy(raw: string): McpToolPolicySetting {
  const text = raw.trim();
  if (text === 'all' || text === 'read-only') return text;
  const names = text.split(',').map((n) => n.trim()).filter(Boolean);
  if (names.length === 0 || names.some((n) => !/^[A-Za-z0-9_.-]{1,128}$/.test(n))) {
    throw new EnvVarError('must be all, read-only, or a comma-separated list of tool names');
  }
  return names;
}

/** Section titles of .env.example, one per group of the schema, in order. */
export const SECTIONS: Readonly<Record<keyof typeof schema, string>> = {
  server: 'server',
  chat: 'chat',
  auth: 'identity',
  plans: 'plans and quotas (docs/plans-and-quotas.md)',
  llm: 'agent model',
  mcp: 'MCP gateway (/mcp: any MCP client gets the user\'s own sandbox)',
  workspace: 'workspaces (a user\'s files kept across sandboxes)',
  cluster: 'replicas (shared state)',
  pool: 'sandbox pool (the seed\'s variables)',
  sandbox: 'sandbox limits (every container: no network, all caps dropped, no-new-privileges, read-only root, noexec tmpfs /workspace and /tmp)',
  docker: 'Docker engine',
  orphans: 'orphan containers',
};

/**
 * Every environment variable sandpool reads: the single source of the Config
 * type, of each default, of the error messages, and of .env.example
 * (`npm run env:example` writes it; a unit test checks it is current).
 */
export const schema = {
  server: {
    nodeEnv: oneOf('NODE_ENV', ['development', 'production', 'test'], {
      default: 'development',
      doc: 'development | production | test. production refuses the unisolated process runtime and a missing AUTH_SECRET.',
    }),
    port: int('PORT', { default: 3000, min: 0, max: 65535, doc: 'HTTP and Socket.IO port. 0 picks a free port.' }),
    host: str('HOST', {
      // The development identity (no AUTH_SECRET) lets anyone act as any user: it stays on this machine unless asked.
      default: (env) => (env.AUTH_SECRET === undefined ? '127.0.0.1' : '0.0.0.0'),
      defaultDoc: '127.0.0.1 without AUTH_SECRET (the development identity stays on this machine), 0.0.0.0 with it',
      doc: 'Interface to bind. A non-loopback HOST without AUTH_SECRET is allowed but logged as a loud warning: anyone who reaches the port can act as any user.',
    }),
    replicaId: str('REPLICA_ID', {
      default: (env) => `${os.hostname()}-${env.PORT ?? '3000'}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64),
      defaultDoc: '<hostname>-<PORT>',
      pattern: [/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -'],
      doc: 'Name of this replica, stamped on its containers (label sandpool.replica). Give each replica its own.',
    }),
    nodeName: str('NODE_NAME', {
      default: () => os.hostname(),
      defaultDoc: 'the hostname',
      minLength: 1,
      doc: 'The machine (node) this replica runs on, published with its heartbeat: the cluster view (/stats/pool?scope=cluster) shows each replica with its node. A swarm stack sets it to the node\'s hostname ({{.Node.Hostname}}).',
    }),
    logLevel: oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info', doc: 'Log level (pino).' }),
    shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', { default: 15_000, min: 100, doc: 'Upper bound on graceful shutdown: finish requests, drain the pool, remove containers (ms).' }),
    shutdownRequestGraceMs: int('SHUTDOWN_REQUEST_GRACE_MS', {
      default: 5_000,
      min: 0,
      doc: 'At shutdown, requests in flight get this long to finish, never more than a third of SHUTDOWN_TIMEOUT_MS; the rest fail with SHUTTING_DOWN (ms).',
    }),
    shutdownHttpGraceMs: int('SHUTDOWN_HTTP_GRACE_MS', {
      default: 5_000,
      min: 0,
      doc: 'At shutdown, busy HTTP connections (an MCP stream, a long poll) get this long before they are cut; idle ones close at once (ms).',
    }),
    shutdownStepTimeoutMs: int('SHUTDOWN_STEP_TIMEOUT_MS', {
      default: 2_000,
      min: 100,
      doc: 'At shutdown, bound on each closing step: MCP sessions, leaving the cluster, shared state, the workspace store, each Redis connection\'s QUIT. Closing the sockets and quitting Redis get a second more (ms).',
    }),
  },
  chat: {
    maxRequestsPerUser: int('MAX_REQUESTS_PER_USER', {
      default: 5,
      min: 1,
      max: 1000,
      doc: 'Requests in flight per user (from accepted until message:done / request:error, approval waits included); more are refused with TOO_MANY_REQUESTS.',
    }),
    sessionIdleTimeoutMs: int('SESSION_IDLE_TIMEOUT_MS', { default: 600_000, min: 1000, doc: 'A user\'s sandbox is parked (PARK_MAX) or destroyed after this long without activity (ms).' }),
    disconnectGraceMs: int('SESSION_DISCONNECT_GRACE_MS', {
      default: 30_000,
      min: 0,
      doc: 'After a user\'s last socket disconnects: cancel their requests and park (PARK_MAX) or destroy the sandbox after this long (ms). A reconnect within it keeps everything.',
    }),
    toolApprovalTimeoutMs: int('TOOL_APPROVAL_TIMEOUT_MS', { default: 120_000, min: 100, doc: 'A tool call not approved within this long is refused (reported to the model) (ms).' }),
    toolCallTimeoutMs: int('TOOL_CALL_TIMEOUT_MS', { default: 60_000, min: 100, doc: 'Bound on one tool call inside the sandbox (ms).' }),
    maxMessageBytes: int('MAX_MESSAGE_BYTES', { default: 16_384, min: 16, max: 10_000_000, doc: 'Largest accepted message, in UTF-8 bytes (PAYLOAD_TOO_LARGE above).' }),
    maxSessions: int('MAX_SESSIONS', {
      default: () => maxSessionsFor(replicaLimits()),
      defaultDoc: "half the replica's memory (V8 heap limit, cgroup limit or host memory, whichever is least) at 64 KiB per session, and at most the open-file limit minus 1024; computed where it runs",
      min: 1,
      doc: "Users present at once per replica. When this replica is full a new user's handshake gets HTTP 503 so nginx tries the next replica; only when no live replica has room is it refused with TOO_MANY_REQUESTS.",
    }),
    maxAgentSteps: int('AGENT_MAX_STEPS', { default: 8, min: 1, max: 100, doc: 'Model turns per request before the agent stops.' }),
    socketEventsPerSecond: int('SOCKET_EVENTS_PER_SECOND', {
      default: 20,
      min: 1,
      max: 10_000,
      doc: 'Events one user may send per second, across all of their sockets and replicas (burst: twice that); floods are refused with TOO_MANY_REQUESTS.',
    }),
  },
  auth: {
    secret: optionalStr('AUTH_SECRET', {
      secret: true,
      minLength: 16,
      doc: 'HS256 secret for JWTs (Socket.IO auth.token, MCP Bearer; user = sub; sub, iat and exp required), at least 16 characters, at least 32 bytes in production. Unset (development): clients connect with auth.userId and the server listens on loopback.',
    }),
    issuer: optionalStr('AUTH_ISSUER', { doc: 'When set, tokens must carry this iss.' }),
    audience: optionalStr('AUTH_AUDIENCE', { doc: 'When set, tokens must carry this aud.' }),
    clockToleranceMs: int('AUTH_CLOCK_TOLERANCE_MS', { default: 5_000, min: 0, max: 300_000, doc: 'Clock skew allowed when checking exp and nbf (ms).' }),
    allowedOrigins: custom<string[]>('ALLOWED_ORIGINS', {
      default: [],
      parse: parseOrigins,
      defaultDoc: "none: only the server's own origin",
      doc: 'Browser origins (scheme://host[:port], comma-separated) allowed besides the server\'s own, for Socket.IO handshakes and the HTTP API (CORS). Clients that send no Origin header (non-browser clients) are not affected.',
    }),
    maxLifetimeS: int('AUTH_MAX_TOKEN_LIFETIME_S', {
      default: 86_400,
      min: 60,
      max: 31_536_000,
      doc: 'Longest token lifetime accepted (exp - iat, seconds), for user and operator tokens alike; iat is required. A leaked token is worth at most this long.',
    }),
    operatorSecret: optionalStr('OPERATOR_SECRET', {
      secret: true,
      minLength: 16,
      doc: 'HS256 secret of operator tokens (scope sandpool:operator), separate from AUTH_SECRET: whoever issues user tokens cannot mint these. With AUTH_SECRET set, /stats/*, /metrics and /admin/* need one (401 otherwise, from any address); unset then means they are closed. `npm run images` generates one; `npm run operator-token` mints tokens.',
    }),
    publicUrl: custom<string | undefined>('PUBLIC_URL', {
      default: undefined,
      parse: parsePublicUrl,
      defaultDoc: 'unset: http://<HOST>:<the port it listens on>, with 127.0.0.1 for HOST=0.0.0.0',
      doc: 'The public origin clients use (scheme://host[:port], e.g. https://sandpool.example). URLs the server hands out (the MCP resource metadata) come from it, never from request headers; its host is allowed (ALLOWED_HOSTS) and its origin is allowed (ALLOWED_ORIGINS).',
    }),
    allowedHosts: custom<string[]>('ALLOWED_HOSTS', {
      default: [],
      parse: parseHosts,
      defaultDoc: 'none besides localhost, 127.0.0.1, [::1], the host of PUBLIC_URL and this replica\'s own addresses',
      doc: 'Host names (comma-separated, no port) requests may be addressed to, besides the defaults. Any other Host header gets 403 on HTTP, Socket.IO and /mcp: a DNS-rebinding page cannot reach the server under its own name.',
    }),
    maxSocketsPerUser: int('MAX_SOCKETS_PER_USER', {
      default: 10,
      min: 1,
      max: 1000,
      doc: 'Sockets one user may hold at once, across replicas when Redis is used; the next is refused with TOO_MANY_REQUESTS.',
    }),
  },
  plans: {
    specs: custom<PlanSpecs>('PLANS_FILE', {
      default: DEFAULT_PLANS,
      parse: parsePlansFile,
      defaultDoc: 'built in: free 100/1000/10000 calls per hour/day/month, basic 500/5000/50000, premium 1000/10000/100000, enterprise unlimited',
      doc: 'A JSON file of plans: { "<plan>": { "callsPerHour", "callsPerDay", "callsPerMonth" (null = unlimited), "maxInFlight"? (default MAX_REQUESTS_PER_USER), "workspaceMaxBytes"? (default WORKSPACE_MAX_BYTES) } }. Read once at start; a malformed file stops start-up with every problem listed.',
    }),
    defaultPlan: str('DEFAULT_PLAN', {
      default: 'free',
      pattern: [PLAN_NAME, 'must be 1-64 letters, digits, _ . -'],
      doc: 'The plan of users whose token has no "plan" claim (and of the development identity unless it names one). Must be one of the plans.',
    }),
    quotaFailMode: oneOf('QUOTA_FAIL_MODE', ['closed', 'open'], {
      default: 'closed',
      doc: 'When the quota store (Redis) cannot be reached: closed refuses tool calls (INTERNAL, try again); open lets them through uncounted, logging an error and counting sandpool_quota_limiter_failures_total.',
    }),
  },
  llm: {
    provider: oneOf('LLM_PROVIDER', ['local', 'gemini', 'openai', 'anthropic'], {
      default: 'local',
      doc: 'local (offline deterministic planner, no key) | gemini | openai | anthropic.',
    }),
    model: optionalStr('LLM_MODEL', { doc: 'Model name.', defaultDoc: 'per provider: gemini-2.5-flash, gpt-4o-mini, claude-sonnet-4-5' }),
    timeoutMs: int('LLM_TIMEOUT_MS', { default: 60_000, min: 100, doc: 'Bound on one model call, and on silence inside a streamed answer (ms).' }),
    gemini: {
      apiKey: optionalStr('GEMINI_API_KEY', { secret: true, doc: 'Key for LLM_PROVIDER=gemini.' }),
      baseUrl: optionalUrl('GEMINI_BASE_URL', { doc: 'Another Gemini API endpoint.' }),
    },
    openai: {
      apiKey: optionalStr('OPENAI_API_KEY', { secret: true, doc: 'Key for LLM_PROVIDER=openai.' }),
      baseUrl: optionalUrl('OPENAI_BASE_URL', { doc: 'Any OpenAI-compatible server (a local one needs no key), e.g. http://127.0.0.1:8080/v1' }),
    },
    anthropic: {
      apiKey: optionalStr('ANTHROPIC_API_KEY', { secret: true, doc: 'Key for LLM_PROVIDER=anthropic.' }),
      baseUrl: optionalUrl('ANTHROPIC_BASE_URL', { doc: 'Another Anthropic API endpoint.' }),
    },
  },
  mcp: {
    tools: custom<McpToolPolicySetting>('MCP_TOOLS', {
      default: 'all',
      example: 'all',
      parse: parseToolPolicy,
      doc: 'Which sandbox tools MCP clients may list and call: all, read-only (tools the image marks readOnlyHint), or a comma-separated list of tool names. The chat agent is not limited by it.',
    }),
    maxBodyBytes: int('MCP_MAX_BODY_BYTES', { default: 1_048_576, min: 1024, max: 64 * 1_048_576, doc: 'Largest accepted /mcp request body (413 above).' }),
  },
  workspace: {
    store: oneOf('WORKSPACE_STORE', ['none', 'fs', 'redis'], {
      default: (env) => (env.REDIS_URL === undefined && env.WORKSPACE_REDIS_URL === undefined ? 'fs' : 'redis'),
      defaultDoc: 'redis when REDIS_URL or WORKSPACE_REDIS_URL is set (replicas share it), else fs',
      doc: 'Where snapshots of users\' /workspace are kept, so a returning user finds their files: fs (WORKSPACE_DIR, one replica), redis, or none (off: a new sandbox starts empty).',
    }),
    redisUrl: optionalUrl('WORKSPACE_REDIS_URL', {
      protocols: ['redis:', 'rediss:'],
      defaultDoc: 'REDIS_URL',
      doc: 'The Redis that keeps snapshots (WORKSPACE_STORE=redis). Give snapshots their own Redis with an evicting policy (allkeys-lru): memory pressure then drops old snapshots, never the limits, owners and conversations in REDIS_URL\'s Redis (which wants noeviction).',
    }),
    dir: str('WORKSPACE_DIR', { default: 'data/workspaces', minLength: 1, doc: 'Directory of the fs store (created; one file per user, named by a hash of the user id).' }),
    maxBytes: int('WORKSPACE_MAX_BYTES', {
      default: 16 * 1_048_576,
      min: 1024,
      max: 1_073_741_824,
      doc: 'Most file content a snapshot keeps (bytes, before compression). Over it a change is not saved, the user is told, and the last good snapshot stays.',
    }),
    ttlS: int('WORKSPACE_TTL_S', { default: 604_800, min: 60, doc: 'A snapshot is forgotten this long after its last save (seconds; 7 days).' }),
  },
  cluster: {
    redisUrl: optionalUrl('REDIS_URL', {
      protocols: ['redis:', 'rediss:'],
      doc: 'Several replicas share conversations, sandbox ownership, backpressure and pending approvals through Redis (and the Socket.IO Redis adapter), e.g. redis://127.0.0.1:6379. Unset: one replica, in memory.',
    }),
    redisPassword: optionalStr('REDIS_PASSWORD', {
      secret: true,
      doc: 'Password for REDIS_URL and WORKSPACE_REDIS_URL when the URL carries none (the stacks generate one and pass it as a Docker secret: REDIS_PASSWORD_FILE).',
    }),
    redisKeyPrefix: str('REDIS_KEY_PREFIX', { default: 'sandpool:', minLength: 1, doc: 'Key prefix in Redis, so several deployments can share one.' }),
    heartbeatIntervalMs: int('HEARTBEAT_INTERVAL_MS', {
      default: 2000,
      min: 100,
      max: 60_000,
      doc: 'Liveness and pool stats are published this often; a replica is dead after 3 missed beats and a survivor removes its containers (ms).',
    }),
    requestSlotTtlMs: int('REQUEST_SLOT_TTL_MS', {
      default: 30_000,
      min: 1000,
      doc: 'A request slot or socket count of a replica that died frees itself after this long (ms).',
    }),
    replicaRequestTimeoutMs: int('REPLICA_REQUEST_TIMEOUT_MS', {
      default: 5_000,
      min: 100,
      max: 300_000,
      doc: 'A message, approval or wipe routed to another replica gets its answer within this long, or fails (the Socket.IO Redis adapter\'s requestsTimeout); a routed tool call is taken (acked) within it, then waits its own timeout plus POOL_ACQUIRE_TIMEOUT_MS plus this. A message or tool call its replica did not answer waits until that replica\'s heartbeat lapses, then runs here (ms).',
    }),
    redisConnectTimeoutMs: int('REDIS_CONNECT_TIMEOUT_MS', {
      default: 10_000,
      min: 100,
      doc: 'Start-up fails when REDIS_URL\'s or WORKSPACE_REDIS_URL\'s Redis does not answer within this long (ms).',
    }),
    redisCommandTimeoutMs: int('REDIS_COMMAND_TIMEOUT_MS', {
      default: 10_000,
      min: 100,
      doc: 'A Redis command whose reply does not come within this long fails instead of waiting forever (a Redis stalled or restarted mid-command). The largest command, a 16 MiB snapshot, takes far less on a healthy Redis (ms).',
    }),
  },
  pool: {
    enabled: bool('ENABLE_CONTAINER_POOL', { default: true, doc: 'false = rollback path: no warm spares, every sandbox is created on demand.' }),
    minSize: int('POOL_MIN_SIZE', {
      default: 5,
      min: 0,
      max: 1000,
      doc: 'The floor of warm, idle sandboxes kept ready for the next user (a leased one is replaced, after POOL_REFILL_DELAY_MS while other spares are left); more are kept when the recent arrival rate needs them (POOL_DEMAND_*).',
    }),
    refillDelayMs: int('POOL_REFILL_DELAY_MS', {
      default: 250,
      min: 0,
      max: 60_000,
      doc: "A spare handed out is replaced this long afterwards (ms) while other spares are idle, so the start's CPU burst does not land on the new user's first calls; at once when no spare is left or an acquire waits. 0 = always at once.",
    }),
    maxSize: int('POOL_MAX_SIZE', { default: 50, min: 1, max: 10_000, doc: 'Cap on all sandboxes of this replica: idle + leased + starting.' }),
    idleTimeoutMs: int('POOL_IDLE_TIMEOUT_MS', { default: 900_000, min: 1000, doc: 'Idle sandboxes above POOL_MIN_SIZE are removed after this long (ms).' }),
    acquireTimeoutMs: int('POOL_ACQUIRE_TIMEOUT_MS', { default: 30_000, min: 1, doc: 'How long acquiring a sandbox may wait before POOL_EXHAUSTED (ms).' }),
    createTimeoutMs: int('POOL_CREATE_TIMEOUT_MS', { default: 20_000, min: 100, doc: 'Bound on one sandbox start: create + start + MCP initialize + tools/list (ms).' }),
    maxWaitingClients: int('POOL_MAX_WAITING_CLIENTS', { default: 200, min: 0, doc: 'Acquires allowed to wait at once; more are refused with POOL_EXHAUSTED.' }),
    createConcurrency: int('POOL_CREATE_CONCURRENCY', {
      default: () => Math.max(2, os.availableParallelism() * 2),
      defaultDoc: '2 x CPU cores, computed on the machine it runs on',
      min: 1,
      max: 1000,
      doc: 'Sandboxes starting at once. Starts are CPU-bound: more in parallel makes every one of them later.',
    }),
    removeConcurrency: int('POOL_REMOVE_CONCURRENCY', {
      default: 2,
      min: 1,
      max: 1000,
      doc: 'Used sandboxes removed at once. Removals also wait (up to 2 s) while sandboxes start, so they do not slow the starts users wait for.',
    }),
    demandWindowMs: int('POOL_DEMAND_WINDOW_MS', {
      default: 300_000,
      min: 1000,
      doc: 'Warm spares follow the peak arrival rate (acquires per second, 10 s averages) seen within this window: a burst after a quiet spell still finds the spares of the last busy one (ms).',
    }),
    demandHeadroom: num('POOL_DEMAND_HEADROOM', {
      default: 2,
      min: 0,
      max: 100,
      doc: 'Spares kept = max(POOL_MIN_SIZE, arrivals/s x start seconds (p50) x this), at most POOL_MAX_SIZE and POOL_SPARES_MEMORY_MB. 0 keeps exactly POOL_MIN_SIZE.',
    }),
    sparesMemoryMb: int('POOL_SPARES_MEMORY_MB', {
      default: () => Math.max(64, Math.floor(os.totalmem() / 1048576 / 8)),
      defaultDoc: 'an eighth of the host memory, computed on the machine it runs on',
      min: 0,
      max: 1_048_576,
      doc: 'Memory the demand-driven spares may take together (MiB), counted as POOL_IDLE_SANDBOX_MEMORY_MB each. POOL_MIN_SIZE spares are kept regardless.',
    }),
    idleSandboxMemoryMb: int('POOL_IDLE_SANDBOX_MEMORY_MB', {
      default: 32,
      min: 1,
      max: 1_048_576,
      doc: "An idle sandbox's memory (MiB), to count spares against POOL_SPARES_MEMORY_MB. 32 fits the default image (bench:pool reports idleSandboxMemoryMiB); measure your own image.",
    }),
    parkMax: int('PARK_MAX', {
      default: 10,
      min: 0,
      max: 10_000,
      doc: "Sandboxes kept frozen (docker pause) on this replica for users whose lease ended (idle, disconnect), each for its user alone; their next message or MCP call resumes it. Beyond it the least recently parked is removed (its files are in the snapshot). Parked sandboxes count against POOL_MAX_SIZE and go first when a new user, or the warm spares (POOL_MIN_SIZE), need room. 0 = parking off: a lease's end removes its sandbox.",
    }),
    parkTtlS: int('PARK_TTL_S', { default: 1_800, min: 1, max: 31_536_000, doc: 'A parked sandbox is removed this long (seconds) after it was parked; the user then gets a fresh one with their snapshot restored.' }),
    resumeTimeoutMs: int('PARK_RESUME_TIMEOUT_MS', {
      default: 5_000,
      min: 100,
      doc: 'Bound on resuming a parked sandbox (unpause + MCP ping, ms); past it the sandbox is removed and the user gets a fresh one with their snapshot restored.',
    }),
    runtime: oneOf('POOL_RUNTIME', ['docker', 'process', 'auto'], {
      default: 'auto',
      doc: 'docker | process | auto. auto = Docker when the engine answers, else child processes (NOT isolated; refused when NODE_ENV=production).',
    }),
    image: str('POOL_IMAGE', { default: DEFAULT_POOL_IMAGE, minLength: 1, doc: 'Any image whose entrypoint is an MCP server on stdio. pool/build.sh builds the default.' }),
    command: custom<string[] | undefined>('POOL_COMMAND', {
      default: undefined,
      parse: parseCommand,
      doc: 'Command override for images whose entrypoint is not the MCP server: a JSON array (["node","/srv/server.js","/workspace"]) or space-separated words. Only with the engine\'s socket itself: the socket proxy of the compose files refuses it (docs/socket-proxy.md).',
      defaultDoc: "the image's entrypoint and command",
    }),
  },
  sandbox: {
    memoryMb: int('SANDBOX_MEMORY_MB', { default: 256, min: 16, max: 1_048_576, doc: 'Memory limit of one sandbox (MiB, swap included).' }),
    cpus: num('SANDBOX_CPUS', { default: 1, min: 0.01, max: 1024, doc: 'CPU limit of one sandbox (cores).' }),
    pidsLimit: int('SANDBOX_PIDS_LIMIT', { default: 64, min: 8, max: 100_000, doc: 'Processes one sandbox may run.' }),
    workspaceMb: int('SANDBOX_WORKSPACE_MB', { default: 64, min: 1, max: 1_048_576, doc: 'Size of the tmpfs /workspace (MiB).' }),
    tmpMb: int('SANDBOX_TMP_MB', { default: 16, min: 1, max: 1_048_576, doc: 'Size of the tmpfs /tmp (MiB).' }),
    shmMb: int('SANDBOX_SHM_MB', { default: 1, min: 1, max: 65_536, doc: 'Size of /dev/shm (MiB; Docker\'s default is 64).' }),
    nofile: int('SANDBOX_NOFILE', { default: 1024, min: 64, max: 1_048_576, doc: 'Open files per sandbox process (ulimit nofile).' }),
    user: str('SANDBOX_USER', {
      default: '65532:65532',
      pattern: [/^\d+(:\d+)?$/, 'must be uid or uid:gid (numeric)'],
      // 1000 is the first user of most hosts: a sandbox escape would land as that person.
      doc: 'uid[:gid] the MCP server runs as inside the container: not root, and not a typical host user (1000).',
    }),
  },
  docker: {
    socketPath: str('DOCKER_SOCKET', { default: '/var/run/docker.sock', minLength: 1, doc: 'The Docker engine\'s socket.' }),
  },
  orphans: {
    sweepIntervalMs: int('ORPHAN_SWEEP_INTERVAL_MS', { default: 60_000, min: 1000, doc: 'How often containers of dead replicas are looked for and removed (ms).' }),
    graceMs: int('ORPHAN_GRACE_MS', { default: 86_400_000, min: 0, doc: 'A container of an unknown replica on another host counts as orphaned after this (ms).' }),
    deadReplicaGraceMs: int('DEAD_REPLICA_GRACE_MS', {
      default: 300_000,
      min: 0,
      doc: 'A replica whose heartbeat expired loses its containers at once when this host can tell its owner is gone (its process on this host, or its container here); otherwise only after its heartbeat has lapsed this long (ms).',
    }),
  },
} as const satisfies EnvTree;
