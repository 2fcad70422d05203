import os from 'node:os';
import { z } from 'zod';

/**
 * The whole configuration of one sandpool replica, parsed once from an
 * injected environment (never from process.env directly, so tests and the
 * composition root decide what the app sees).
 */
export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  /** HTTP + Socket.IO port. Default 3000. */
  port: number;
  /** Interface to bind. Default 0.0.0.0 (all). */
  host: string;
  /** This replica's name, stamped on every container it owns. Default `<hostname>-<port>`. */
  replicaId: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  pool: PoolConfig;
  sandbox: SandboxLimits;
  orphans: { sweepIntervalMs: number; graceMs: number };
  docker: { socketPath: string };
  chat: ChatConfig;
  auth: { secret: string | undefined };
  cluster: ClusterConfig;
  llm: LlmConfig;
  /** Upper bound on the whole graceful shutdown. Default 15000. */
  shutdownTimeoutMs: number;
}

export interface PoolConfig {
  /** false = the rollback path: every lease creates its sandbox on demand (no warm spares). Default true. */
  enabled: boolean;
  runtime: 'docker' | 'process' | 'auto';
  image: string;
  /** Command override for images whose entrypoint is not an MCP stdio server. */
  command: string[] | undefined;
  /** Warm, idle sandboxes kept ready for the next user. Default 5. */
  minSize: number;
  /** Cap on all sandboxes of this replica: idle + leased + starting. Default 50. */
  maxSize: number;
  /** Idle sandboxes above minSize are removed after this long. Default 900000. */
  idleTimeoutMs: number;
  /** How long acquire() waits before POOL_EXHAUSTED. Default 30000. */
  acquireTimeoutMs: number;
  /** Bound on one sandbox start (create + start + MCP initialize). Default 20000. */
  createTimeoutMs: number;
  /** acquire() calls allowed to wait at once; more are refused with POOL_EXHAUSTED. Default 200. */
  maxWaitingClients: number;
  /** Sandboxes starting at once. Starts are CPU-bound: too many in parallel makes every one of them late. Default 2 x cores. */
  createConcurrency: number;
}

export interface ChatConfig {
  /** Requests in flight per user (accepted, not yet done or failed). Default 5. */
  maxRequestsPerUser: number;
  /** A session's sandbox is released after this long without activity. Default 600000. */
  sessionIdleTimeoutMs: number;
  /** After a user's last socket disconnects: cancel their requests and release the sandbox after this long. Default 30000. */
  disconnectGraceMs: number;
  /** A tool call not approved within this long is refused. Default 120000. */
  toolApprovalTimeoutMs: number;
  /** Bound on one tool call in the sandbox. Default 60000. */
  toolCallTimeoutMs: number;
  /** Largest accepted message text, in UTF-8 bytes. Default 16384. */
  maxMessageBytes: number;
  /** Sessions (users) per replica; more are refused at connect. Default 2000. */
  maxSessions: number;
  /** Model turns per request before the agent gives up. Default 8. */
  maxAgentSteps: number;
  /** Events one socket may send per second (burst twice that); more are refused. Default 20. */
  socketEventsPerSecond: number;
}

export interface ClusterConfig {
  /** Shared state and the Socket.IO adapter for several replicas; unset = one replica, in memory. */
  redisUrl: string | undefined;
  /** Key prefix in Redis. Default "sandpool:". */
  redisKeyPrefix: string;
  /** A replica publishes liveness and stats this often; dead after 3 missed beats. Default 2000. */
  heartbeatIntervalMs: number;
  /** A request slot of a replica that died frees itself after this long. Default 30000. */
  requestSlotTtlMs: number;
}

export interface LlmConfig {
  provider: 'local' | 'gemini' | 'openai' | 'anthropic';
  model: string | undefined;
  apiKey: string | undefined;
  /** OPENAI_BASE_URL (or GEMINI_BASE_URL / ANTHROPIC_BASE_URL): any compatible server. */
  baseUrl: string | undefined;
  timeoutMs: number;
}

