import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { createDockerRuntime } from './docker-runtime.js';
import { createProcessRuntime } from './process-runtime.js';
import type { ContainerRuntime } from './types.js';

/**
 * The settings only a container runtime honours, as `NAME=value`, when they
 * differ from the defaults: the process runtime warns that it ignores them.
 */
export function containerOnlySettings(pool: { image: string; command: readonly string[] | undefined }, defaultImage: string): string[] {
  return [
    pool.image !== defaultImage ? `POOL_IMAGE=${pool.image}` : undefined,
    pool.command !== undefined ? `POOL_COMMAND=${JSON.stringify(pool.command)}` : undefined,
  ].filter((s): s is string => s !== undefined);
}

/**
 * POOL_RUNTIME: docker (must answer), process (dev only), or auto (docker when
 * the engine answers, else the process runtime — refused in production).
 */
export async function selectRuntime(options: {
  mode: 'docker' | 'process' | 'auto';
  production: boolean;
  dockerSocket: string;
  /** Settings only a container runtime honours (e.g. `POOL_IMAGE=...`): the process runtime warns they are ignored. */
  customSpec: readonly string[];
  logger: Logger;
}): Promise<ContainerRuntime> {
  const processRuntime = (): ContainerRuntime => createProcessRuntime({ logger: options.logger, ignoredSettings: options.customSpec });
  if (options.mode === 'process') return processRuntime();
  const docker = createDockerRuntime({ socketPath: options.dockerSocket, logger: options.logger });
  try {
    await docker.ping();
    return docker;
  } catch (err) {
    const why = `Docker engine at ${options.dockerSocket} did not answer: ${errorMessage(err)}`;
    if (options.mode === 'docker' || options.production) throw new Error(why);
    options.logger.warn(`${why}; POOL_RUNTIME=auto falls back to the process runtime (sandboxes are NOT isolated)`);
    return processRuntime();
  }
}
