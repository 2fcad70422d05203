import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { errorMessage } from './errors.js';
import { createHttpApp } from './http/http-app.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './metrics/metrics.js';
import { createOrphanSweeper } from './orphans/orphan-sweeper.js';
import { createContainerPool, ownerLabel, type ContainerPool } from './pool/container-pool.js';
import { selectRuntime } from './runtime/select-runtime.js';
import type { ContainerRuntime } from './runtime/types.js';
import { withTimeout } from './util/async.js';

/** A running replica: the one object the composition root hands out. */
export interface Sandpool {
  readonly config: Config;
  readonly port: number;
  readonly url: string;
  readonly pool: ContainerPool;
  readonly runtime: ContainerRuntime;
  readonly logger: Logger;
  /** Why this replica cannot serve right now (what /ready reports); empty when ready. */
  notReadyReasons(): string[];
  /** Graceful, bounded shutdown: /ready 503, stop accepting, drain the pool, remove our containers. */
  stop(reason?: string): Promise<void>;
}

/** Options of createSandpool. */
export interface SandpoolOptions {
  logger?: Logger;
  /** Wait this long for the pool to warm before resolving (it keeps warming after). Default 0: do not wait. */
  warmTimeoutMs?: number;
}

/** Composition root: wires config, runtime, pool, sweeper, metrics and HTTP, and starts listening. */
export async function createSandpool(config: Config, options: SandpoolOptions = {}): Promise<Sandpool> {
  const startedAtMs = Date.now();
  const logger = options.logger ?? createLogger({ level: config.logLevel, replicaId: config.replicaId });
  const runtime = await selectRuntime({
    mode: config.pool.runtime,
    production: config.nodeEnv === 'production',
    dockerSocket: config.docker.socketPath,
    logger,
  });
  let stopping = false;
  const notReadyReasons = (): string[] => {
    if (stopping) return ['shutting down'];
    const s = pool?.stats();
    if (s && !s.ready) return [s.lastError ? `sandbox pool not ready: ${s.lastError}` : 'sandbox pool warming up'];
    return [];
  };

  // Metrics read the pool lazily, so the registry can exist before the pool.
  let pool: ContainerPool | undefined;
  const metrics = createMetrics({ replicaId: config.replicaId, poolStats: () => pool!.stats() });
  pool = createContainerPool({
    runtime,
    pool: config.pool,
    sandbox: config.sandbox,
    replicaId: config.replicaId,
    logger,
    observer: metrics.poolObserver,
  });
  const thePool = pool;
  if (config.pool.enabled) logger.info('[Phase 2] Container pooling enabled');
  else logger.info('Container pooling disabled (ENABLE_CONTAINER_POOL=false): every sandbox is created on demand');

  const sweeper = createOrphanSweeper({
    runtime,
    replicaId: config.replicaId,
    owner: ownerLabel(),
    ownedIds: () => thePool.ownedIds(),
    logger,
    graceMs: config.orphans.graceMs,
    inFlightGraceMs: config.pool.createTimeoutMs * 2,
    intervalMs: config.orphans.sweepIntervalMs,
    onRemoved: (n) => metrics.orphansRemoved.inc(n),
  });
  // Sweep before warming: an earlier crash's containers count against nobody.
  await sweeper.sweep();
  sweeper.start();
  thePool.start();

  const http = createHttpApp({
    replicaId: config.replicaId,
    startedAtMs,
    logger,
    metrics,
    poolStats: () => thePool.stats(),
    notReadyReasons,
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: http.fetch, port: config.port, hostname: config.host }, () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`;
  logger.info({ url, replica: config.replicaId, runtime: runtime.kind }, 'sandpool listening');

  if (options.warmTimeoutMs) await thePool.whenWarm(options.warmTimeoutMs);

  let stopped: Promise<void> | undefined;
  async function stop(reason = 'stop requested'): Promise<void> {
    stopping = true;
    const budget = config.shutdownTimeoutMs;
    const deadline = Date.now() + budget;
    const left = (): number => Math.max(100, deadline - Date.now());
    logger.info({ reason, budgetMs: budget }, 'shutting down');
    sweeper.stop();
    // Stop accepting; idle keep-alive sockets go now, busy ones get a bounded grace.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if ('closeIdleConnections' in server) server.closeIdleConnections();
    await withTimeout(closed, Math.min(left(), 5_000), 'http close').catch(() => {
      if ('closeAllConnections' in server) server.closeAllConnections();
    });
    await thePool.drain(left());
    // Belt and braces: whatever still carries our owner label goes.
    await withTimeout(sweeper.sweep(), left(), 'final sweep').catch((err: unknown) =>
      logger.warn({ err: errorMessage(err) }, 'final sweep incomplete'),
    );
    logger.info({ destroyed: thePool.stats().destroyed }, 'shutdown complete');
  }

  return {
    config,
    port,
    url,
    pool: thePool,
    runtime,
    logger,
    notReadyReasons,
    stop: (reason) => (stopped ??= stop(reason)),
  };
}

/** CLI entry: `npm start`. Reads .env (if present) and the environment, exits non-zero on bad config. */
async function runMain(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sandpool: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const app = await createSandpool(config).catch((err: unknown) => {
    process.stderr.write(`sandpool: could not start: ${errorMessage(err)}\n`);
    process.exit(1);
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      app.logger.warn('second signal: exiting now');
      process.exit(1);
    }
    void app.stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        app.logger.error({ err: errorMessage(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runMain();
}
