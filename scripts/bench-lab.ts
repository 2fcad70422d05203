/**
 * npm run bench:lab -- --nodes N [--replicas 3] [--rates 2,4,6] [--duration 60] [--node-loss]
 *   [--save | --out FILE]   (default results/bench/lab-<N>nodes.json, git-ignored; --save: bench/results/)
 *
 * Measures the lab (npm run lab:up) with N nodes and the same number of app
 * replicas whatever N (same total CPU: this measures the cost of spreading,
 * not more capacity):
 *   memory   each node's memory with the stack up and idle (its cgroup: its
 *            daemons, replicas, proxy, sandboxes), and its dockerd + containerd alone;
 *   rates    the seed flow (load-tests/phase2.yml) at each arrival rate for
 *            --duration s against nginx on the manager's netns address; a rate
 *            is held with < 1% failed users, Artillery's ensure passing and
 *            the first tool:result p95 within 2 s;
 *   nodeLoss (--node-loss, N >= 2) one idle user on the last node's replica;
 *            that node is killed (every process SIGKILLed: the node's kernel,
 *            this machine's, still resets their connections); the time until
 *            the user is served again by a survivor with their file, until
 *            swarm marks the node Down, and until the replicas are all ready
 *            again; then the node is started again;
 *   silentLoss (--silent-loss) the same with the node's link cut instead
 *            (a machine that vanishes: nothing resets the user's connection,
 *            the client notices by Socket.IO's ping timeout); healed after.
 * Brings the lab up first (lab:up --nodes N --replicas R) and down at the end.
 * Run it under the machine lock: flock /tmp/sandpool-heavy.lock npm run bench:lab -- ...
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { benchResultFileOrExit, writeResultFile } from './lib/results-path.js';
import { stackSecrets } from './lib/stack-secrets.js';
import { sleep } from '../src/util/async.js';
import { converse, converseRetrying } from '../test/support/conversation.js';
import { makeToken } from '../test/support/tokens.js';
import { waitFor } from '../test/support/helpers.js';
import { clusterView, homeOf, labUser, lastReplica, readLabEnv } from '../test/support/lab.js';
import { ROOT, run } from './lib/docker-cli.js';
import { labNode, labNodes } from './lib/lab-layout.js';
import { cutLink, healLink, killNode, nodeMemory, nodeStatuses, startEngine } from './lib/lab-node.js';
import { runArtillery } from './load/artillery.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    replicas: { type: 'string', default: '3' },
    rates: { type: 'string', default: '2,4,6' },
    duration: { type: 'string', default: '60' },
    'node-loss': { type: 'boolean', default: false },
    'silent-loss': { type: 'boolean', default: false },
    out: { type: 'string' },
    save: { type: 'boolean', default: false },
  },
});
const nodes = Number(values.nodes);
const replicas = Number(values.replicas);
const rates = values.rates.split(',').map(Number).filter((r) => r > 0);
const durationS = Number(values.duration);
// results/bench/ (git-ignored) unless --save (the tracked bench/results/ the docs link to) or --out.
const outFile = benchResultFileOrExit('bench-lab', `lab-${nodes}node${nodes === 1 ? '' : 's'}.json`, { out: values.out, save: values.save });
const say = (line: string): void => void process.stderr.write(`[bench-lab] ${line}\n`);
const POOL_ENV = { POOL_MIN_SIZE: '10', POOL_MAX_SIZE: '100' };
/** A rate is held with < 1% failed users, Artillery's ensure passing, and the first tool:result p95 within this. */
const HELD_FIRST_RESULT_P95_MS = 2_000;

async function labUp(): Promise<void> {
  await run('node', ['dist/scripts/lab.js', 'down'], { timeoutMs: 300_000 });
  await run('node', ['dist/scripts/lab.js', 'up', '--nodes', String(nodes), '--replicas', String(replicas)], { env: { ...process.env, ...POOL_ENV }, timeoutMs: 20 * 60_000 });
}

interface RateResult {
  rate: number;
  held: boolean;
  users: number;
  failed: number;
  errorRatePercent: number;
  ackP95Ms: number | undefined;
  firstToolResultP50Ms: number | undefined;
  firstToolResultP95Ms: number | undefined;
  messageDoneP95Ms: number | undefined;
  artilleryExit: number | null;
  /** Why users failed: the processor's and Artillery's error counters. */
  errors: Record<string, number>;
  /** App tasks swarm replaced during the step (a replica that died or failed its healthcheck takes its sockets with it), with swarm's reasons. */
  appTasksReplaced: number;
  appTaskReasons: string[];
  problem?: string;
}

const onManager = { env: { ...process.env, DOCKER_HOST: labNode(1).dockerHost }, timeoutMs: 30_000 };

