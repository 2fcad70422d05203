import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { routePath } from 'hono/route';
import { etag } from 'hono/etag';
import { secureHeaders } from 'hono/secure-headers';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { SandpoolError, errorMessage, toClientError, type ErrorCode } from '../errors.js';
import type { OperatorGuard } from '../auth/operator-guard.js';
import type { ReplicaRecord } from '../cluster/replica-record.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { PoolStats } from '../pool/pool-stats.js';
import { toPublicStatus } from './public-status.js';
import type { NotReadyReason } from './readiness.js';

/** The HTTP status of each error code (docs/protocol.md's error table is generated from it). */
export const HTTP_STATUS: Readonly<Record<ErrorCode, ContentfulStatusCode>> = {
  UNAUTHORIZED: 401,
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_REQUESTS: 429,
  QUOTA_EXCEEDED: 429,
  UNKNOWN_CALL: 404,
  POOL_EXHAUSTED: 503,
  SANDBOX_FAILED: 502,
  LLM_FAILED: 502,
  NOT_FOUND: 404,
  SHUTTING_DOWN: 503,
  CANCELLED: 409,
  FORBIDDEN: 403,
  INTERNAL: 500,
};

/** The fields of the replicas' records that /stats/pool?scope=cluster adds up. */
const SUMMED_FIELDS = ['idle', 'active', 'parked', 'total', 'pending', 'creating', 'spareTarget', 'arrivalRate', 'removing', 'maxPoolSize', 'minPoolSize', 'connections', 'sessions'] as const;
type SummedField = (typeof SUMMED_FIELDS)[number];

/** GET /stats/pool?scope=cluster: every live replica's record (this one first, fresh) and the sums over them. */
export interface ClusterStats {
  replicas: ReplicaRecord[];
  totals: { replicas: number } & Record<SummedField, number>;
}

/** What the HTTP layer needs from the rest of the replica. */
export interface HttpDeps {
  /** Directory of the chat page (index.html, style.css, js/*.js): every file in it is public. */
  webRoot: string;
  replicaId: string;
  startedAtMs: number;
  logger: Logger;
  metrics: Metrics;
  poolStats: () => PoolStats;
  /** Every live replica's published record (this one first, fresh). */
  clusterStats: () => Promise<ReplicaRecord[]>;
  /** Reasons this replica cannot serve; empty when ready. */
  notReadyReasons: () => NotReadyReason[];
  /** True once this replica is shutting down (before its pool starts draining). */
  isDraining: () => boolean;
  /** Browser origins besides the server's own allowed to call the API (ALLOWED_ORIGINS); the same list Socket.IO handshakes are checked against. */
  allowedOrigins: readonly string[];
  /** The MCP gateway's routes (/mcp, /.well-known/oauth-protected-resource). */
  mcp: Hono;
  /** Operators' routes (/admin/...). */
  admin: Hono;
  /** A user's own routes (/me/usage). */
  me: Hono;
  /** Who may call /stats/*, /metrics and /admin/*: operator tokens, never addresses. */
  operators: OperatorGuard;
}

