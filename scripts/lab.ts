/**
 * npm run lab:up -- --nodes N [--replicas R] | npm run lab:down
 * node dist/scripts/lab.js kill|start|cut|heal <i> | memory | status
 *
 * A Docker Swarm of N nodes on this one machine, stack `sandpool` spread over
 * it. Each node is a network namespace (netns `sandpool-lab-<i>`, address
 * 10.213.0.<10+i> on bridge sandpool-lab0) with its own containerd and
 * dockerd (scripts/lib/lab-node.ts). Node 1 is the manager, the others
 * workers. Images go from the main engine (where `npm run images` builds
 * them) to a registry on the lab bridge, and every node pulls from there, as
 * hosts of a real deployment would (scripts/lib/lab-registry.ts).
 *
 * up (idempotent: what exists is kept, what is missing is made): bridge,
 * nodes, engines, swarm, registry, images pushed, then
 * `docker stack deploy -c docker-compose.scale.yml -c docker-compose.lab.yml`
 * with the registry's image names, R app replicas (default N) spread over the
 * nodes, waits until every replica is ready behind nginx, and writes .lab/env:
 * DOCKER_HOST (the manager), NODE_<i>_DOCKER_HOST, NODE_<i>_ADDRESS, LAB_URL
 * (nginx, published on the manager's netns address).
 * down (idempotent): removes the stack (replicas drain and remove their
 * sandboxes), then stops every engine, and removes the registry, netns,
 * bridge, data directories and .lab/; fails when anything of the lab is left.
 *
 * kill <i>: power loss of node i (every process of it SIGKILLed);
 * start <i>: its engine again (it rejoins the swarm); cut <i> / heal <i>: its
 * link down / up (a partition); memory: each node's memory now (JSON).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, parseEnv } from 'node:util';
import { signOperatorToken } from '../src/auth/operator-token.js';
import { sleep } from '../src/util/async.js';
import { ROOT, docker, run } from './lib/docker-cli.js';
import {
  BRIDGE,
  DATA_DIR,
  LAB_ENV_DIR,
  LAB_ENV_FILE,
  LAB_PREFIX,
  MAX_NODES,
  PUBLISH_PORT,
  REGISTRY,
  RUN_DIR,
  STACK,
  SWARM_ADDRESS_POOL,
  labNode,
  labNodes,
  labUrl,
  registryName,
  type LabNode,
} from './lib/lab-layout.js';
import {
  cutLink,
  engineAnswers,
  ensureBridge,
  ensureNetns,
  healLink,
  killNode,
  labProcesses,
  netnsList,
  nodeDocker,
  nodeMemory,
  nodeStatuses,
  removeBridge,
  removeNetns,
  startEngine,
  stopNode,
} from './lib/lab-node.js';
import { pushImages, startRegistry, stopRegistry } from './lib/lab-registry.js';
import { stackSecrets } from './lib/stack-secrets.js';
import type { ClusterStats } from '../src/http/http-app.js';

const say = (line: string): void => void process.stderr.write(`[lab] ${line}\n`);
/**
 * The swarm's dispatcher heartbeat (docker swarm update --dispatcher-heartbeat). A node is Down about three
 * beats after its last one, which may have come a beat before a cut: at 10 s, a 20 s partition was sometimes
 * taken for a loss (its replica rescheduled elsewhere); at 20 s it passes as one.
 */
const SWARM_HEARTBEAT = '20s';
const IMAGE_VARS = ['APP_IMAGE', 'SANDBOX_IMAGE', 'REDIS_IMAGE', 'NGINX_IMAGE'] as const;

