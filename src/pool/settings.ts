/** What the pool is told by configuration (config.pool; POOL_* variables). */
export interface PoolSettings {
  /** false = no warm spares: every sandbox is started on demand. */
  enabled: boolean;
  /** Idle spares kept warm. */
  minSize: number;
  /** A spare handed out is replaced this long afterwards while other spares are idle (at once when none is left or an acquire waits). */
  refillDelayMs: number;
  /** Cap on idle + leased + starting. */
  maxSize: number;
  /** Idle spares above minSize are removed after this long. */
  idleTimeoutMs: number;
  acquireTimeoutMs: number;
  /** Bound on one start: create + start + MCP initialize + tools/list. */
  createTimeoutMs: number;
  /** acquire() calls allowed to wait at once; more are refused with POOL_EXHAUSTED. */
  maxWaitingClients: number;
  /** Sandboxes starting at once. */
  createConcurrency: number;
  /** Used sandboxes being removed at once (removals wait while sandboxes start). */
  removeConcurrency: number;
  /** Spares follow the peak arrival rate seen within this window (ms). */
  demandWindowMs: number;
  /** Spares kept per sandbox needed during one start. */
  demandHeadroom: number;
  /** Memory the warm spares may take together (MiB): bounds the demand target (not minSize). */
  sparesMemoryMb: number;
  /** An idle sandbox's memory (MiB), to count spares against sparesMemoryMb. */
  idleSandboxMemoryMb: number;
  /** PARK_MAX: sandboxes kept frozen for their users on this replica; 0 = parking off. */
  parkMax: number;
  /** PARK_TTL_S: a parked sandbox is removed this long (seconds) after it was parked. */
  parkTtlS: number;
  /** Bound on resuming a parked sandbox (unpause + MCP ping); past it the user gets a fresh one from their snapshot. */
  resumeTimeoutMs: number;
  image: string;
  /** Overrides the image's entrypoint + command. */
  command: string[] | undefined;
}

/** Limits every sandbox runs with (config.sandbox; SANDBOX_* variables). */
export interface SandboxLimits {
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  workspaceMb: number;
  tmpMb: number;
  /** Size of /dev/shm. */
  shmMb: number;
  /** Open files per process (ulimit nofile, soft = hard). */
  nofile: number;
  /** uid[:gid] the sandbox process runs as. */
  user: string;
}