/** The app's tasks that are not the running ones: each is a replica swarm replaced, as "<task id> <its status: state, message, error, exit code>". */
async function replacedAppTasks(): Promise<string[]> {
  const out = await run('docker', ['service', 'ps', 'sandpool_app', '--no-trunc', '--format', '{{.ID}} {{.DesiredState}} {{.CurrentState}}'], onManager);
  const ids = out.split('\n').filter((l) => l.trim() !== '' && !/ Running Running/.test(l)).map((l) => l.split(' ')[0] ?? '');
  if (ids.length === 0) return [];
  const status = await run('docker', ['inspect', '--format', '{{.ID}} {{.DesiredState}}: {{.Status.State}} "{{.Status.Message}}" "{{.Status.Err}}" exit {{.Status.ContainerStatus.ExitCode}} {{.Status.ContainerStatus.ContainerID}}', ...ids], onManager);
  const lines = status.split('\n').filter((l) => l.trim() !== '');
  // Each replaced replica's last health probes (what healthcheck.js printed), from the engine of the node it ran on.
  return Promise.all(
    lines.map(async (line) => {
      const container = line.split(' ').at(-1) ?? '';
      for (const node of labNodes(nodes)) {
        const health = await run('docker', ['inspect', '--format', '{{range .State.Health.Log}}[{{.ExitCode}} {{.Output}}]{{end}}', container], { env: { ...process.env, DOCKER_HOST: node.dockerHost }, timeoutMs: 30_000 }).catch(() => undefined);
        if (health !== undefined) return `${line.slice(0, line.lastIndexOf(' '))} health: ${health.replace(/\s+/g, ' ').trim()}`;
      }
      return line;
    }),
  );
}

async function seedRate(url: string, rate: number, secret: string): Promise<RateResult> {
  // Artillery's engine opens each virtual user's socket as one bootstrap identity before the processor makes it
  // the user's own (load-tests/processor.cjs): with AUTH_SECRET set, that first connect needs a token too.
  const bootstrap = await makeToken({ sub: 'artillery-bootstrap', exp: Math.floor(Date.now() / 1000) + 3600 }, { secret });
  const runSpec = {
    name: `lab-${nodes}n-phase2-${rate}`,
    scenario: 'phase2.yml',
    overrides: {
      config: {
        phases: [{ duration: durationS, arrivalRate: rate, name: `sustained ${rate}/s` }],
        variables: { approvalThinkMs: 1000 },
        socketio: { transports: ['websocket'], query: 'uid=artillery-bootstrap', auth: { token: bootstrap } },
      },
    },
    env: {},
  };
  const before = new Set(await replacedAppTasks());
  const { exit, report, noReport } = await runArtillery({ root: ROOT, run: runSpec, target: url, onStart: () => undefined });
  const replaced = (await replacedAppTasks()).filter((t) => !before.has(t));
  const c = report.aggregate.counters;
  const s = report.aggregate.summaries;
  const users = c['vusers.created'] ?? 0;
  const failed = c['vusers.failed'] ?? 0;
  const errorRatePercent = users ? Math.round((failed / users) * 10000) / 100 : 100;
  // As load:returning judges a rate: users also get their first tool result within 2 s (p95), not only an ack.
  const held = !noReport && exit.code === 0 && users > 0 && errorRatePercent < 1 && (s['sandpool.first_tool_result']?.p95 ?? Infinity) <= HELD_FIRST_RESULT_P95_MS;
  return {
    rate,
    held,
    users,
    failed,
    errorRatePercent,
    ackP95Ms: s['socketio.response_time']?.p95,
    firstToolResultP50Ms: s['sandpool.first_tool_result']?.p50,
    firstToolResultP95Ms: s['sandpool.first_tool_result']?.p95,
    messageDoneP95Ms: s['sandpool.message_done']?.p95,
    artilleryExit: exit.code,
    errors: Object.fromEntries(Object.entries(c).filter(([k]) => /^(sandpool\.(errors|refused|connect_error|dropped)\.|errors\.)/.test(k))),
    appTasksReplaced: replaced.length,
    appTaskReasons: replaced.map((t) => t.slice(t.indexOf(' ') + 1)),
    ...(noReport ? { problem: noReport } : {}),
  };
}

/** Waits until every replica is ready and no sandbox is leased or starting (the last step's users gone). */
async function settle(url: string): Promise<void> {
  await waitFor('the stack to settle', async () => {
    const view = await clusterView(url).catch(() => undefined);
    const all = view as Array<Record<string, unknown>> | undefined;
    return (all !== undefined && all.length === replicas && all.every((r) => r.ready === true && r.active === 0 && r.creating === 0)) || undefined;
  }, 180_000, 2_000);
}

