/**
 * docker-compose.scale.yml as a Docker Swarm stack (`npm run swarm:up` /
 * `npm run swarm:down`) on a single-node swarm.
 *
 * The test joins a swarm only when the engine is in none (and then leaves it,
 * with the network that joining made); it refuses to run next to an existing
 * `sandpool` stack, unless the swarm is one an earlier run made and left
 * (MADE_BY_TEST), which it takes down first. Without iptables (this engine) service VIPs and published
 * ports do not route, so the user is a one-shot client service on the
 * stack's own overlay network (test/support/stack-client.ts), read back with
 * `docker service logs`; nothing else reaches the stack.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/types.js';
import { dockerPs, waitFor } from '../support/helpers.js';
import { ROOT, buildImages, containerHosts, containerOfReplica, docker, run, sandboxesOwnedBy } from '../support/stack.js';
import { signOperatorToken } from '../../src/auth/operator-token.js';
import { makeToken } from '../support/tokens.js';
import type { SessionInfo } from '../../src/protocol/events.js';

const STACK = 'sandpool';
/**
 * A node label this test puts on a swarm it made: a swarm carrying it was
 * left by an earlier run that died before its `after` hook (CI's time limit),
 * and is taken down; any other swarm is somebody's, and only joined.
 */
const MADE_BY_TEST = 'sandpool.e2e';
const APP_SERVICE = `${STACK}_app`;
const APP_TASKS = `com.docker.swarm.service.name=${APP_SERVICE}`;

interface ClientLine {
  step: string;
  [key: string]: unknown;
}

/** The client service's JSON lines so far. */
async function clientLines(service: string): Promise<ClientLine[]> {
  const out = await docker(['service', 'logs', '--raw', service]).catch(() => '');
  return out.split('\n').flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as ClientLine;
      return typeof parsed.step === 'string' ? [parsed] : [];
    } catch {
      return [];
    }
  });
}

/** Waits for the client's line `step`; fails as soon as the client says it failed or its task ended without it. */
async function waitForStep(service: string, step: string, timeoutMs: number): Promise<ClientLine> {
  let why = '';
  const found = await waitFor(`the client's "${step}"`, async () => {
    const lines = await clientLines(service);
    const hit = lines.find((l) => l.step === step);
    if (hit) return hit;
    const failed = lines.find((l) => l.step === 'failed');
    const task = (await docker(['service', 'ps', service, '--no-trunc', '--format', '{{.CurrentState}} {{.Error}}'])).trim();
    if (failed || /^(Failed|Complete|Shutdown|Rejected)/.test(task)) {
      why = failed ? String(failed.error) : `its task: ${task}`;
      return 'gave up';
    }
    return undefined;
  }, timeoutMs, 1_000);
  if (found === 'gave up') throw new Error(`the client ended without "${step}": ${why}`);
  return found;
}

