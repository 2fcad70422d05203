import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { SandpoolError, toErrorBody, toSandpoolError, type ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { PoolStats } from '../pool/container-pool.js';

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  UNAUTHORIZED: 401,
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_REQUESTS: 429,
  UNKNOWN_CALL: 404,
  POOL_EXHAUSTED: 503,
  SANDBOX_FAILED: 502,
  LLM_FAILED: 502,
  NOT_FOUND: 404,
  SHUTTING_DOWN: 503,
  CANCELLED: 409,
  INTERNAL: 500,
};

/** What the HTTP layer needs from the rest of the replica. */
export interface HttpDeps {
  /** Directory of the chat page (index.html, app.js, style.css). */
  webRoot: string;
  replicaId: string;
  startedAtMs: number;
  logger: Logger;
  metrics: Metrics;
  poolStats: () => PoolStats;
  /** Every live replica's published stats (this one first, fresh). */
  clusterStats: () => Promise<Array<Record<string, unknown> & { replica: string }>>;
  /** Reasons this replica cannot serve; empty when ready. */
  notReadyReasons: () => string[];
}

export function createHttpApp(deps: HttpDeps): Hono {
  const app = new Hono();

  // The chat page: three small files, read once. Socket.IO serves its own
  // client at /socket.io/socket.io.min.js (no CDN).
  const page = (file: string, type: string): { body: string; type: string } => ({ body: readFileSync(path.join(deps.webRoot, file), 'utf8'), type });
  const files: Record<string, { body: string; type: string }> = {
    '/': page('index.html', 'text/html; charset=utf-8'),
    '/app.js': page('app.js', 'text/javascript; charset=utf-8'),
    '/style.css': page('style.css', 'text/css; charset=utf-8'),
  };
  for (const [route, file] of Object.entries(files)) {
    app.get(route, (c) =>
      c.body(file.body, 200, {
        'content-type': file.type,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        ...(route === '/' ? { 'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:" } : {}),
      }),
    );
  }

  app.get('/health', (c) =>
    c.json({
      status: 'ok',
      replica: deps.replicaId,
      uptimeSeconds: Math.round((Date.now() - deps.startedAtMs) / 1000),
      pid: process.pid,
      runtime: deps.poolStats().runtime,
    }),
  );

  app.get('/ready', (c) => {
    const reasons = deps.notReadyReasons();
    return reasons.length === 0
      ? c.json({ ready: true, replica: deps.replicaId })
      : c.json({ ready: false, replica: deps.replicaId, reasons }, 503);
  });

  app.get('/stats/pool', async (c) => {
    const scope = c.req.query('scope') ?? 'replica';
    if (scope === 'replica') return c.json({ replica: deps.replicaId, ...deps.poolStats() });
    if (scope === 'cluster') {
      const replicas = await deps.clusterStats().catch((err: unknown) => {
        throw new SandpoolError('INTERNAL', `cluster stats unavailable: ${err instanceof Error ? err.message : String(err)}`);
      });
      const sum = (field: string): number => replicas.reduce((n, r) => n + (typeof r[field] === 'number' ? (r[field] as number) : 0), 0);
      return c.json({
        replicas,
        totals: {
          replicas: replicas.length,
          ...Object.fromEntries(['idle', 'active', 'total', 'pending', 'creating', 'maxPoolSize', 'minPoolSize', 'connections', 'sessions'].map((f) => [f, sum(f)])),
        },
      });
    }
    throw new SandpoolError('BAD_REQUEST', `scope must be "replica" or "cluster" (got ${JSON.stringify(scope)})`);
  });

  app.get('/metrics', async (c) => {
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { 'content-type': deps.metrics.registry.contentType });
  });

  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));

  // One of the two places errors become responses (the other: Socket.IO acks).
  app.onError((err, c) => {
    const e = toSandpoolError(err);
    if (e.code === 'INTERNAL') deps.logger.error({ err: err.message, path: c.req.path }, 'request failed');
    return c.json({ error: toErrorBody(e) }, STATUS[e.code]);
  });

  return app;
}
