import { readFileSync } from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';

/**
 * What one user's session costs a replica, with headroom: the capacity runs
 * measured 17-29 KiB of replica RSS per connected user (a socket, its
 * session, 2 000 to 16 000 users; SCALABILITY.md); twice the worst of them.
 */
export const SESSION_COST_BYTES = 64 * 1024;
/** Open files kept for everything but users' sockets: Redis, the engine, logs, nginx's upstream keep-alives. */
export const RESERVED_FILES = 1024;

export interface ReplicaLimits {
  /** The most memory this process can use: its V8 heap limit, its cgroup's limit, the host's memory, whichever is least. */
  memoryBytes: number;
  /** The open-file limit (soft, which Node raises to the hard one at start). */
  openFiles: number;
}

/**
 * MAX_SESSIONS when none is set: half of the replica's memory at the
 * measured cost per session, and never more users than it has file
 * descriptors for (each holds a socket).
 */
export function maxSessionsFor(limits: ReplicaLimits, costBytes = SESSION_COST_BYTES): number {
  const byMemory = Math.floor(limits.memoryBytes / 2 / costBytes);
  const byFiles = limits.openFiles - RESERVED_FILES;
  return Math.max(1, Math.min(byMemory, byFiles));
}

/** This process's limits, read from V8, the cgroup (v1 or v2) and /proc. */
export function replicaLimits(): ReplicaLimits {
  const candidates = [v8.getHeapStatistics().heap_size_limit, os.totalmem()];
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const value = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(value) && value > 0) candidates.push(value);
    } catch {
      /* no such cgroup layout */
    }
  }
  let openFiles = 1024;
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    if (Number.isFinite(soft) && soft > 0) openFiles = soft;
  } catch {
    /* not Linux: the conservative default */
  }
  return { memoryBytes: Math.min(...candidates), openFiles };
}