/** .env under the environment, as swarm.ts reads it. */
function stackEnv(): NodeJS.ProcessEnv {
  const file = path.join(ROOT, '.env');
  const fromFile = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

/** Nodes of the lab that exist now (their netns), by index. */
async function existingNodes(): Promise<LabNode[]> {
  return (await netnsList()).map((name) => labNode(Number(name.slice(LAB_PREFIX.length + 1)))).filter((n) => n.index > 0).sort((a, b) => a.index - b.index);
}

async function swarmState(node: LabNode): Promise<string> {
  return (await nodeDocker(node, ['info', '-f', '{{.Swarm.LocalNodeState}}'])).trim();
}

/** The manager (node 1) makes the swarm; the other nodes join it as workers (idempotent). */
async function ensureSwarm(nodes: readonly LabNode[]): Promise<void> {
  const [manager, ...workers] = nodes;
  if (!manager) return;
  if ((await swarmState(manager)) !== 'active') {
    await nodeDocker(manager, ['swarm', 'init', '--advertise-addr', manager.address, '--listen-addr', `${manager.address}:2377`, '--default-addr-pool', SWARM_ADDRESS_POOL]);
    say(`swarm made on ${manager.name} (manager, ${manager.address})`);
  }
  // A node counts as Down after about three missed heartbeats: with the default 5 s, a 20 s partition already
  // reschedules its tasks and swarm shuts them down when the node returns. 10 s (Down after ~30 s) lets a
  // short partition pass as one, as the lab test's does; a node lost for good is rescheduled after ~30 s.
  await nodeDocker(manager, ['swarm', 'update', '--dispatcher-heartbeat', SWARM_HEARTBEAT]);
  const token = (await nodeDocker(manager, ['swarm', 'join-token', '-q', 'worker'])).trim();
  for (const worker of workers) {
    if ((await swarmState(worker)) === 'active') continue;
    await nodeDocker(worker, ['swarm', 'join', '--token', token, '--advertise-addr', worker.address, '--listen-addr', `${worker.address}:2377`, `${manager.address}:2377`]);
    say(`${worker.name} (${worker.address}) joined as a worker`);
  }
}

/** The images of .env, built by `npm run images` when one is missing from the main engine. */
async function stackImages(): Promise<Record<(typeof IMAGE_VARS)[number], string>> {
  const missing = async (): Promise<boolean> => {
    const env = stackEnv();
    for (const v of IMAGE_VARS) {
      const image = env[v];
      if (!image || !(await docker(['image', 'inspect', image]).then(() => true, () => false))) return true;
    }
    return false;
  };
  if (await missing()) {
    say('building the stack\'s images (npm run images)');
    await run('bash', ['scripts/images.sh'], { timeoutMs: 20 * 60_000 });
  }
  const env = stackEnv();
  return Object.fromEntries(IMAGE_VARS.map((v) => [v, env[v] ?? ''])) as Record<(typeof IMAGE_VARS)[number], string>;
}

/** The cluster view through nginx on the manager's netns address (mode host); /stats/ needs an operator token. */
async function clusterView(token: string): Promise<ClusterStats | undefined> {
  return fetch(`${labUrl()}/stats/pool?scope=cluster`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(3_000) }).then(
    (r) => (r.ok ? (r.json() as Promise<ClusterStats>) : undefined),
    () => undefined,
  );
}

function writeLabEnv(nodes: readonly LabNode[], replicas: number): void {
  mkdirSync(LAB_ENV_DIR, { recursive: true });
  const [manager] = nodes;
  const lines = [
    '# Written by `npm run lab:up` (scripts/lab.ts); `npm run lab:down` removes it.',
    '# The manager of the lab swarm; each node\'s own engine; nginx on the manager\'s netns address.',
    `DOCKER_HOST=${manager?.dockerHost ?? ''}`,
    ...nodes.flatMap((n) => [`NODE_${n.index}_DOCKER_HOST=${n.dockerHost}`, `NODE_${n.index}_ADDRESS=${n.address}`]),
    `LAB_NODES=${nodes.length}`,
    `LAB_REPLICAS=${replicas}`,
    `LAB_URL=${labUrl()}`,
    `LAB_REGISTRY=${REGISTRY}`,
    '',
  ];
  writeFileSync(LAB_ENV_FILE, lines.join('\n'));
}

