import type { Readable, Writable } from 'node:stream';

/** Labels every sandpool container carries (the orphan sweep and `docker ps` filter on them). */
export const LABELS = {
  app: 'sandpool.app',
  replica: 'sandpool.replica',
  pool: 'sandpool.pool',
  created: 'sandpool.created',
  /** `<hostname>/<pid>` of the process that owns it: lets a sweeper on the same host tell a dead owner from a live one. */
  owner: 'sandpool.owner',
} as const;

export const APP_LABEL_VALUE = 'sandpool';

/** What to start. Limits apply to the docker runtime; the process runtime cannot enforce them. */
export interface SandboxSpec {
  image: string;
  /** Overrides the image's entrypoint + cmd when set. */
  command: string[] | undefined;
  name: string;
  labels: Record<string, string>;
  user: string;
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  workspaceBytes: number;
  tmpBytes: number;
  shmBytes: number;
  /** ulimit nofile (soft = hard). */
  nofile: number;
}

export interface ExitInfo {
  exitCode: number | null;
  /** Human-readable reason, e.g. "exited with code 137 (OOMKilled)". */
  reason: string;
}

/** A started sandbox whose stdio is attached: the MCP server speaks over stdin/stdout. */
export interface SandboxProcess {
  /** Container id (docker) or `proc-<pid>` (process runtime). */
  readonly id: string;
  /** Where the sandbox's files live as the MCP server sees them. */
  readonly workspaceDir: string;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Settles when the process/container is gone (its stdio closed). Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** true once it is known to be gone: its stdio closed, or the engine said it died. Asks nothing. */
  hasExited(): boolean;
  /**
   * Freezes it with its memory and files (docker pause: the freezer cgroup;
   * SIGSTOP for a process): it uses no CPU until resume(). Rejects when the
   * engine refused; destroy() still removes a frozen one.
   */
  pause(): Promise<void>;
  /** Thaws a frozen one (docker unpause; SIGCONT). */
  resume(): Promise<void>;
  /** Kills and removes it. Idempotent; safe to call on an exited sandbox. */
  destroy(): Promise<void>;
}

export interface ContainerSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  createdAtMs: number;
  running: boolean;
}

/**
 * The boundary to whatever runs sandboxes. Implemented with dockerode
 * (isolated containers) and with child processes (development fallback).
 */
export interface ContainerRuntime {
  readonly kind: 'docker' | 'process';
  /** true when sandboxes are isolated from the host (containers), false for plain processes. */
  readonly isolated: boolean;
  /** Resolves when the engine answers; rejects with the reason otherwise. */
  ping(): Promise<void>;
  /** Creates, attaches to (before start, so no output is lost) and starts a sandbox. */
  start(spec: SandboxSpec): Promise<SandboxProcess>;
  /** Sandboxes carrying all of these labels, running or not. */
  list(labels: Record<string, string>): Promise<ContainerSummary[]>;
  /** Force-removes one by id. Resolves if it is already gone. */
  remove(id: string): Promise<void>;
  /** true/false for a known container name or id, undefined when the engine knows no such container. */
  isRunning(nameOrId: string): Promise<boolean | undefined>;
}
