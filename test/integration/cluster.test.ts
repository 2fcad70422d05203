import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/types.js';
import { converse } from '../support/conversation.js';
import { startCluster, type ClusterState, type RunningCluster } from '../support/cluster.js';
import { dockerPs, emitAck, execFileAsync, nextEvent, startRedis, userSockets, waitFor, type RedisServer, type UserSockets } from '../support/helpers.js';
import { sleep } from '../../src/util/async.js';

const users = userSockets();
const connect = (url: string, userId: string, reconnection = false): ReturnType<UserSockets['connect']> => users.connect(url, userId, { reconnection });
const killed = new Set<string>();

describe('replicas behind nginx with Redis (npm run cluster)', () => {
  let cluster: RunningCluster;
  let state: ClusterState;
  let replacementRedis: RedisServer | undefined;

  before(async () => {
    cluster = await startCluster(3, {
      POOL_MIN_SIZE: '1',
      HEARTBEAT_INTERVAL_MS: '500',
      REQUEST_SLOT_TTL_MS: '3000',
      // A third of it is the grace for requests in flight: long enough to watch a drain.
      SHUTDOWN_TIMEOUT_MS: '9000',
      // Snapshots off: the notices of a store-less deployment (workspaces.test.ts covers the Redis store after kill -9).
      WORKSPACE_STORE: 'none',
      // Quotas let calls through while Redis is down: the Redis restart below shows a request finishing
      // during the outage. The default (closed: such a call is refused with INTERNAL) is quotas.test.ts's.
      QUOTA_FAIL_MODE: 'open',
    });
    state = cluster.state;
  });

  after(async () => {
    users.closeAll();
    await cluster.stop();
    await replacementRedis?.stop();
    for (const r of state.replicas) assert.deepEqual(await dockerPs({ [LABELS.replica]: r.id }), [], `containers of ${r.id} left behind`);
  });

  it('nginx keys its rate limit on the real client: a flood from 127.0.0.2 leaves 127.0.0.3\'s bucket untouched', async () => {
    const { port } = new URL(state.url);
    // fetch cannot pick a source address; node:http can.
    const from = (localAddress: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/status', localAddress, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    // 30 r/s with a burst of 40 (the template's API zone) per address.
    const [flood, other] = await Promise.all([Promise.all(Array.from({ length: 150 }, () => from('127.0.0.2'))), Promise.all(Array.from({ length: 20 }, () => from('127.0.0.3')))]);
    const refused = flood.filter((s) => s === 429).length;
    assert.ok(refused >= 50, `the flooding address was refused ${refused} of 150 times`);
    assert.deepEqual(other.filter((s) => s !== 200), [], 'the other address shared the flooder\'s bucket');
  });

  it('spreads 20 users over the replicas; all sockets of one user reach the same replica', async () => {
    const placements = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const { session } = await connect(state.url, `spread-${i}`);
      placements.set(session.replica, (placements.get(session.replica) ?? 0) + 1);
      // A second tab of the same user lands on the same replica.
      const again = await connect(state.url, `spread-${i}`);
      assert.equal(again.session.replica, session.replica);
      assert.equal(again.session.sessionId, session.sessionId);
    }
    assert.deepEqual([...placements.keys()].sort(), state.replicas.map((r) => r.id).sort(), JSON.stringify([...placements]));
    for (const n of placements.values()) assert.ok(n >= 2, `lopsided spread: ${JSON.stringify([...placements])}`);
  });

  // Twin in the fast tier: chat-service "routes an approval to the replica running that request" (a recording bus). Here: the Redis adapter between two replicas.
  it('resolves an approval sent on the other replica', async () => {
    const { socket, session } = await connect(state.url, 'cross-approver');
    const other = state.replicas.find((r) => r.id !== session.replica);
    assert.ok(other);
    const direct = await connect(other.url, 'cross-approver');
    assert.equal(direct.session.replica, other.id);
    const { contents, done } = await converse(socket, 'list files in /workspace', 30_000, direct.socket);
    assert.equal(contents.length, 1);
    assert.match(done, /list_directory/);

    // A tab that connects to the other replica while a call waits is told about it (shared pending store).
    const ack = await emitAck(socket, 'message', 'tree /workspace');
    const req = await nextEvent(socket, 'tool:request', (r) => r.requestId === ack.requestId);
    const late = await connect(other.url, 'cross-approver');
    assert.deepEqual(
      late.session.pending.map((p) => p.callId),
      [req.callId],
    );
    assert.equal((await emitAck(late.socket, 'tool:approval', { callId: req.callId, approved: false })).ok, true);
    // Someone else's call id is unknown on every replica.
    const stranger = await connect(other.url, 'cross-stranger');
    assert.equal((await emitAck(stranger.socket, 'tool:approval', { callId: req.callId, approved: true })).error?.code, 'UNKNOWN_CALL');
  });

  // Twin in the fast tier: chat-service "routes a message to the live replica that holds the user's sandbox". Here: the Redis adapter and shared ownership.
  it('runs a message sent on replica B where the user\'s sandbox lives (replica A): one workspace', async () => {
    const a = state.replicas[0]!;
    const b = state.replicas[1]!;
    const onA = await connect(a.url, 'one-workspace');
    const wrote = await converse(onA.socket, 'write "kept on A" to /workspace/where.txt');
    assert.match(wrote.contents[0] ?? '', /Successfully wrote/);
    const activeOnB = async (): Promise<number> => ((await (await fetch(`${b.url}/stats/pool`)).json()) as { active: number }).active;
    const before = await activeOnB();
    const onB = await connect(b.url, 'one-workspace');
    const read = await converse(onB.socket, 'read /workspace/where.txt');
    assert.equal(read.contents[0], 'kept on A');
    assert.equal(await activeOnB(), before, 'replica B leased a second sandbox');
  });

  it('holds the per-user limit across replicas (5 on A + 1 on B is refused)', async () => {
    const a = await connect(state.replicas[0]!.url, 'limit-both');
    const b = await connect(state.replicas[1]!.url, 'limit-both');
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await emitAck(a.socket, 'message', `read /workspace/n${i}.txt`));
    assert.ok(acks.every((x) => x.ok), JSON.stringify(acks));
    const sixth = await emitAck(b.socket, 'message', 'help');
    assert.equal(sixth.error?.code, 'TOO_MANY_REQUESTS');
    // Deny them all (from B: cross-replica) so the user ends clean.
    for (const ack of acks) {
      const req = await nextEvent(b.socket, 'tool:request', (r) => r.requestId === ack.requestId);
      assert.equal((await emitAck(b.socket, 'tool:approval', { callId: req.callId, approved: false })).ok, true);
    }
    await waitFor('slots freed', async () => (await emitAck(b.socket, 'message', 'help')).ok);
  });

  it('/stats/pool?scope=cluster lists every replica with correct totals', async () => {
    const body = (await (await fetch(`${state.url}/stats/pool?scope=cluster`)).json()) as {
      replicas: Array<{ replica: string; idle: number; active: number; total: number }>;
      totals: { replicas: number; idle: number; active: number; total: number };
    };
    assert.deepEqual(body.replicas.map((r) => r.replica).sort(), state.replicas.map((r) => r.id).sort());
    assert.equal(body.totals.replicas, state.replicas.length);
    for (const f of ['idle', 'active', 'total'] as const) assert.equal(body.totals[f], body.replicas.reduce((n, r) => n + r[f], 0));
    // Each entry is that replica's own /stats/pool (others' as of their last heartbeat, so compare at rest).
    const fields = ['idle', 'active', 'total', 'maxPoolSize', 'minPoolSize', 'pending'] as const;
    let mismatch = '';
    await waitFor('the cluster view to match every replica\'s own stats', async () => {
      const cluster = (await (await fetch(`${state.url}/stats/pool?scope=cluster`)).json()) as { replicas: Array<Record<string, unknown>> };
      for (const r of state.replicas) {
        const own = (await (await fetch(`${r.url}/stats/pool`)).json()) as Record<string, unknown>;
        const seen = cluster.replicas.find((x) => x.replica === r.id) ?? {};
        const diff = fields.filter((f) => seen[f] !== own[f]);
        if (diff.length > 0) {
          mismatch = `${r.id}: ${diff.map((f) => `${f} ${String(seen[f])} vs ${String(own[f])}`).join(', ')}`;
          return false;
        }
      }
      return true;
    }, 10_000, 300).catch((err: unknown) => assert.fail(`${String(err)}; last mismatch ${mismatch}`));
    // nginx keeps operational endpoints internal but serves them to loopback; /health is never limited.
    assert.equal((await fetch(`${state.url}/metrics`)).status, 200);
    const burst = await Promise.all(Array.from({ length: 60 }, () => fetch(`${state.url}/health`).then((r) => r.status)));
    assert.ok(burst.every((s) => s === 200), JSON.stringify(burst));
  });

  it('rate-limits the HTTP API at nginx', async () => {
    const statuses = await Promise.all(Array.from({ length: 120 }, () => fetch(`${state.url}/stats/pool`).then((r) => r.status)));
    assert.ok(statuses.includes(429), 'no 429 from a burst of 120');
    assert.ok(statuses.includes(200));
  });

  it('survives a Redis restart: requests finishing during the outage, replicas reconnect, the adapter resubscribes, messages flow', async () => {
    const port = Number(new URL(state.redisUrl).port);
    // A request accepted before the outage and finishing during it: its events,
    // history and slot release all hit a Redis that is not there.
    const during = await connect(state.url, 'redis-outage');
    await converse(during.socket, 'write "x" to /workspace/x.txt');
    const ack = await emitAck(during.socket, 'message', 'read /workspace/x.txt');
    assert.equal(ack.ok, true);
    const asked = await nextEvent(during.socket, 'tool:request', (r) => r.requestId === ack.requestId);
    const ended = Promise.race([
      nextEvent(during.socket, 'message:done', (d) => d.requestId === ack.requestId, 30_000).then((d) => `done: ${d.text}`),
      nextEvent(during.socket, 'request:error', (e) => e.requestId === ack.requestId, 30_000).then((e) => `error: ${e.error.code}`),
    ]);
    process.kill(state.redisPid, 'SIGKILL');
    const home = state.replicas.find((r) => r.id === during.session.replica)!;
    await waitFor('the replica to notice Redis is gone', async () => (await fetch(`${home.url}/ready`)).status === 503, 15_000);
    assert.equal((await emitAck(during.socket, 'tool:approval', { callId: asked.callId, approved: true })).ok, true);
    assert.match(await ended, /^done: [\s\S]*\bx\b/, 'the answer is delivered although its history cannot be saved');
    // A new message meanwhile is refused with a clear code, not left hanging.
    const refused = await emitAck(during.socket, 'message', 'help');
    assert.equal(refused.error?.code, 'INTERNAL', JSON.stringify(refused));
    assert.match(refused.error?.message ?? '', /shared state \(Redis\) is unavailable/);
    // Long enough for every Redis command of that request to exhaust its retries.
    await sleep(3_000);
    for (const r of state.replicas) {
      if (!killed.has(r.id)) assert.doesNotThrow(() => process.kill(r.pid, 0), `replica ${r.id} died during the Redis outage`);
    }
    replacementRedis = await startRedis(port);
    for (const r of state.replicas) await waitFor(`${r.id} ready again`, async () => (await fetch(`${r.url}/ready`)).ok, 20_000);
    const { socket, session } = await connect(state.url, 'after-redis');
    const other = state.replicas.find((r) => r.id !== session.replica)!;
    const direct = await connect(other.url, 'after-redis');
    // The cross-replica approval travels over the adapter's (re)subscribed channels.
    const { done } = await converse(socket, 'list files in /workspace', 30_000, direct.socket);
    assert.match(done, /list_directory/);
  });

  it('kill -9 of a replica: its users reconnect to the survivor with their history; slots and containers are freed', async () => {
    const user = 'survivor-user';
    const { socket, session } = await connect(state.url, user, true);
    const victim = state.replicas.find((r) => r.id === session.replica)!;
    await converse(socket, 'write "before the crash" to /workspace/crash.txt');
    assert.ok((await dockerPs({ [LABELS.replica]: victim.id })).length >= 1);
    for (let i = 0; i < 5; i++) assert.equal((await emitAck(socket, 'message', 'read /workspace/crash.txt')).ok, true);

    process.kill(victim.pid, 'SIGKILL');
    const back = await nextEvent(socket, 'session', () => true, 30_000);
    assert.notEqual(back.replica, victim.id, 'reconnected through nginx to a survivor');
    killed.add(victim.id);
    assert.equal(back.sessionId, session.sessionId, 'same session');

    // The dead replica's containers are removed by the survivor within the bound.
    await waitFor('the victim\'s containers to be removed', async () => (await dockerPs({ [LABELS.replica]: victim.id })).length === 0, 20_000);
    // Its in-flight slots expire (REQUEST_SLOT_TTL_MS=3000): new messages are accepted.
    await waitFor('slots held by the dead replica to expire', async () => {
      const ack = await emitAck(socket, 'message', 'help');
      return ack.ok;
    }, 20_000, 500);
    // The history is intact in Redis, and the user is told the old sandbox is gone.
    const { stdout } = await execFileAsync('redis-cli', ['-p', String(new URL(state.redisUrl).port), 'lrange', `sandpool:history:${user}`, '0', '-1']);
    assert.match(stdout, /before the crash/);
    const read = await converse(socket, 'read /workspace/crash.txt');
    assert.match(read.contents[0] ?? '', /previous sandbox stopped/);
    assert.match(read.contents[0] ?? '', /ENOENT|no such file/i);
  });

  it('SIGTERM (rolling restart): /ready 503, new users go to a survivor, in-flight requests fail with a code, sockets move, containers go', async () => {
    const { socket, session } = await connect(state.url, 'rolling-user', true);
    const leaving = state.replicas.find((r) => r.id === session.replica)!;
    assert.ok(!killed.has(leaving.id));
    // A user id that nginx hashes to the leaving replica, for a connection during the drain.
    let newcomer = '';
    for (let i = 0; i < 60 && !newcomer; i++) {
      const probe = await connect(state.url, `rolling-newcomer-${i}`);
      if (probe.session.replica === leaving.id) newcomer = `rolling-newcomer-${i}`;
      probe.socket.close();
    }
    assert.ok(newcomer, 'no user id hashed to the leaving replica');
    await converse(socket, 'write "x" to /workspace/x.txt');
    const ack = await emitAck(socket, 'message', 'read /workspace/x.txt');
    await nextEvent(socket, 'tool:request', (r) => r.requestId === ack.requestId);
    const failed = nextEvent(socket, 'request:error', (e) => e.requestId === ack.requestId, 30_000);

    process.kill(leaving.pid, 'SIGTERM');
    // Draining (the request in flight holds it open for a few seconds): not ready, and a
    // new user who would hash there is served by a survivor from the first handshake.
    await waitFor('the leaving replica to report not ready', async () => (await fetch(`${leaving.url}/ready`)).status === 503, 3_000, 50);
    const arriving = await connect(state.url, newcomer);
    assert.notEqual(arriving.session.replica, leaving.id, 'a new user was accepted by a draining replica');
    assert.doesNotThrow(() => process.kill(leaving.pid, 0), 'the replica was still draining');
    assert.equal((await failed).error.code, 'SHUTTING_DOWN');
    const back = await nextEvent(socket, 'session', () => true, 30_000);
    assert.notEqual(back.replica, leaving.id);
    assert.equal(back.sessionId, session.sessionId);
    await waitFor('the leaving replica\'s containers to be gone', async () => (await dockerPs({ [LABELS.replica]: leaving.id })).length === 0, 20_000);
    // New users keep being served through nginx.
    const fresh = await connect(state.url, 'after-rolling');
    assert.notEqual(fresh.session.replica, leaving.id);
    assert.match((await converse(fresh.socket, 'list files in /workspace')).done, /list_directory/);
  });
});