export interface SandboxLimits {
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  workspaceMb: number;
  tmpMb: number;
  /** uid:gid the sandbox process runs as. Default 1000:1000. */
  user: string;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** The image pool/build.sh builds; POOL_IMAGE's default. */
export const DEFAULT_POOL_IMAGE = 'sandpool-sandbox:latest';

const int = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .default(String(def))
    .pipe(
      z
        .string()
        .regex(/^-?\d+$/, 'must be a whole number')
        .transform(Number)
        .pipe(z.number().int().min(min, `must be >= ${min}`).max(max, `must be <= ${max}`)),
    );

const num = (def: number, min: number, max: number) =>
  z
    .string()
    .trim()
    .default(String(def))
    .pipe(
      z
        .string()
        .regex(/^\d+(\.\d+)?$/, 'must be a number')
        .transform(Number)
        .pipe(z.number().min(min, `must be >= ${min}`).max(max, `must be <= ${max}`)),
    );

const bool = (def: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .default(String(def))
    .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' }))
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(3000, 0, 65535),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  REPLICA_ID: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -')
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ENABLE_CONTAINER_POOL: bool(true),
  POOL_RUNTIME: z.enum(['docker', 'process', 'auto']).default('auto'),
  POOL_IMAGE: z.string().trim().min(1).default(DEFAULT_POOL_IMAGE),
  POOL_COMMAND: optionalString,
  POOL_MIN_SIZE: int(5, 0, 1000),
  POOL_MAX_SIZE: int(50, 1, 10000),
  POOL_IDLE_TIMEOUT_MS: int(900_000, 1000),
  POOL_ACQUIRE_TIMEOUT_MS: int(30_000, 1),
  POOL_CREATE_TIMEOUT_MS: int(20_000, 100),
  POOL_MAX_WAITING_CLIENTS: int(200, 0),
  POOL_CREATE_CONCURRENCY: int(Math.max(2, os.availableParallelism() * 2), 1, 1000),
  SANDBOX_MEMORY_MB: int(256, 16, 1_048_576),
  SANDBOX_CPUS: num(1, 0.01, 1024),
  SANDBOX_PIDS_LIMIT: int(64, 8, 100_000),
  SANDBOX_WORKSPACE_MB: int(64, 1, 1_048_576),
  SANDBOX_TMP_MB: int(16, 1, 1_048_576),
  SANDBOX_USER: z
    .string()
    .trim()
    .regex(/^\d+(:\d+)?$/, 'must be uid or uid:gid (numeric)')
    .default('1000:1000'),
  ORPHAN_SWEEP_INTERVAL_MS: int(60_000, 1000),
  ORPHAN_GRACE_MS: int(86_400_000, 0),
  DOCKER_SOCKET: z.string().trim().min(1).default('/var/run/docker.sock'),
  SHUTDOWN_TIMEOUT_MS: int(15_000, 100),
  MAX_REQUESTS_PER_USER: int(5, 1, 1000),
  SESSION_IDLE_TIMEOUT_MS: int(600_000, 1000),
  SESSION_DISCONNECT_GRACE_MS: int(30_000, 0),
  TOOL_APPROVAL_TIMEOUT_MS: int(120_000, 100),
  TOOL_CALL_TIMEOUT_MS: int(60_000, 100),
  MAX_MESSAGE_BYTES: int(16_384, 16, 10_000_000),
  MAX_SESSIONS: int(2000, 1),
  AGENT_MAX_STEPS: int(8, 1, 100),
  SOCKET_EVENTS_PER_SECOND: int(20, 1, 10_000),
  AUTH_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  REDIS_KEY_PREFIX: z.string().trim().min(1).default('sandpool:'),
  HEARTBEAT_INTERVAL_MS: int(2000, 100, 60_000),
  REQUEST_SLOT_TTL_MS: int(30_000, 1000),
  LLM_PROVIDER: z.enum(['local', 'gemini', 'openai', 'anthropic']).default('local'),
  LLM_MODEL: optionalString,
  LLM_TIMEOUT_MS: int(60_000, 100),
  GEMINI_API_KEY: optionalString,
  GEMINI_BASE_URL: z.string().url().optional(),
  OPENAI_API_KEY: optionalString,
  OPENAI_BASE_URL: z.string().url().optional(),
  ANTHROPIC_API_KEY: optionalString,
  ANTHROPIC_BASE_URL: z.string().url().optional(),
});

