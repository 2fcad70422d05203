import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../scripts/lib/redis-server.js';
import { connectRedis } from '../../src/cluster/redis-clients.js';
import { createLogger } from '../../src/logger.js';
import { createRedisState } from '../../src/state/redis-state.js';
import { freePort } from '../../src/util/free-port.js';
import { startRedis, testLogger, type RedisServer } from '../support/helpers.js';
import { replicaRecord } from '../support/replica-record.js';
import { sharedStateContract } from '../support/state-contract.js';
import { snapshot, workspaceStoreContract } from '../support/workspace-store-contract.js';
import { createRedisWorkspaceStore } from '../../src/workspace/redis-store.js';
import { sleep } from '../../src/util/async.js';

let redisServer: RedisServer | undefined;
const clients: Redis[] = [];
sharedStateContract('redis', async (o) => {
  redisServer ??= await startRedis();
  const redis = new Redis(redisServer.url);
  clients.push(redis);
  return createRedisState({ redis, ...o, prefix: `t${randomBytes(3).toString('hex')}:`, logger: testLogger() });
});

describe('Redis state: the event budget across replicas', () => {
  it('is one budget per user whichever replica the sockets reach (?uid= picks the replica, not the budget)', async () => {
    redisServer ??= await startRedis();
    const a = new Redis(redisServer.url);
    const b = new Redis(redisServer.url);
    clients.push(a, b);
    const prefix = `e${randomBytes(3).toString('hex')}:`;
    const replicaA = createRedisState({ redis: a, maxRequestsPerUser: 5, maxSocketsPerUser: 10, eventsPerSecond: 5, prefix, logger: testLogger() });
    const replicaB = createRedisState({ redis: b, maxRequestsPerUser: 5, maxSocketsPerUser: 10, eventsPerSecond: 5, prefix, logger: testLogger() });
    const takes = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? replicaA : replicaB).events.take('spreader')));
    assert.equal(takes.filter(Boolean).length, 10, 'the burst, taken half on each replica');
    assert.equal(await replicaA.events.take('spreader'), false);
    assert.equal(await replicaB.events.take('spreader'), false, 'the second replica does not start a fresh budget');
    assert.ok((await a.pttl(`${prefix}events:spreader`)) > 0, 'the bucket expires by itself');
    await replicaA.close();
    await replicaB.close();
  });

  it('stands in with this replica\'s own buckets while Redis does not answer', async () => {
    const port = await freePort();
    const gone = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    clients.push(gone);
    const state = createRedisState({ redis: gone, maxRequestsPerUser: 5, maxSocketsPerUser: 10, eventsPerSecond: 5, prefix: 'x:', logger: testLogger() });
    const takes = await Promise.all(Array.from({ length: 12 }, () => state.events.take('u')));
    assert.equal(takes.filter(Boolean).length, 10, 'still bounded: the local burst');
    await state.close();
  });
});

describe('Redis state: a dead replica\'s slots', () => {
  it('expire on their own when nobody renews them', async () => {
    redisServer ??= await startRedis();
    const a = new Redis(redisServer.url);
    const b = new Redis(redisServer.url);
    clients.push(b);
    const prefix = `d${randomBytes(3).toString('hex')}:`;
    const replicaA = createRedisState({ redis: a, maxRequestsPerUser: 2, maxSocketsPerUser: 10, slotTtlMs: 500, prefix, logger: testLogger() });
    const replicaB = createRedisState({ redis: b, maxRequestsPerUser: 2, maxSocketsPerUser: 10, slotTtlMs: 500, prefix, logger: testLogger() });
    assert.equal(await replicaA.limiter.tryAcquire('u', 'a1'), true);
    assert.equal(await replicaA.limiter.tryAcquire('u', 'a2'), true);
    assert.equal(await replicaB.limiter.tryAcquire('u', 'b1'), false, 'the limit holds across replicas');
    // Replica A dies: no more renewals.
    await replicaA.close();
    a.disconnect();
    await sleep(700);
    assert.equal(await replicaB.limiter.tryAcquire('u', 'b1'), true);
    await replicaB.close();
  });
});