async function up(count: number, replicas: number, timeoutMs: number): Promise<void> {
  const started = Date.now();
  const existing = await existingNodes();
  const extra = existing.filter((n) => n.index > count);
  if (extra.length > 0) throw new Error(`the lab has ${existing.length} node(s) (${existing.map((n) => n.name).join(', ')}), more than --nodes ${count}: npm run lab:down first`);
  const images = await stackImages();
  const nodes = labNodes(count);
  await ensureBridge();
  for (const node of nodes) {
    await ensureNetns(node);
    await startEngine(node);
  }
  say(`${count} node(s) up: ${nodes.map((n) => `${n.name} ${n.address}`).join(', ')}`);
  await ensureSwarm(nodes);
  await startRegistry(say);
  await pushImages(Object.values(images), say);

  const manager = nodes[0] as LabNode;
  // A lost node's replicas need room on the survivors.
  const maxPerNode = count === 1 ? replicas : Math.ceil(replicas / (count - 1));
  const env: NodeJS.ProcessEnv = {
    ...stackEnv(),
    ...Object.fromEntries(IMAGE_VARS.map((v) => [v, registryName(images[v])])),
    DOCKER_HOST: manager.dockerHost,
    DOCKER_GID: String(statSync(manager.socket).gid),
    POOL_MIN_SIZE: process.env.POOL_MIN_SIZE ?? '2',
    // Clients address nginx as the manager's netns address: the replicas must answer to that name (DNS-rebinding guard).
    PUBLIC_URL: process.env.PUBLIC_URL ?? labUrl(),
    SANDPOOL_PUBLISH: String(PUBLISH_PORT),
    LAB_APP_REPLICAS: String(replicas),
    LAB_MAX_REPLICAS_PER_NODE: String(maxPerNode),
  };
  say(`deploying stack ${STACK}: ${replicas} app replica(s), at most ${maxPerNode} per node`);
  // Tags, not digests: replicas start sandboxes by POOL_IMAGE's tag, which a pull by digest leaves unset.
  await docker(['stack', 'deploy', '--resolve-image', 'never', '-c', 'docker-compose.scale.yml', '-c', 'docker-compose.lab.yml', STACK], { env, timeoutMs: 300_000 });

  const operatorToken = await signOperatorToken({ secret: stackSecrets().OPERATOR_SECRET, subject: 'lab', ttlS: Math.ceil(timeoutMs / 1000) + 60 });
  let last = '';
  for (;;) {
    const view = await clusterView(operatorToken);
    const ready = view?.replicas.filter((r) => r.ready && !r.draining) ?? [];
    const line = view ? `${ready.length}/${replicas} replicas ready: ${ready.map((r) => `${r.replica}@${r.node ?? '?'}`).join(', ')}` : 'nginx not answering yet';
    if (line !== last) say(line);
    last = line;
    // A lab:up over a running stack updates the app service (rolling, start-first): count only once that converged.
    const update = view ? (await nodeDocker(manager, ['service', 'inspect', '-f', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}', `${STACK}_app`])).trim() : '';
    if (view && ready.length === replicas && view.replicas.length === replicas && (update === '' || update === 'completed')) break;
    if (Date.now() - started > timeoutMs) throw new Error(`stack ${STACK} not ready within ${timeoutMs / 1000} s: ${line}`);
    await sleep(2_000);
  }
  writeLabEnv(nodes, replicas);
  const statuses = await nodeStatuses(manager);
  say(`nodes: ${[...statuses].map(([n, s]) => `${n} ${s}`).join(', ')}`);
  say(`lab up in ${Math.round((Date.now() - started) / 1000)} s; ${labUrl()} (nginx); ${path.relative(ROOT, LAB_ENV_FILE)} written`);
}

/** Whatever of the lab is still there (nothing after a complete down). */
async function leftovers(): Promise<string[]> {
  const left: string[] = [];
  for (const name of await netnsList()) left.push(`netns ${name}`);
  if (await run('ip', ['link', 'show', BRIDGE]).then(() => true, () => false)) left.push(`bridge ${BRIDGE}`);
  for (const p of labProcesses()) left.push(`process ${p.pid}: ${p.command.slice(0, 120)}`);
  for (const dir of [RUN_DIR, DATA_DIR, LAB_ENV_DIR]) if (existsSync(dir)) left.push(`directory ${dir}`);
  return left;
}

async function down(timeoutMs: number): Promise<void> {
  const started = Date.now();
  const nodes = await existingNodes();
  const manager = labNode(1);
  if (await engineAnswers(manager)) {
    const stacks = await nodeDocker(manager, ['stack', 'ls', '--format', '{{.Name}}']).catch(() => '');
    if (stacks.split('\n').includes(STACK)) {
      say(`removing stack ${STACK}`);
      await nodeDocker(manager, ['stack', 'rm', STACK]).catch((err: unknown) => say(String(err)));
      // Replicas drain on SIGTERM and remove their own sandboxes; a node that does not answer is stopped anyway.
      const deadline = Date.now() + 60_000;
      for (;;) {
        let left = 0;
        for (const node of nodes) {
          if (!(await engineAnswers(node))) continue;
          left += (await nodeDocker(node, ['ps', '-q', '--filter', `label=com.docker.stack.namespace=${STACK}`]).catch(() => '')).split('\n').filter(Boolean).length;
        }
        if (left === 0 || Date.now() > deadline) break;
        await sleep(1_000);
      }
    }
  }
  // Everything of a node goes with it (its data root is deleted next): a short grace, then SIGKILL.
  for (const node of [...nodes].reverse()) {
    await stopNode(node, 2_000);
    await removeNetns(node.name);
  }
  // Nodes whose netns went earlier, but whose daemons did not.
  for (let i = 1; i <= MAX_NODES; i++) {
    const node = labNode(i);
    if (existsSync(node.cgroup) || existsSync(node.runDir)) await stopNode(node, 2_000);
  }
  await stopRegistry();
  await removeBridge();
  for (const dir of [RUN_DIR, DATA_DIR, LAB_ENV_DIR]) rmSync(dir, { recursive: true, force: true });
  const left = await leftovers();
  if (left.length > 0) throw new Error(`the lab is not completely gone (after ${Math.round((Date.now() - started) / 1000)} s):\n  ${left.join('\n  ')}`);
  say(`lab down in ${Math.round((Date.now() - started) / 1000)} s: no netns ${LAB_PREFIX}-*, no lab daemon, no bridge ${BRIDGE}, no data`);
  if (Date.now() - started > timeoutMs) say(`(down took longer than ${timeoutMs / 1000} s)`);
}

function nodeArg(text: string | undefined): LabNode {
  const index = Number(text);
  if (!Number.isInteger(index) || index < 1 || index > MAX_NODES) throw new Error(`a node number 1..${MAX_NODES} is needed (got ${JSON.stringify(text)})`);
  return labNode(index);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { nodes: { type: 'string', default: '3' }, replicas: { type: 'string' }, timeout: { type: 'string', default: '900' } },
});
const [command, target] = positionals;
try {
  if (process.getuid?.() !== 0) throw new Error('the lab makes network namespaces, a bridge and engines: it must run as root');
  const count = Number(values.nodes);
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) throw new Error(`--nodes must be 1..${MAX_NODES} (got ${values.nodes})`);
  const replicas = values.replicas === undefined ? Math.max(count, 1) : Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`--replicas must be a positive integer (got ${values.replicas})`);
  const timeoutMs = Number(values.timeout) * 1000;
  if (command === 'up') await up(count, replicas, timeoutMs);
  else if (command === 'down') await down(timeoutMs);
  else if (command === 'kill') say(`${nodeArg(target).name}: ${await killNode(nodeArg(target))} process(es) killed`);
  else if (command === 'start') {
    await startEngine(nodeArg(target));
    say(`${nodeArg(target).name}: engine up`);
  } else if (command === 'cut') await cutLink(nodeArg(target));
  else if (command === 'heal') await healLink(nodeArg(target));
  else if (command === 'memory') process.stdout.write(`${JSON.stringify(Object.fromEntries((await existingNodes()).map((n) => [n.name, nodeMemory(n)])), null, 2)}\n`);
  else if (command === 'status') process.stdout.write(`${await nodeDocker(labNode(1), ['node', 'ls'])}`);
  else {
    process.stderr.write('usage: node dist/scripts/lab.js up [--nodes N] [--replicas R] | down | kill|start|cut|heal <i> | memory | status\n');
    process.exit(2);
  }
} catch (err) {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