/** Every environment variable sandpool reads (.env.example documents each one). */
export const ENV_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

const SECRET_VARIABLES = new Set(['AUTH_SECRET', 'REDIS_URL', 'GEMINI_API_KEY', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY']);

/** Parses POOL_COMMAND: a JSON array of strings, or words split on whitespace. */
function parseCommand(raw: string): string[] | string {
  if (raw.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed) && parsed.length > 0 && parsed.every((p) => typeof p === 'string')) return parsed as string[];
    } catch {
      /* the caller reports the message below */
    }
    return 'must be a JSON array of strings or space-separated words';
  }
  return raw.split(/\s+/).filter(Boolean);
}

type Env = z.infer<typeof envSchema>;

/**
 * A check on values that parsed (mostly across variables). Skipped when one of
 * `reads` is itself invalid: that one is reported already.
 */
interface CrossFieldRule {
  reads: ReadonlyArray<keyof Env>;
  check(e: Env): string | undefined;
}

const API_KEY_OF = { local: undefined, gemini: 'GEMINI_API_KEY', openai: 'OPENAI_API_KEY', anthropic: 'ANTHROPIC_API_KEY' } as const;

const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  {
    reads: ['POOL_MIN_SIZE', 'POOL_MAX_SIZE'],
    check: (e) => (e.POOL_MIN_SIZE > e.POOL_MAX_SIZE ? `POOL_MIN_SIZE: must be <= POOL_MAX_SIZE (got ${e.POOL_MIN_SIZE} > ${e.POOL_MAX_SIZE})` : undefined),
  },
  {
    reads: ['NODE_ENV', 'POOL_RUNTIME'],
    check: (e) =>
      e.NODE_ENV === 'production' && e.POOL_RUNTIME === 'process'
        ? 'POOL_RUNTIME: "process" runs sandboxes without isolation and is refused when NODE_ENV=production'
        : undefined,
  },
  {
    reads: ['NODE_ENV', 'AUTH_SECRET'],
    check: (e) =>
      e.NODE_ENV === 'production' && e.AUTH_SECRET === undefined
        ? 'AUTH_SECRET: required when NODE_ENV=production (the development identity auth.userId is refused there)'
        : undefined,
  },
  {
    reads: ['LLM_PROVIDER', 'GEMINI_API_KEY', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'OPENAI_BASE_URL'],
    check: (e) => {
      const neededKey = API_KEY_OF[e.LLM_PROVIDER];
      // An OpenAI-compatible local server may not need a key; the hosted APIs do.
      if (!neededKey || e[neededKey] !== undefined || (e.LLM_PROVIDER === 'openai' && e.OPENAI_BASE_URL)) return undefined;
      return `${neededKey}: required when LLM_PROVIDER=${e.LLM_PROVIDER}`;
    },
  },
  {
    reads: ['POOL_COMMAND'],
    check: (e) => {
      if (e.POOL_COMMAND === undefined) return undefined;
      const parsed = parseCommand(e.POOL_COMMAND);
      return typeof parsed === 'string' ? `POOL_COMMAND: ${parsed} (got ${JSON.stringify(e.POOL_COMMAND)})` : undefined;
    },
  },
];

