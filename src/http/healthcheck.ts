/**
 * A replica's container healthcheck in the compose and swarm stacks:
 *   node dist/src/http/healthcheck.js    exit 0 healthy, 1 not
 *
 * Healthy is ready (GET /ready: the pool is warm), so that a swarm's rolling
 * update starts a new task's successor only once it can serve. One
 * exception: a replica that is only missing Redis stays healthy. A swarm
 * replaces unhealthy tasks, and replacing every replica during a Redis outage
 * would not bring Redis back but would destroy every user's sandbox.
 */
import { pathToFileURL } from 'node:url';
import type { NotReadyCode } from './readiness.js';

/** Healthy from /ready's answer: 200, or a 503 whose only reason is Redis (by code, never by wording). */
export function isHealthy(status: number, body: unknown): boolean {
  if (status === 200) return true;
  if (status !== 503 || typeof body !== 'object' || body === null) return false;
  const reasons = (body as { reasons?: unknown }).reasons;
  const REDIS_UNREACHABLE: NotReadyCode = 'REDIS_UNREACHABLE';
  return Array.isArray(reasons) && reasons.length > 0 && reasons.every((r: unknown) => typeof r === 'object' && r !== null && (r as { code?: unknown }).code === REDIS_UNREACHABLE);
}

async function probe(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_500) });
    return isHealthy(res.status, await res.json().catch(() => undefined));
  } catch {
    return false;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exit((await probe(`http://127.0.0.1:${process.env.PORT ?? '3000'}/ready`)) ? 0 : 1);
}
