import type { ReplicaNumbers, ReplicaRecord } from '../../src/cluster/replica-record.js';

/** What an idle replica publishes: an empty warm pool of 1..4, no users, room for 10. */
export function replicaNumbers(overrides: Partial<ReplicaNumbers> = {}): ReplicaNumbers {
  const noLatency = { p50: null, p95: null, p99: null };
  return {
    idle: 0, active: 0, parked: 0, maxParked: 0, total: 0, maxPoolSize: 4, minPoolSize: 1, pending: 0, creating: 0, spareTarget: 1, arrivalRate: 0, removing: 0, replaced: 0,
    enabled: true, runtime: 'process', isolated: false, ready: true, draining: false, created: 0, destroyed: 0, failed: 0, acquired: 0,
    consecutiveFailures: 0, lastError: null, acquireLatencyMs: noLatency, createLatencyMs: noLatency,
    connections: 0, sessions: 0, maxSessions: 10,
    ...overrides,
  };
}

/** A replica's heartbeat record, as `replicaNumbers` with who and when. */
export function replicaRecord(replica: string, overrides: Partial<ReplicaRecord> = {}): ReplicaRecord {
  return { ...replicaNumbers(), replica, pid: 1, startedAtMs: 0, seenAtMs: Date.now(), ...overrides };
}