/**
 * Parses the environment into a Config. Throws ConfigError listing every bad
 * variable at once, so an operator fixes them in one go: values that do not
 * parse and rules across variables (min > max, production rules) alike.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset" (a blank line in .env), not "invalid".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const result = envSchema.safeParse(cleaned);
  const problems: string[] = [];
  const invalid = new Set<string>();
  let e: Env;
  if (result.success) {
    e = result.data;
  } else {
    for (const issue of result.error.issues) {
      const name = String(issue.path[0] ?? '?');
      invalid.add(name);
      // Never echo a secret into logs.
      const shown = SECRET_VARIABLES.has(name) ? `a value of ${cleaned[name]?.length ?? 0} characters` : JSON.stringify(cleaned[name] ?? null);
      problems.push(`${name}: ${issue.message} (got ${shown})`);
    }
    // Zod stops before refinements when a field fails, so check the cross-field
    // rules on everything else: the bad variables fall back to their defaults,
    // and rules reading a bad variable are skipped.
    const rest = envSchema.safeParse(Object.fromEntries(Object.entries(cleaned).filter(([name]) => !invalid.has(name))));
    if (!rest.success) throw new ConfigError(problems);
    e = rest.data;
  }
  for (const rule of CROSS_FIELD_RULES) {
    if (rule.reads.some((name) => invalid.has(name))) continue;
    const problem = rule.check(e);
    if (problem !== undefined) problems.push(problem);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const command = e.POOL_COMMAND === undefined ? undefined : parseCommand(e.POOL_COMMAND);
  const neededKey = API_KEY_OF[e.LLM_PROVIDER];
  const apiKey = neededKey ? e[neededKey] : undefined;

  return {
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    replicaId: e.REPLICA_ID ?? `${os.hostname()}-${e.PORT}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64),
    logLevel: e.LOG_LEVEL,
    pool: {
      enabled: e.ENABLE_CONTAINER_POOL,
      runtime: e.POOL_RUNTIME,
      image: e.POOL_IMAGE,
      command: typeof command === 'string' ? undefined : command,
      minSize: e.POOL_MIN_SIZE,
      maxSize: e.POOL_MAX_SIZE,
      idleTimeoutMs: e.POOL_IDLE_TIMEOUT_MS,
      acquireTimeoutMs: e.POOL_ACQUIRE_TIMEOUT_MS,
      createTimeoutMs: e.POOL_CREATE_TIMEOUT_MS,
      maxWaitingClients: e.POOL_MAX_WAITING_CLIENTS,
      createConcurrency: e.POOL_CREATE_CONCURRENCY,
    },
    sandbox: {
      memoryMb: e.SANDBOX_MEMORY_MB,
      cpus: e.SANDBOX_CPUS,
      pidsLimit: e.SANDBOX_PIDS_LIMIT,
      workspaceMb: e.SANDBOX_WORKSPACE_MB,
      tmpMb: e.SANDBOX_TMP_MB,
      user: e.SANDBOX_USER,
    },
    orphans: { sweepIntervalMs: e.ORPHAN_SWEEP_INTERVAL_MS, graceMs: e.ORPHAN_GRACE_MS },
    docker: { socketPath: e.DOCKER_SOCKET },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    chat: {
      maxRequestsPerUser: e.MAX_REQUESTS_PER_USER,
      sessionIdleTimeoutMs: e.SESSION_IDLE_TIMEOUT_MS,
      disconnectGraceMs: e.SESSION_DISCONNECT_GRACE_MS,
      toolApprovalTimeoutMs: e.TOOL_APPROVAL_TIMEOUT_MS,
      toolCallTimeoutMs: e.TOOL_CALL_TIMEOUT_MS,
      maxMessageBytes: e.MAX_MESSAGE_BYTES,
      maxSessions: e.MAX_SESSIONS,
      maxAgentSteps: e.AGENT_MAX_STEPS,
      socketEventsPerSecond: e.SOCKET_EVENTS_PER_SECOND,
    },
    auth: { secret: e.AUTH_SECRET },
    cluster: {
      redisUrl: e.REDIS_URL,
      redisKeyPrefix: e.REDIS_KEY_PREFIX,
      heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
      requestSlotTtlMs: e.REQUEST_SLOT_TTL_MS,
    },
    llm: {
      provider: e.LLM_PROVIDER,
      model: e.LLM_MODEL,
      apiKey,
      baseUrl: { local: undefined, gemini: e.GEMINI_BASE_URL, openai: e.OPENAI_BASE_URL, anthropic: e.ANTHROPIC_BASE_URL }[e.LLM_PROVIDER],
      timeoutMs: e.LLM_TIMEOUT_MS,
    },
  };
}
