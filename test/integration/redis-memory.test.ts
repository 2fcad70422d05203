/**
 * Redis full of snapshots: the limits must still hold. The stacks run two
 * Redis: the state every limit rests on under noeviction, the snapshots in
 * their own Redis that evicts (allkeys-lru). The first case is the layout
 * they replaced (one Redis, volatile-lru): it shows what is at stake.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisState } from '../../src/state/redis-state.js';
import { createRedisWorkspaceStore } from '../../src/workspace/redis-store.js';
import { createWorkspaces } from '../../src/workspace/workspaces.js';
import { startRedis, testLogger, type RedisServer } from '../support/helpers.js';

const servers: RedisServer[] = [];
const clients: Redis[] = [];
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.stop();
});

/** A Redis with `maxmemory` and an eviction policy, as a stack runs one. */
async function redisWith(policy: string, maxmemory = '4mb'): Promise<Redis> {
  const server = await startRedis();
  servers.push(server);
  const redis = new Redis(server.url);
  clients.push(redis);
  await redis.config('SET', 'maxmemory', maxmemory);
  await redis.config('SET', 'maxmemory-policy', policy);
  await redis.config('SET', 'maxmemory-samples', '10');
  return redis;
}

/** 60 snapshots of 256 KiB of incompressible bytes (15 MiB) for 60 users: well past the limit. */
async function fillWithSnapshots(redis: Redis): Promise<{ saved: number; failed: number }> {
  const store = createRedisWorkspaceStore({ redis, prefix: 'sandpool:', ttlMs: 3_600_000 });
  let saved = 0;
  let failed = 0;
  for (let i = 0; i < 60; i++) {
    const archive = randomBytes(256 * 1024);
    try {
      await store.save(`filler-${i}`, { version: Date.now(), takenAtMs: Date.now(), files: 1, sizeBytes: archive.length, archive });
      saved++;
    } catch {
      failed++;
    }
  }
  return { saved, failed };
}

/** A user at MAX_REQUESTS_PER_USER (3) in flight, the slots taken before the snapshots arrive. */
async function userAtTheLimit(redis: Redis): Promise<ReturnType<typeof createRedisState>> {
  const state = createRedisState({ redis, maxRequestsPerUser: 3, maxSocketsPerUser: 10, prefix: 'sandpool:', slotTtlMs: 600_000, logger: testLogger() });
  for (const r of ['r1', 'r2', 'r3']) assert.equal(await state.limiter.tryAcquire('limited', r), true);
  assert.equal(await state.limiter.tryAcquire('limited', 'r4'), false);
  return state;
}

describe('Redis filled with snapshots past its memory limit', () => {
  it('one Redis that evicts (volatile-lru, the old stacks): a request slot is evicted and the limit silently lifts', { timeout: 60_000 }, async () => {
    const redis = await redisWith('volatile-lru');
    const state = await userAtTheLimit(redis);
    await fillWithSnapshots(redis);
    assert.ok(Number(/evicted_keys:(\d+)/.exec(await redis.info('stats'))?.[1]) > 0, 'nothing was evicted');
    assert.equal(await state.limiter.tryAcquire('limited', 'r4'), true, 'the limit held: this layout is not the danger it was thought');
    await state.close();
  });

  it('the stacks\' two Redis (state noeviction, snapshots allkeys-lru): old snapshots go, every limit holds', { timeout: 60_000 }, async () => {
    const stateRedis = await redisWith('noeviction');
    const snapshotRedis = await redisWith('allkeys-lru');
    const state = await userAtTheLimit(stateRedis);
    const { saved, failed } = await fillWithSnapshots(snapshotRedis);
    assert.deepEqual({ saved, failed }, { saved: 60, failed: 0 }, 'the snapshot Redis makes room by evicting');
    assert.ok(Number(/evicted_keys:(\d+)/.exec(await snapshotRedis.info('stats'))?.[1]) > 0, 'the snapshot Redis never had to evict');
    assert.equal(await state.limiter.tryAcquire('limited', 'r4'), false, 'the limit lifted');
    assert.equal(await state.limiter.count('limited'), 3);
    await state.close();
  });

  it('one Redis under noeviction: a snapshot past the limit is refused and reported, the limits hold', { timeout: 60_000 }, async () => {
    const redis = await redisWith('noeviction');
    const state = await userAtTheLimit(redis);
    const { failed } = await fillWithSnapshots(redis);
    assert.ok(failed > 0, 'every snapshot fit: the test did not reach the limit');
    assert.equal(await state.limiter.tryAcquire('limited', 'r4'), false, 'the limit lifted');
    // What a user sees of it: the save fails with a notice, their files stay in the sandbox.
    const store = createRedisWorkspaceStore({ redis, prefix: 'sandpool:', ttlMs: 3_600_000 });
    const workspaces = createWorkspaces({ store, maxBytes: 1_048_576, timeoutMs: 5_000, logger: testLogger(), observer: { restored: () => undefined, saved: () => undefined } });
    const archive = randomBytes(256 * 1024);
    const sandbox = { id: 'sbx', workspace: { snapshot: async () => ({ archive, files: 1, sizeBytes: archive.length }), restore: async () => ({ files: 0, sizeBytes: 0 }) } };
    workspaces.markChanged(sandbox);
    assert.deepEqual(await workspaces.save('late-user', sandbox), { kind: 'failed', reason: 'the snapshot could not be stored right now' });
    await state.close();
  });
});
