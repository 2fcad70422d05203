/**
 * The CLI entry (`npm start`, `node dist/src/main.js`): reads .env and the
 * environment, parses the config once, starts a replica, and turns signals
 * and unexpected faults into its ordered shutdown. Nothing else.
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createSandpool, type Sandpool } from './app/create-sandpool.js';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { errorMessage } from './errors.js';

function exitOnSignals(app: Sandpool): void {
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
  // A rejection nobody awaited comes from best-effort background work (the
  // Socket.IO Redis adapter publishes without awaiting, for one): while Redis
  // is down it must not take every user of this replica down with it.
  process.on('unhandledRejection', (reason) => {
    app.logger.error({ err: errorMessage(reason) }, 'unhandled promise rejection (kept running)');
  });
  // A thrown exception leaves unknown state: stop cleanly (our containers are
  // removed, not orphaned), then exit non-zero for the supervisor to restart us.
  process.on('uncaughtException', (err) => {
    app.logger.fatal({ err: errorMessage(err), stack: err.stack }, 'uncaught exception: shutting down');
    const exit = setTimeout(() => process.exit(1), app.config.server.shutdownTimeoutMs + 1_000);
    exit.unref();
    void app.stop('uncaught exception').finally(() => process.exit(1));
  });
}

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
  exitOnSignals(app);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runMain();
}