describe('compose files', () => {
  it('docker-compose config accepts both compose files; secrets are Docker secrets, Redis is locked down', async () => {
    // Not the checkout's .env (`npm run images` writes one): only this environment.
    const noEnvFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'sandpool-compose-')), 'empty.env');
    writeFileSync(noEnvFile, '');
    const compose = async (file: string): Promise<string> => (await execFileAsync('docker-compose', ['--env-file', noEnvFile, '-f', file, 'config'], { env: process.env })).stdout;
    for (const file of ['docker-compose.yml', 'docker-compose.scale.yml']) {
      const stdout = await compose(file);
      assert.match(stdout, /services:/);
      // The app reads its secrets from files; none is an environment variable of a service.
      assert.match(stdout, /AUTH_SECRET_FILE: \/run\/secrets\/auth_secret/);
      assert.match(stdout, /OPERATOR_SECRET_FILE: \/run\/secrets\/operator_secret/);
      assert.doesNotMatch(stdout, /^\s+(AUTH_SECRET|OPERATOR_SECRET|REDIS_PASSWORD):/m, `${file} puts a secret in an environment`);
      assert.match(stdout, /file: .*\.secrets\/auth_secret/);
    }
    const stdout = await compose('docker-compose.scale.yml');
    for (const needle of ['redis', 'redis-snapshots', 'nginx', 'replicas: 4', '/var/run/docker.sock', 'ENABLE_CONTAINER_POOL', 'POOL_MIN_SIZE', 'POOL_MAX_SIZE', 'POOL_IDLE_TIMEOUT_MS', 'REDIS_URL', 'WORKSPACE_REDIS_URL', 'REDIS_PASSWORD_FILE']) {
      assert.ok(stdout.includes(needle), `docker-compose.scale.yml lacks ${needle}`);
    }
    // Both Redis: a password (redis.conf, a secret), protected mode; the state never evicted, the snapshots evicted.
    assert.equal(stdout.match(/- \/run\/secrets\/redis_conf\n\s+- --protected-mode\n\s+- "yes"/g)?.length, 2, stdout);
    assert.match(stdout, /- --maxmemory-policy\n\s+- noeviction/);
    assert.match(stdout, /- --maxmemory-policy\n\s+- allkeys-lru/);
    assert.doesNotMatch(stdout, /--protected-mode\n\s+- "?no"?\n/);
    assert.doesNotMatch(stdout, /SANDPOOL_INTERNAL_ALLOW/);
  });
});
