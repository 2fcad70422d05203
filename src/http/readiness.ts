import type { PoolStats } from '../pool/pool-stats.js';

/** Why a replica cannot serve, as a code health checks decide on. */
export type NotReadyCode = 'SHUTTING_DOWN' | 'POOL_WARMING' | 'POOL_FAILING' | 'REDIS_UNREACHABLE';

/** A reason as `/ready` tells anyone: generic words, never an engine's or proxy's error (those go to the log and /stats/pool). */
export interface NotReadyReason {
  code: NotReadyCode;
  message: string;
}

const MESSAGES: Readonly<Record<NotReadyCode, string>> = {
  SHUTTING_DOWN: 'shutting down',
  POOL_WARMING: 'sandbox pool warming up',
  POOL_FAILING: 'sandbox pool cannot start sandboxes right now',
  REDIS_UNREACHABLE: 'shared state is unreachable',
};

/** What stands between this replica and serving; empty when it is ready. */
export function notReadyReasons(input: { draining: boolean; pool: Pick<PoolStats, 'ready' | 'lastError'>; stateHealthy: boolean }): NotReadyReason[] {
  const codes: NotReadyCode[] = [];
  if (input.draining) codes.push('SHUTTING_DOWN');
  else {
    if (!input.pool.ready) codes.push(input.pool.lastError ? 'POOL_FAILING' : 'POOL_WARMING');
    if (!input.stateHealthy) codes.push('REDIS_UNREACHABLE');
  }
  return codes.map((code) => ({ code, message: MESSAGES[code] }));
}
