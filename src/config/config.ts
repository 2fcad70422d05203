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
  /** How long acquire() waits before POOL_EXHAUSTED. Default 10000. */
  acquireTimeoutMs: number;
  /** Bound on one sandbox start (create + start + MCP initialize). Default 20000. */
  createTimeoutMs: number;
  /** acquire() calls allowed to wait at once; more are refused with POOL_EXHAUSTED. Default 200. */
  maxWaitingClients: number;
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
  POOL_IMAGE: z.string().trim().min(1).default('sandpool-sandbox:latest'),
  POOL_COMMAND: optionalString,
  POOL_MIN_SIZE: int(5, 0, 1000),
  POOL_MAX_SIZE: int(50, 1, 10000),
  POOL_IDLE_TIMEOUT_MS: int(900_000, 1000),
  POOL_ACQUIRE_TIMEOUT_MS: int(10_000, 1),
  POOL_CREATE_TIMEOUT_MS: int(20_000, 100),
  POOL_MAX_WAITING_CLIENTS: int(200, 0),
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
});

/** Every environment variable sandpool reads (.env.example documents each one). */
export const ENV_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

/** Parses POOL_COMMAND: a JSON array of strings, or words split on whitespace. */
function parseCommand(raw: string): string[] | string {
  if (raw.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed) && parsed.length > 0 && parsed.every((p) => typeof p === 'string')) return parsed as string[];
    } catch {
      /* reported below */
    }
    return 'must be a JSON array of strings or space-separated words';
  }
  return raw.split(/\s+/).filter(Boolean);
}

/**
 * Parses the environment into a Config. Throws ConfigError listing every bad
 * variable at once, so an operator fixes them in one go.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset" (a blank line in .env), not "invalid".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const result = envSchema.safeParse(cleaned);
  const problems: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = String(issue.path[0] ?? '?');
      problems.push(`${name}: ${issue.message} (got ${JSON.stringify(cleaned[name] ?? null)})`);
    }
    throw new ConfigError(problems);
  }
  const e = result.data;
  if (e.POOL_MIN_SIZE > e.POOL_MAX_SIZE) {
    problems.push(`POOL_MIN_SIZE: must be <= POOL_MAX_SIZE (got ${e.POOL_MIN_SIZE} > ${e.POOL_MAX_SIZE})`);
  }
  if (e.NODE_ENV === 'production' && e.POOL_RUNTIME === 'process') {
    problems.push('POOL_RUNTIME: "process" runs sandboxes without isolation and is refused when NODE_ENV=production');
  }
  let command: string[] | undefined;
  if (e.POOL_COMMAND !== undefined) {
    const parsed = parseCommand(e.POOL_COMMAND);
    if (typeof parsed === 'string') problems.push(`POOL_COMMAND: ${parsed} (got ${JSON.stringify(e.POOL_COMMAND)})`);
    else command = parsed;
  }
  if (problems.length > 0) throw new ConfigError(problems);

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
      command,
      minSize: e.POOL_MIN_SIZE,
      maxSize: e.POOL_MAX_SIZE,
      idleTimeoutMs: e.POOL_IDLE_TIMEOUT_MS,
      acquireTimeoutMs: e.POOL_ACQUIRE_TIMEOUT_MS,
      createTimeoutMs: e.POOL_CREATE_TIMEOUT_MS,
      maxWaitingClients: e.POOL_MAX_WAITING_CLIENTS,
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
  };
}