describe('the scale stack on Docker Swarm (npm run swarm:up / swarm:down)', () => {
  let env: Record<string, string>;
  let joined = false;
  let gwbridgeBefore = true;
  let deployed = false;
  let removed = false;
  const client = `sandpool-e2e-client-${randomBytes(3).toString('hex')}`;
  /** Every app task container that ran on this node: none of their sandboxes may outlive the stack. */
  const appHosts = new Set<string>();
  const remember = async (): Promise<void> => {
    for (const h of await containerHosts([APP_TASKS])) appHosts.add(h);
  };

  const swarmDown = (): Promise<void> => run('npm', ['run', 'swarm:down'], { timeoutMs: 240_000 }).then(() => undefined, (err: unknown) => console.error(String(err)));
  /** The stack's volumes (its deploy created them), once no container uses them. */
  async function removeVolumes(): Promise<void> {
    await waitFor('the stack\'s volumes to be removable', async () => {
      await docker(['volume', 'rm', '-f', `${STACK}_redis-data`, `${STACK}_redis-snapshots`, `${STACK}_docker-proxy`]);
      return true;
    }, 30_000, 1_000).catch((err: unknown) => console.error(String(err)));
  }

  before(async () => {
    env = await buildImages();
    let state = (await docker(['info', '-f', '{{.Swarm.LocalNodeState}}'])).trim();
    if (state === 'active' && (await docker(['node', 'inspect', 'self', '-f', `{{index .Spec.Labels "${MADE_BY_TEST}"}}`])).trim() === 'true') {
      process.stderr.write('# taking down the swarm an earlier run of this test made and left behind\n');
      await swarmDown();
      await removeVolumes();
      await docker(['swarm', 'leave', '--force']);
      await docker(['network', 'rm', 'docker_gwbridge']).catch(() => undefined);
      state = 'inactive';
    }
    gwbridgeBefore = await docker(['network', 'inspect', 'docker_gwbridge']).then(() => true, () => false);
    if (state === 'inactive') {
      await docker(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
      joined = true;
      await docker(['node', 'update', '--label-add', `${MADE_BY_TEST}=true`, (await docker(['info', '-f', '{{.Swarm.NodeID}}'])).trim()]);
    } else {
      assert.equal(state, 'active', `the engine's swarm is ${state}`);
      const stacks = await docker(['stack', 'ls', '--format', '{{.Name}}']);
      assert.ok(!stacks.split('\n').includes(STACK), `a stack named ${STACK} already runs here: this test will not touch it`);
    }
    deployed = true;
    // The client reaches nginx as tasks.nginx: a name the replicas must answer to (ALLOWED_HOSTS).
    await run('npm', ['run', 'swarm:up'], { env: { ...process.env, POOL_MIN_SIZE: '1', ALLOWED_HOSTS: 'tasks.nginx' }, timeoutMs: 660_000 });
    await remember();
  });

  after(async () => {
    await docker(['service', 'rm', client]).catch(() => undefined);
    if (deployed && !removed) await swarmDown();
    await removeVolumes();
    if (joined) {
      await docker(['swarm', 'leave', '--force']);
      if (!gwbridgeBefore) await docker(['network', 'rm', 'docker_gwbridge']).catch(() => undefined);
    }
  });

  it('serves the seed flow to a client on the stack\'s network; a rolling update of app while the user is connected: it reconnects and keeps working', { timeout: 900_000 }, async () => {
    const token = await makeToken({ sub: 'swarm-user', exp: Math.floor(Date.now() / 1000) + 1800 }, { secret: env.AUTH_SECRET ?? '' });
    await docker([
      'service', 'create', '--detach', '--name', client,
      // The app image's healthcheck is the server's: the client serves nothing.
      '--network', `${STACK}_default`, '--restart-condition', 'none', '--no-healthcheck',
      '--mount', `type=bind,source=${ROOT},target=/repo,readonly`,
      '--env', 'STACK_URL=http://tasks.nginx:80', '--env', `TOKEN=${token}`, '--env', 'USER_ID=swarm-user',
      '--env', `OPERATOR_TOKEN=${await signOperatorToken({ secret: env.OPERATOR_SECRET ?? '', ttlS: 3_600 })}`,
      env.APP_IMAGE ?? '', 'node', '/repo/dist/test/support/stack-client.js',
    ]);

    const cluster = await waitForStep(client, 'cluster', 240_000);
    const initial = cluster.replicas as string[];
    assert.equal(initial.length, 4, 'the cluster view lists 4 replicas');
    // Running tasks only: appHosts also keeps tasks that ended (a start swarm retried), for the cleanup check.
    const runningTasks = (await docker(['ps', '-q', '--filter', `label=${APP_TASKS}`])).split('\n').filter(Boolean).map((id) => id.slice(0, 12));
    assert.deepEqual(initial.map(containerOfReplica).sort(), runningTasks.sort(), 'one replica per app task');
    const seed = await waitForStep(client, 'seed', 120_000);
    assert.match(String(seed.wrote), /Successfully wrote/);
    assert.match(String(seed.listed), /seed\.txt/);
    assert.equal(seed.read, 'seeded in the swarm');

    await waitForStep(client, 'ready-for-update', 30_000);
    await docker(['service', 'update', '--detach', '--force', APP_SERVICE]);
    // One task at a time, the new one first: never fewer than 4 app tasks running.
    let fewest = Infinity;
    await waitFor('the rolling update to complete', async () => {
      await remember();
      const running = (await docker(['ps', '-q', '--filter', `label=${APP_TASKS}`])).split('\n').filter(Boolean).length;
      fewest = Math.min(fewest, running);
      return (await docker(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', APP_SERVICE])).trim() === 'completed';
    }, 600_000, 1_000);
    assert.ok(fewest >= 4, `only ${fewest} app tasks ran at one point of the update`);

    const done = await waitForStep(client, 'done', 300_000);
    const sessions = done.sessions as SessionInfo[];
    assert.ok(Number(done.disconnects) >= 1, 'the user was never disconnected: its replica was not replaced');
    assert.ok(sessions.length >= 2, 'the user did not reconnect');
    assert.ok(sessions.every((s) => s.sessionId === sessions[0]?.sessionId), 'the session changed');
    const afterUpdate = done.after as { wrote: string; listed: string; read: string };
    assert.match(afterUpdate.wrote, /Successfully wrote/);
    assert.match(afterUpdate.listed, /after\.txt/);
    assert.equal(afterUpdate.read, 'after the update');
    assert.ok((done.replicas as string[]).every((r) => !initial.includes(r)), 'a replica survived the update');
  });

  it('a task killed with SIGKILL loses its sandboxes to the survivors far sooner than the grace (its container, found by hostname through the socket proxy, is not running)', { timeout: 240_000 }, async () => {
    const replicas = (await docker(['ps', '--format', '{{.Label "com.docker.swarm.task.id"}} {{.ID}}', '--filter', `label=${APP_TASKS}`])).split('\n').filter(Boolean);
    const victim = replicas[0]?.split(' ')[1] ?? '';
    assert.ok(victim, 'no app task runs');
    const host = victim.slice(0, 12);
    const replica = `${host}-3000`;
    await waitFor('the victim to hold a sandbox', async () => (await dockerPs({ [LABELS.replica]: replica })).length >= 1, 60_000, 500);
    await docker(['kill', '-s', 'KILL', victim]);
    // Without the owner lookup the removal would wait for DEAD_REPLICA_GRACE_MS (300 s):
    // within 2 min shows the lookup worked, with room for a busy machine.
    await waitFor('the killed task\'s sandboxes to be removed (far sooner than the 5 min grace)', async () => (await dockerPs({ [LABELS.replica]: replica })).length === 0, 120_000, 500);
  });

  it('npm run swarm:down removes the stack and leaves no sandbox behind', { timeout: 300_000 }, async () => {
    await remember();
    // The client is no part of the stack, but uses its network.
    await docker(['service', 'rm', client]).catch(() => undefined);
    await run('npm', ['run', 'swarm:down'], { timeoutMs: 240_000 });
    removed = true;
    assert.deepEqual(await containerHosts([`com.docker.stack.namespace=${STACK}`]), []);
    assert.deepEqual(await sandboxesOwnedBy(appHosts), [], 'sandboxes of the stack\'s app tasks left behind');
  });
});