async function nodeLoss(url: string, secret: string, how: 'kill' | 'cut'): Promise<Record<string, unknown>> {
  const lost = labNode(nodes);
  const view = await clusterView(url);
  const target = view.find((r) => r.node === lost.name)?.replica;
  if (!target) throw new Error(`no replica on ${lost.name}`);
  let uid = '';
  for (let i = 0; !uid; i++) if ((await homeOf(url, `loss-user-${i}`)) === target) uid = `loss-user-${i}`;
  const user = await labUser(url, secret, uid);
  await converse(user.socket, `write "kept" to /workspace/${uid}.txt`, 60_000);
  const killedAt = Date.now();
  if (how === 'kill') await killNode(lost);
  else await cutLink(lost);
  await waitFor('served again', () => (lastReplica(user) !== target && user.socket.connected) || undefined, 180_000, 100);
  // The survivor waits out the lost replica's heartbeat; only if that runs out ("try again") is it sent again.
  const { contents, retries } = await converseRetrying(user.socket, `read /workspace/${uid}.txt`, 60_000);
  const read = contents[0];
  const servedAgainS = (Date.now() - killedAt) / 1000;
  await waitFor('node Down', async () => (await nodeStatuses(labNode(1))).get(lost.name) === 'Down' || undefined, 120_000, 500);
  const nodeDownS = (Date.now() - killedAt) / 1000;
  await waitFor('replicas ready again', async () => {
    const v = await clusterView(url).catch(() => []);
    return (v.length === replicas && v.every((r) => r.ready && r.node !== lost.name)) || undefined;
  }, 300_000, 500);
  const rescheduledReadyS = (Date.now() - killedAt) / 1000;
  user.socket.close();
  // Back for the next measurement: swarm does not move the replicas back by itself.
  if (how === 'kill') await startEngine(lost);
  else await healLink(lost);
  await waitFor('node Ready', async () => (await nodeStatuses(labNode(1))).get(lost.name) === 'Ready' || undefined, 120_000, 1_000);
  return {
    how: how === 'kill' ? 'every process of the node SIGKILLed' : 'the node\'s link cut',
    lostNode: lost.name,
    servedAgainS,
    fileIntact: read?.endsWith('kept') === true,
    refusedFirst: retries,
    nodeDownS,
    rescheduledReadyS,
    client: 'idle Socket.IO client, default reconnection (Socket.IO pingInterval 25 s + pingTimeout 20 s)',
  };
}

const started = Date.now();
try {
  await labUp();
  const env = readLabEnv();
  const url = env.LAB_URL ?? '';
  // lab:up deployed the stack with .secrets/auth_secret (npm run images wrote it) as its Docker secret.
  const secret = stackSecrets().AUTH_SECRET;
  process.env.LOAD_AUTH_SECRET = secret;
  await settle(url);
  await sleep(10_000);
  const memory = Object.fromEntries(labNodes(nodes).map((n) => [n.name, nodeMemory(n)]));
  say(`idle memory: ${JSON.stringify(memory)}`);
  const rateResults: RateResult[] = [];
  for (const rate of rates) {
    say(`seed flow at ${rate}/s for ${durationS} s`);
    const r = await seedRate(url, rate, secret);
    say(`  ${r.held ? 'held' : 'not held'}: ${r.users} users, ${r.errorRatePercent}% failed, first tool:result p95 ${r.firstToolResultP95Ms} ms ${JSON.stringify(r.errors)}; app tasks replaced: ${r.appTasksReplaced} ${JSON.stringify(r.appTaskReasons)}`);
    rateResults.push(r);
    await settle(url).catch((err: unknown) => say(`did not settle: ${String(err)}`));
    if (!r.held) break;
  }
  const loss = values['node-loss'] && nodes >= 2 ? await nodeLoss(url, secret, 'kill') : undefined;
  if (loss) say(`node loss: ${JSON.stringify(loss)}`);
  if (values['silent-loss'] && nodes >= 2) await run('docker', ['service', 'update', '--force', 'sandpool_app'], { env: { ...process.env, DOCKER_HOST: labNode(1).dockerHost }, timeoutMs: 600_000 });
  const silent = values['silent-loss'] && nodes >= 2 ? await nodeLoss(url, secret, 'cut') : undefined;
  if (silent) say(`silent node loss: ${JSON.stringify(silent)}`);
  const result = {
    what: 'the lab (npm run lab:up): stack sandpool on a Docker Swarm of network-namespace nodes on one machine',
    command: `flock /tmp/sandpool-heavy.lock npm run bench:lab -- --nodes ${nodes} --replicas ${replicas} --rates ${values.rates} --duration ${durationS}${values['node-loss'] ? ' --node-loss' : ''}${values['silent-loss'] ? ' --silent-loss' : ''}`,
    date: new Date(started).toISOString(),
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    nodes,
    appReplicas: replicas,
    env: POOL_ENV,
    idleMemoryMiB: memory,
    seedFlow: { scenario: 'load-tests/phase2.yml', durationS, steps: rateResults, highestHeldRate: Math.max(0, ...rateResults.filter((r) => r.held).map((r) => r.rate)) },
    ...(loss ? { nodeLoss: loss } : {}),
    ...(silent ? { silentNodeLoss: silent } : {}),
  };
  writeResultFile(outFile, result);
  say(`written ${path.relative(ROOT, outFile)} (${Math.round((Date.now() - started) / 1000)} s)`);
} finally {
  await run('node', ['dist/scripts/lab.js', 'down'], { timeoutMs: 300_000 }).catch((err: unknown) => say(String(err)));
}
