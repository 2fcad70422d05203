/**
 * Parked sandboxes of one replica: a user's sandbox, frozen (docker pause)
 * with its memory and /workspace, kept for that user alone until they come
 * back, and bounded: at most `maxParked` (the least recently parked goes
 * first) for at most `ttlMs` each. What leaves the book other than by
 * `take` (count, ttl, demand, wipe, shutdown) is handed to `evict`, which
 * removes it: its files are safe in the user's snapshot, taken at parking.
 */

import type { ParkEvictReason } from './types.js';

/** Why a parked sandbox left the book other than by take. */
export type EvictReason = Exclude<ParkEvictReason, 'failed'>;

export interface ParkedEntry<T> {
  readonly userId: string;
  readonly sandbox: T;
  readonly parkedAtMs: number;
}

export interface ParkBook<T> {
  /** Parks the user's sandbox; a sandbox already parked for the user is evicted first (one per user). */
  park(userId: string, sandbox: T): void;
  /** The user's parked sandbox, out of the book (to resume it), or undefined. */
  take(userId: string): ParkedEntry<T> | undefined;
  has(userId: string): boolean;
  /** Evicts the user's parked sandbox, if any. */
  remove(userId: string, reason: EvictReason): boolean;
  /** Evicts the least recently parked sandbox (the pool needs its room); false when none is parked. */
  evictOldest(reason: EvictReason): boolean;
  /** Evicts every sandbox parked longer than the TTL; called by the owner's timer. */
  expire(): number;
  /** Evicts them all (shutdown). */
  clear(reason: EvictReason): number;
  size(): number;
  /** The parked sandboxes (ids for the orphan sweep, stats). */
  sandboxes(): T[];
  /** The users with a sandbox parked, least recently parked first. */
  users(): string[];
}

export interface ParkBookOptions<T> {
  /** PARK_MAX: 0 turns parking off (every park is evicted at once). */
  maxParked: number;
  /** PARK_TTL_S in ms. */
  ttlMs: number;
  evict(entry: ParkedEntry<T>, reason: EvictReason): void;
  now?: () => number;
}

export function createParkBook<T>(options: ParkBookOptions<T>): ParkBook<T> {
  const now = options.now ?? Date.now;
  // Insertion order is parking order: the first entry is the least recently parked.
  const entries = new Map<string, ParkedEntry<T>>();

  const evictEntry = (userId: string, reason: EvictReason): boolean => {
    const entry = entries.get(userId);
    if (!entry) return false;
    entries.delete(userId);
    options.evict(entry, reason);
    return true;
  };

  const oldest = (): string | undefined => entries.keys().next().value;

  return {
    park(userId, sandbox) {
      evictEntry(userId, 'count');
      entries.set(userId, { userId, sandbox, parkedAtMs: now() });
      while (entries.size > options.maxParked) {
        const first = oldest();
        if (first === undefined) break;
        evictEntry(first, 'count');
      }
    },
    take(userId) {
      const entry = entries.get(userId);
      if (!entry) return undefined;
      entries.delete(userId);
      return entry;
    },
    has: (userId) => entries.has(userId),
    remove: evictEntry,
    evictOldest(reason) {
      const first = oldest();
      return first !== undefined && evictEntry(first, reason);
    },
    expire() {
      const cutoff = now() - options.ttlMs;
      let n = 0;
      for (const [userId, entry] of entries) {
        // Parking order is age order: stop at the first one young enough.
        if (entry.parkedAtMs > cutoff) break;
        evictEntry(userId, 'ttl');
        n++;
      }
      return n;
    },
    clear(reason) {
      let n = 0;
      for (const userId of [...entries.keys()]) if (evictEntry(userId, reason)) n++;
      return n;
    },
    size: () => entries.size,
    sandboxes: () => [...entries.values()].map((e) => e.sandbox),
    users: () => [...entries.keys()],
  };
}
