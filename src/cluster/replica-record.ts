import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { poolStatsSchema } from '../pool/pool-stats.js';

/**
 * What a replica publishes about itself with every heartbeat: its pool's
 * numbers and its users, read by the others to pass a new user on to a
 * replica with room (realtime/overflow.ts) and by /stats/pool?scope=cluster.
 *
 * During a rolling update replicas of two versions read each other's records:
 * a field added later must be optional, and none may be renamed or dropped
 * while an older replica still reads it. Unknown fields are dropped on read.
 */
export const replicaNumbersSchema = poolStatsSchema.extend({
  /** Socket.IO connections open on this replica. */
  connections: z.number(),
  /** Users present on this replica, the number MAX_SESSIONS caps. */
  sessions: z.number(),
  /** This replica's MAX_SESSIONS: with `sessions`, whether it has room for a new user. */
  maxSessions: z.number(),
  /** The replica is shutting down (its pool's own `draining` comes later): it takes nobody new. */
  draining: z.boolean(),
  /** The machine it runs on (NODE_NAME): a node's sandboxes are its replicas'. Optional: replicas of earlier versions publish none. */
  node: z.string().min(1).optional(),
});

/** A replica's published record: who it is and when it beat, with its numbers. */
export const replicaRecordSchema = replicaNumbersSchema.extend({
  replica: z.string().min(1),
  pid: z.number().int(),
  startedAtMs: z.number(),
  /** When this record was written (the beat's time). */
  seenAtMs: z.number(),
});

export type ReplicaNumbers = z.infer<typeof replicaNumbersSchema>;
export type ReplicaRecord = z.infer<typeof replicaRecordSchema>;

/**
 * A record another replica wrote, checked before anything reads it: the text
 * must be JSON of the declared shape, stored under the replica it names.
 * Anything else is a problem to report, never a record to trust.
 */
export function parseReplicaRecord(text: string, storedAs: string): { record: ReplicaRecord } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { problem: `not JSON: ${errorMessage(err)}` };
  }
  const parsed = replicaRecordSchema.safeParse(json);
  if (!parsed.success) {
    return { problem: parsed.error.issues.map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`).join('; ') };
  }
  if (parsed.data.replica !== storedAs) return { problem: `names replica ${JSON.stringify(parsed.data.replica)}` };
  return { record: parsed.data };
}
