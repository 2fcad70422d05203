/**
 * npm run swarm:up | npm run swarm:down
 *
 * docker-compose.scale.yml as the Docker Swarm stack `sandpool` (services
 * app, redis, nginx, docker-proxy, sandbox-image) on the swarm this engine
 * manages. Swarm cannot build: the images are those `npm run images` built
 * and named in .env (for more than one machine, names in a registry every
 * node can pull from).
 *
 * up: deploys with .env's variables (`docker stack deploy` reads no .env; the
 * environment wins over it) and .secrets/ as Docker secrets (stored in the
 * swarm, mounted at /run/secrets; a changed secret needs swarm:down first:
 * swarm secrets cannot be updated), and waits until every service runs all of
 * its tasks, the app's healthy (ready).
 * down: removes the stack and waits until its containers are gone (replicas
 * drain on SIGTERM and remove their own sandboxes), then removes any sandbox
 * that an app task which ran on this node left (one killed earlier). The
 * volumes stay (sessions and histories are in sandpool_redis-data).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { sleep } from '../src/util/async.js';
import { ROOT, containerHosts, docker, sandboxesOwnedBy } from './lib/docker-cli.js';

const STACK = 'sandpool';
const STACK_LABEL = `com.docker.stack.namespace=${STACK}`;
const APP_LABEL = `com.docker.swarm.service.name=${STACK}_app`;
const say = (line: string): void => void process.stderr.write(`[swarm] ${line}\n`);

/** .env under the environment: what docker-compose would interpolate with. */
function stackEnv(): NodeJS.ProcessEnv {
  const file = path.join(ROOT, '.env');
  const fromFile = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

async function requireManager(): Promise<void> {
  const [state, manager] = (await docker(['info', '-f', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'])).trim().split(' ');
  if (state !== 'active') throw new Error(`this engine is in no swarm (state ${state}): \`docker swarm init\` makes it one, \`docker swarm join\` adds it to one`);
  if (manager !== 'true') throw new Error('this engine is a swarm worker: deploy from a manager');
}

/** `name running/desired` for each of the stack's services. */
async function serviceReplicas(): Promise<Array<{ name: string; running: number; desired: number }>> {
  const out = await docker(['service', 'ls', '--filter', `label=${STACK_LABEL}`, '--format', '{{.Name}} {{.Replicas}}']);
  return out.split('\n').filter(Boolean).map((line) => {
    const [name = '', replicas = ''] = line.split(' ');
    const [running = 'NaN', desired = 'NaN'] = replicas.split('/');
    return { name, running: Number(running), desired: Number(desired) };
  });
}

/** The files docker-compose.scale.yml's secrets come from (`npm run images` writes them). */
const SECRET_FILES = ['auth_secret', 'operator_secret', 'redis_password', 'redis.conf'];

async function up(timeoutMs: number): Promise<void> {
  await requireManager();
  const missing = SECRET_FILES.filter((f) => !existsSync(path.join(ROOT, '.secrets', f)));
  if (missing.length > 0) throw new Error(`no ${missing.map((f) => `.secrets/${f}`).join(', ')}: run \`npm run images\` first (it writes the stack's secrets)`);
  const started = Date.now();
  say(`deploying stack ${STACK} from docker-compose.scale.yml`);
  await docker(['stack', 'deploy', '--compose-file', 'docker-compose.scale.yml', STACK], { env: stackEnv(), timeoutMs: 300_000 });
  let last = '';
  for (;;) {
    const services = await serviceReplicas();
    // A task counts as running once its healthcheck passes: for the app, once it is ready.
    const pending = services.filter((s) => !(s.running === s.desired));
    const app = services.find((s) => s.name === `${STACK}_app`);
    const line = services.map((s) => `${s.name} ${s.running}/${s.desired}`).join(', ');
    if (line !== last) say(line);
    last = line;
    if (app && app.desired > 0 && pending.length === 0) break;
    if (Date.now() - started > timeoutMs) throw new Error(`stack ${STACK} not up within ${timeoutMs / 1000} s: ${line}`);
    await sleep(2_000);
  }
  say(`stack ${STACK} is up in ${Math.round((Date.now() - started) / 1000)} s; nginx listens on port 80 on the stack's network (tasks.nginx) and publishes ${stackEnv().SANDPOOL_PUBLISH ?? '3000'} where the engine can`);
}

async function down(timeoutMs: number): Promise<void> {
  await requireManager();
  const started = Date.now();
  const appHosts = await containerHosts([APP_LABEL]);
  say(`removing stack ${STACK}`);
  // Its services go even when a network stays (a foreign service still uses it): clean up, then say so.
  const incomplete = await docker(['stack', 'rm', STACK]).then(() => undefined, (err: unknown) => (err instanceof Error ? err.message : String(err)));
  // Its containers go as their tasks stop: a replica drains first (stop_grace_period 30 s).
  while ((await containerHosts([STACK_LABEL])).length > 0) {
    if (Date.now() - started > timeoutMs) throw new Error(`containers of stack ${STACK} still there after ${timeoutMs / 1000} s`);
    await sleep(1_000);
  }
  const left = await sandboxesOwnedBy(appHosts);
  if (left.length > 0) {
    say(`removing ${left.length} sandbox(es) left by app tasks that died before the stack was removed`);
    await docker(['rm', '-f', ...left]);
  }
  if (incomplete) throw new Error(`the stack's services and sandboxes are gone, but not all of it: ${incomplete}`);
  say(`stack ${STACK} removed in ${Math.round((Date.now() - started) / 1000)} s; no sandbox of it is left on this node (volumes kept: docker volume rm ${STACK}_redis-data ${STACK}_redis-snapshots ${STACK}_docker-proxy)`);
}

const command = process.argv[2];
try {
  if (command === 'up') await up(600_000);
  else if (command === 'down') await down(180_000);
  else {
    process.stderr.write('usage: node dist/scripts/swarm.js up|down\n');
    process.exit(2);
  }
} catch (err) {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
