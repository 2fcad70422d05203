import type { PoolStats } from '../pool/pool-stats.js';

/** Why a replica cannot serve, as a code health checks decide on. */
export type NotReadyCode = 'SHUTTING_DOWN' | 'POOL_WARMING' | 'POOL_FAILING' | 'POOL_DEGRADED' | 'REDIS_UNREACHABLE';

/** A reason as `/ready` tells anyone: generic words, never an engine's or proxy's error (those go to the log and /stats/pool). */
export interface NotReadyReason {
  code: NotReadyCode;
  message: string;
}

const MESSAGES: Readonly<Record<NotReadyCode, string>> = {
  SHUTTING_DOWN: 'shutting down',
  POOL_WARMING: 'sandbox pool warming up',
  POOL_FAILING: 'sandbox pool cannot start sandboxes right now',
  POOL_DEGRADED: 'sandbox pool cannot start sandboxes right now',
  REDIS_UNREACHABLE: 'shared state is unreachable',
};

/**
 * What stands between this replica and serving; empty when it is ready. A
 * pool that cannot start sandboxes is POOL_FAILING until it has been warm
 * once (a new replica that never could serve), POOL_DEGRADED after (a
 * replica that served, with no spare while its starts fail: under load, or
 * the engine's trouble). The healthcheck tells them apart.
 */
export function notReadyReasons(input: { draining: boolean; pool: Pick<PoolStats, 'ready' | 'lastError'>; poolHasWarmed: boolean; stateHealthy: boolean }): NotReadyReason[] {
  const codes: NotReadyCode[] = [];
  if (input.draining) codes.push('SHUTTING_DOWN');
  else {
    if (!input.pool.ready) codes.push(!input.pool.lastError ? 'POOL_WARMING' : input.poolHasWarmed ? 'POOL_DEGRADED' : 'POOL_FAILING');
    if (!input.stateHealthy) codes.push('REDIS_UNREACHABLE');
  }
  return codes.map((code) => ({ code, message: MESSAGES[code] }));
}
