/**
 * For the deployment tests (test/deploy): the images and .env that `npm run
 * images` makes, and where a stack's replicas run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { ROOT, containerHosts, docker, run, sandboxesOwnedBy } from '../../scripts/lib/docker-cli.js';

export { containerHosts, docker, run, sandboxesOwnedBy, ROOT } from '../../scripts/lib/docker-cli.js';
export { stackSecrets } from '../../scripts/lib/stack-secrets.js';
import { stackSecrets } from '../../scripts/lib/stack-secrets.js';

/** `npm run images` (cached: seconds; cold: minutes), then the .env it wrote, with the stack's secrets (.secrets/) as AUTH_SECRET, OPERATOR_SECRET, REDIS_PASSWORD. */
export async function buildImages(): Promise<Record<string, string>> {
  await run('bash', ['scripts/images.sh'], { timeoutMs: 20 * 60_000 });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parseEnv(readFileSync(path.join(ROOT, '.env'), 'utf8')))) if (v !== undefined) out[k] = v;
  for (const key of ['APP_IMAGE', 'SANDBOX_IMAGE', 'REDIS_IMAGE', 'NGINX_IMAGE', 'DOCKER_GID']) {
    if (!out[key]) throw new Error(`npm run images wrote no ${key} to .env`);
  }
  if ('AUTH_SECRET' in out) throw new Error('npm run images left AUTH_SECRET in .env: secrets belong in .secrets/');
  return { ...out, ...stackSecrets() };
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

/** Where the deploy tests' compose projects are named from: `sandpool-e2e-<hex>`. */
export const TEST_PROJECT_PREFIX = 'sandpool-e2e-';

/**
 * Removes what earlier test runs left of their compose projects: a run whose
 * process died before its `after` hook (CI's time limit, an emptied event
 * loop) leaves replicas restarting on the engine for good, using the cores
 * the next run measures on. Their replicas' sandboxes go with them, then the
 * projects' networks and volumes. Says which projects it swept.
 */
export async function sweepLeftoverProjects(prefix = TEST_PROJECT_PREFIX): Promise<string[]> {
  const projectOf = (await docker(['ps', '-a', '--filter', 'label=com.docker.compose.project', '--format', '{{.Label "com.docker.compose.project"}}'])).split('\n');
  const projects = [...new Set(projectOf.map((p) => p.trim()).filter((p) => p.startsWith(prefix)))];
  for (const project of projects) {
    const label = `label=com.docker.compose.project=${project}`;
    // A container's hostname is its short id: the replicas go first, so that none starts a sandbox while its siblings go.
    const hosts = await containerHosts([`com.docker.compose.project=${project}`]);
    await docker(['rm', '-f', ...hosts]);
    const sandboxes = await sandboxesOwnedBy(hosts);
    if (sandboxes.length > 0) await docker(['rm', '-f', ...sandboxes]);
    const networks = (await docker(['network', 'ls', '-q', '--filter', label])).split('\n').filter(Boolean);
    if (networks.length > 0) await docker(['network', 'rm', ...networks]);
    const volumes = (await docker(['volume', 'ls', '-q', '--filter', label])).split('\n').filter(Boolean);
    if (volumes.length > 0) await docker(['volume', 'rm', ...volumes]);
  }
  return projects;
}
