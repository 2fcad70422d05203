/**
 * For the deployment tests (test/deploy): the images and .env that `npm run
 * images` makes, and where a stack's replicas run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { ROOT, docker, run } from '../../scripts/lib/docker-cli.js';

export { containerHosts, docker, run, sandboxesOwnedBy, ROOT } from '../../scripts/lib/docker-cli.js';

/** `npm run images` (cached: seconds; cold: minutes), then the .env it wrote. */
export async function buildImages(): Promise<Record<string, string>> {
  await run('bash', ['scripts/images.sh'], { timeoutMs: 20 * 60_000 });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parseEnv(readFileSync(path.join(ROOT, '.env'), 'utf8')))) if (v !== undefined) out[k] = v;
  for (const key of ['APP_IMAGE', 'SANDBOX_IMAGE', 'REDIS_IMAGE', 'NGINX_IMAGE', 'DOCKER_GID', 'AUTH_SECRET']) {
    if (!out[key]) throw new Error(`npm run images wrote no ${key} to .env`);
  }
  return out;
}

/** A container's address on its (one) network. */
export async function containerIp(container: string): Promise<string> {
  return (await docker(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', container])).trim();
}

/**
 * The container a replica runs in: REPLICA_ID defaults to `<hostname>-<PORT>`,
 * and a container's hostname is the start of its id.
 */
export function containerOfReplica(replica: string): string {
  const host = /^([0-9a-f]{12})-\d+$/.exec(replica)?.[1];
  if (!host) throw new Error(`replica ${replica} is not <container hostname>-<port>`);
  return host;
}