export function createHttpApp(deps: HttpDeps): Hono {
  const app = new Hono();

  // Latency and status of every request, by the route that answered (a registered path, never the URL: bounded labels).
  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    deps.metrics.httpRequest(c.req.method, routePath(c), c.res.status, performance.now() - started);
  });

  // Security headers on every response (pages and API alike). The page's CSP:
  // same-origin files only (ES modules included), no inline scripts or styles.
  // nginx adds X-Frame-Options, Referrer-Policy and Permissions-Policy too:
  // the values here are the same, so a browser never sees two that conflict.
  app.use(
    '*',
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        connectSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
      xFrameOptions: 'DENY',
      referrerPolicy: 'no-referrer',
      permissionsPolicy: { camera: [], microphone: [], geolocation: [] },
      // Plain HTTP here; HSTS belongs to whatever terminates TLS in front.
      strictTransportSecurity: false,
    }),
  );

  // Cross-origin browsers get CORS headers only for ALLOWED_ORIGINS (none by
  // default: same origin only), as Socket.IO handshakes are checked.
  app.use(
    '*',
    cors({
      origin: [...deps.allowedOrigins],
      allowHeaders: ['authorization', 'content-type', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id'],
      exposeHeaders: ['mcp-session-id', 'www-authenticate'],
      maxAge: 600,
    }),
  );

  app.get('/health', (c) =>
    c.json({
      status: 'ok',
      replica: deps.replicaId,
      uptimeSeconds: Math.round((Date.now() - deps.startedAtMs) / 1000),
      runtime: deps.poolStats().runtime,
    }),
  );

  // Public: generic reasons only (readiness.ts); the details are in the log and in /stats/pool (operators).
  app.get('/ready', (c) => {
    const reasons = deps.notReadyReasons();
    return reasons.length === 0
      ? c.json({ ready: true, replica: deps.replicaId })
      : c.json({ ready: false, replica: deps.replicaId, reasons }, 503);
  });

  // Operator endpoints: an operator token whenever AUTH_SECRET is set, from any address.
  const operatorsOnly = async (c: { req: { header(name: string): string | undefined } }, next: () => Promise<void>): Promise<void> => {
    try {
      await deps.operators.check(c.req.header('authorization'));
    } catch (err) {
      deps.metrics.authFailed('http');
      throw err;
    }
    await next();
  };
  app.use('/stats/*', operatorsOnly);
  app.use('/metrics', operatorsOnly);
  app.use('/admin/*', operatorsOnly);

  app.get('/stats/pool', async (c) => {
    const scope = c.req.query('scope') ?? 'replica';
    if (scope === 'replica') return c.json({ replica: deps.replicaId, ...deps.poolStats() });
    if (scope === 'cluster') {
      const replicas = await deps.clusterStats().catch((err: unknown) => {
        throw new SandpoolError('INTERNAL', 'cluster stats are unavailable right now (shared state unreachable); try again shortly', { cause: err, detail: errorMessage(err) });
      });
      const sum = (field: SummedField): number => replicas.reduce((n, r) => n + r[field], 0);
      const totals = Object.fromEntries(SUMMED_FIELDS.map((f) => [f, sum(f)])) as Record<SummedField, number>;
      const body: ClusterStats = { replicas, totals: { replicas: replicas.length, ...totals } };
      return c.json(body);
    }
    throw new SandpoolError('BAD_REQUEST', `scope must be "replica" or "cluster" (got ${JSON.stringify(scope)})`);
  });

  // Public and coarse, for the page's pool panel (/stats/ is internal behind nginx).
  app.get('/status', (c) => {
    c.header('cache-control', 'no-store');
    return c.json(toPublicStatus(deps.poolStats(), deps.notReadyReasons(), deps.isDraining()));
  });

  app.get('/metrics', async (c) => {
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { 'content-type': deps.metrics.registry.contentType });
  });

  app.route('/', deps.mcp);
  app.route('/', deps.admin);
  app.route('/', deps.me);

  // The chat page, last: only what no route above answered is looked up in webRoot.
  // Revalidated on every load (no-cache), cheaply: an unchanged file is a 304.
  // The Socket.IO client (/socket.io/socket.io.esm.min.js) is served by Socket.IO itself.
  app.get(
    '*',
    async (c, next) => {
      c.header('cache-control', 'no-cache');
      await next();
    },
    etag(),
    serveStatic({ root: deps.webRoot }),
  );

  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));

  // One of the two places errors become responses (the other: Socket.IO acks).
  app.onError((err, c) => {
    const body = toClientError(err, deps.logger.child({ path: c.req.path }));
    // RFC 9110 Retry-After beside the body's retryAfterSeconds, for clients that read only headers.
    if (body.retryAfterSeconds !== undefined) c.header('retry-after', String(body.retryAfterSeconds));
    return c.json({ error: body }, HTTP_STATUS[body.code]);
  });

  return app;
}
