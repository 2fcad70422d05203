/**
 * A replica's container healthcheck in the compose and swarm stacks:
 *   node dist/src/http/healthcheck.js    exit 0 healthy, 1 not (the reason on stdout: `docker inspect`'s State.Health.Log)
 *
 * Healthy is ready (GET /ready: the pool is warm), so that a swarm's rolling
 * update starts a new task's successor only once it can serve. Exceptions,
 * where a swarm replacing the task would not help and would destroy every
 * user's sandbox on it:
 * - a replica that is only missing Redis (replacing it does not bring Redis back);
 * - a replica that served and whose pool cannot start sandboxes right now
 *   (POOL_DEGRADED: under load, with no spare while starts time out, or the
 *   engine's trouble, which the socket proxy's own healthcheck covers).
 * A /ready that answers slowly is alive: the probe waits up to 8 s, inside
 * the stack's healthcheck timeout.
 */
import { pathToFileURL } from 'node:url';
import type { NotReadyCode } from './readiness.js';

/** The /ready reasons that leave a replica healthy: replacing it would not remove them. */
const HEALTHY_WHEN_ONLY: ReadonlySet<NotReadyCode> = new Set<NotReadyCode>(['REDIS_UNREACHABLE', 'POOL_DEGRADED']);

/** The reason codes of a /ready answer, or undefined when it carries no list of reasons (a code is whatever `code` holds). */
function reasonCodes(body: unknown): unknown[] | undefined {
  const reasons = typeof body === 'object' && body !== null ? (body as { reasons?: unknown }).reasons : undefined;
  return Array.isArray(reasons) ? reasons.map((r: unknown) => (typeof r === 'object' && r !== null ? (r as { code?: unknown }).code : undefined)) : undefined;
}

/** Healthy from /ready's answer: 200, or a 503 whose reasons are all ones a replacement would not fix (by code, never by wording). */
export function isHealthy(status: number, body: unknown): boolean {
  if (status === 200) return true;
  const codes = status === 503 ? reasonCodes(body) : undefined;
  return codes !== undefined && codes.length > 0 && codes.every((code) => HEALTHY_WHEN_ONLY.has(code as NotReadyCode));
}

/** Healthy or not, and why in a line: the engine keeps it in the container's health log (`docker inspect`, State.Health.Log). */
async function probe(url: string): Promise<{ healthy: boolean; why: string }> {
  const started = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(8_000) });
    const body: unknown = await res.json().catch(() => undefined);
    const codes = reasonCodes(body)?.join(',');
    return { healthy: isHealthy(res.status, body), why: `/ready ${res.status}${codes ? ` ${codes}` : ''} in ${Math.round(performance.now() - started)} ms` };
  } catch (err) {
    return { healthy: false, why: `/ready did not answer: ${err instanceof Error ? err.message : String(err)} after ${Math.round(performance.now() - started)} ms` };
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { healthy, why } = await probe(`http://127.0.0.1:${process.env.PORT ?? '3000'}/ready`);
  process.stdout.write(`${why}\n`);
  process.exit(healthy ? 0 : 1);
}
