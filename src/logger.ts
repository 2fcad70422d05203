import { pino, type Logger } from 'pino';

export type { Logger };

/** One pino logger per app instance (no module-level singleton). */
export function createLogger(options: { level: string; replicaId?: string; destination?: NodeJS.WritableStream }): Logger {
  const base = options.replicaId ? { replica: options.replicaId } : {};
  return options.destination
    ? pino({ level: options.level, base }, options.destination)
    : pino({ level: options.level, base });
}
