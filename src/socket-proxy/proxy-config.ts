/**
 * The socket proxy's own settings, read once when it starts. The proxy is a
 * program of its own (the compose files run it as the `docker-proxy`
 * service) with its own environment, so its variables live here rather than
 * in the app's schema (src/config/schema.ts), built from the same variable
 * types. docs/socket-proxy.md lists them.
 */
import { ConfigError } from '../config/config.js';
import { DEFAULT_POOL_IMAGE } from '../config/schema.js';
import { EnvVarError, custom, int, num, variablesOf, type EnvTree, type ValueOf } from '../config/env-var.js';
import type { CreateLimits } from './create-schema.js';

const MIB = 1024 * 1024;

function parseImages(raw: string): string[] {
  const names = raw.split(',').map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) throw new EnvVarError('must name at least one image');
  for (const name of names) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/.test(name)) throw new EnvVarError(`${JSON.stringify(name)} is not an image name`);
  }
  return names;
}

/** Every variable the proxy reads. The defaults fit the app's defaults (SANDBOX_* in src/config/schema.ts). */
export const proxySchema = {
  images: custom<string[]>('POOL_IMAGE', {
    default: [DEFAULT_POOL_IMAGE],
    example: DEFAULT_POOL_IMAGE,
    parse: parseImages,
    doc: 'The images sandboxes may be created from, comma-separated (the app\'s POOL_IMAGE, and any other the replicas use). Resolved to image ids when the proxy starts; it refuses to start when none is on the engine.',
  }),
  maxMemoryMb: int('PROXY_MAX_MEMORY_MB', { default: 256, min: 6, max: 1_048_576, doc: 'Largest memory limit a sandbox may ask for (MiB, swap included: Memory must equal MemorySwap). At least SANDBOX_MEMORY_MB.' }),
  maxCpus: num('PROXY_MAX_CPUS', { default: 1, min: 0.01, max: 1024, doc: 'Largest CPU limit a sandbox may ask for (cores). At least SANDBOX_CPUS.' }),
  maxPids: int('PROXY_MAX_PIDS', { default: 64, min: 1, max: 100_000, doc: 'Largest process limit a sandbox may ask for. At least SANDBOX_PIDS_LIMIT.' }),
  maxWorkspaceMb: int('PROXY_MAX_WORKSPACE_MB', { default: 64, min: 1, max: 1_048_576, doc: 'Largest /workspace tmpfs a sandbox may ask for (MiB). At least SANDBOX_WORKSPACE_MB.' }),
  maxTmpMb: int('PROXY_MAX_TMP_MB', { default: 16, min: 1, max: 1_048_576, doc: 'Largest /tmp tmpfs a sandbox may ask for (MiB). At least SANDBOX_TMP_MB.' }),
  maxShmMb: int('PROXY_MAX_SHM_MB', { default: 1, min: 1, max: 65_536, doc: 'Largest /dev/shm a sandbox may ask for (MiB). At least SANDBOX_SHM_MB.' }),
  maxNofile: int('PROXY_MAX_NOFILE', { default: 1024, min: 1, max: 1_048_576, doc: 'Largest open-files limit (ulimit nofile) a sandbox may ask for. At least SANDBOX_NOFILE.' }),
  sweepIntervalMs: int('PROXY_SWEEP_INTERVAL_MS', {
    default: 10_000,
    min: 0,
    max: 86_400_000,
    doc: 'How often the proxy removes the sandboxes of replica containers on its engine that are no longer running (the node\'s own sweeper: a node back from a partition may have no replica left to sweep it). 0 turns it off (ms).',
  }),
} as const satisfies EnvTree;

export type ProxySettings = ValueOf<typeof proxySchema>;

/** Every variable of the proxy, for its docs. */
export const PROXY_VARIABLES = variablesOf(proxySchema).map(({ variable }) => variable);

/** Parses the proxy's environment; throws ConfigError listing every bad variable. */
export function loadProxySettings(env: Record<string, string | undefined>): ProxySettings {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, variable] of Object.entries(proxySchema)) {
    const raw = env[variable.name];
    try {
      // Empty means unset, as in the app's config.
      out[key] = variable.parse(raw === '' ? undefined : raw, {});
    } catch (err) {
      if (!(err instanceof EnvVarError)) throw err;
      problems.push(`${variable.name}: ${err.message} (got ${JSON.stringify(raw)})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ProxySettings;
}

/** The bounds of a create, in the units of the engine's API. */
export function createLimitsOf(settings: ProxySettings): CreateLimits {
  return {
    maxMemoryBytes: settings.maxMemoryMb * MIB,
    maxNanoCpus: Math.round(settings.maxCpus * 1e9),
    maxPids: settings.maxPids,
    maxWorkspaceBytes: settings.maxWorkspaceMb * MIB,
    maxTmpBytes: settings.maxTmpMb * MIB,
    maxShmBytes: settings.maxShmMb * MIB,
    maxNofile: settings.maxNofile,
  };
}