describe('Redis state: a Redis restart without persistence', () => {
  it('puts back the slots of requests still running, so the limit keeps holding', async () => {
    redisServer ??= await startRedis();
    const redis = new Redis(redisServer.url);
    const admin = new Redis(redisServer.url);
    clients.push(redis, admin);
    const prefix = `f${randomBytes(3).toString('hex')}:`;
    const replica = createRedisState({ redis, maxRequestsPerUser: 2, maxSocketsPerUser: 10, slotTtlMs: 600, prefix, logger: testLogger() });
    assert.equal(await replica.limiter.tryAcquire('u', 'a1'), true);
    assert.equal(await replica.limiter.tryAcquire('u', 'a2'), true);
    // What a restarted Redis without persistence looks like: the key is simply gone.
    await admin.del(`${prefix}inflight:u`);
    assert.equal(await replica.limiter.count('u'), 0);
    await sleep(500);
    assert.equal(await replica.limiter.count('u'), 2, 'the renewal put both slots back');
    assert.equal(await replica.limiter.tryAcquire('u', 'a3'), false);
    await replica.limiter.release('u', 'a1');
    await sleep(500);
    assert.equal(await replica.limiter.count('u'), 1, 'a released slot is not put back');
    await replica.close();
  });
});

describe('Redis state: replica records other replicas wrote', () => {
  it('are read validated: one of another shape is skipped and logged once, never trusted', async () => {
    redisServer ??= await startRedis();
    const redis = new Redis(redisServer.url);
    clients.push(redis);
    const prefix = `r${randomBytes(3).toString('hex')}:`;
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', destination: new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }) });
    const state = createRedisState({ redis, maxRequestsPerUser: 2, maxSocketsPerUser: 10, prefix, logger });
    await state.replicas.heartbeat(replicaRecord('good', { sessions: 3 }), 60_000);
    // An older replica without sessions, a record under another replica's name, and no JSON at all.
    const { sessions: _omitted, ...withoutSessions } = replicaRecord('old');
    await redis.multi().set(`${prefix}replica:old`, JSON.stringify(withoutSessions)).hset(`${prefix}replicas-seen`, 'old', String(Date.now())).exec();
    await redis.multi().set(`${prefix}replica:posing`, JSON.stringify(replicaRecord('good'))).hset(`${prefix}replicas-seen`, 'posing', String(Date.now())).exec();
    await redis.multi().set(`${prefix}replica:torn`, '{"replica":').hset(`${prefix}replicas-seen`, 'torn', String(Date.now())).exec();
    for (let read = 0; read < 3; read++) assert.deepEqual((await state.replicas.live()).map((r) => [r.replica, r.sessions]), [['good', 3]]);
    const warnings = lines.map((l) => JSON.parse(l) as { replica: string; problem: string });
    assert.deepEqual(warnings.map((w) => w.replica).sort(), ['old', 'posing', 'torn'], 'each logged once');
    assert.match(warnings.find((w) => w.replica === 'old')?.problem ?? '', /sessions/);
    assert.equal(await state.replicas.isLive('old'), true, 'liveness is the heartbeat key, not the record: a replica of another version is not taken for dead');
    await state.close();
  });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await redisServer?.stop();
});

workspaceStoreContract('redis', async () => {
  redisServer ??= await startRedis();
  const redis = new Redis(redisServer.url);
  clients.push(redis);
  const prefix = `w${randomBytes(3).toString('hex')}:`;
  return {
    store: createRedisWorkspaceStore({ redis, prefix, ttlMs: 60_000 }),
    corrupt: async (userId) => {
      await redis.hset(`${prefix}workspace:${userId}`, 'snapshot', Buffer.from('SPWS0001 torn'));
    },
  };
});

describe('Redis workspace store', () => {
  it('keeps a snapshot for WORKSPACE_TTL_S after its last save', async () => {
    redisServer ??= await startRedis();
    const redis = new Redis(redisServer.url);
    clients.push(redis);
    const store = createRedisWorkspaceStore({ redis, prefix: 'ttl:', ttlMs: 5_000 });
    await store.save('u', snapshot(1));
    const ttl = await redis.pttl('ttl:workspace:u');
    assert.ok(ttl > 4_000 && ttl <= 5_000, String(ttl));
  });
});

describe('Redis connections of a replica', () => {
  it('fail a command whose reply never comes (a stalled Redis) instead of leaving it pending, and work again after', { timeout: 20_000 }, async () => {
    const server = await startRedisServer(await freePort());
    const pid = server.process.pid ?? 0;
    const redis = await connectRedis({ url: server.url, password: undefined, logger: testLogger(), connectTimeoutMs: 10_000, commandTimeoutMs: 300 });
    try {
      assert.equal(await redis.command.ping(), 'PONG');
      process.kill(pid, 'SIGSTOP');
      await assert.rejects(redis.command.get('k'), /timed out/i);
      process.kill(pid, 'SIGCONT');
      assert.equal(await redis.command.ping(), 'PONG');
    } finally {
      process.kill(pid, 'SIGCONT');
      await redis.quit(2_000);
      await server.process.stop('SIGKILL', 5_000);
    }
  });
});
