import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHeartbeat } from '../../src/cluster/heartbeat.js';
import { createLiveness } from '../../src/cluster/liveness.js';
import { createDeadReplicaReaper } from '../../src/orphans/dead-replica-reaper.js';
import { createMemoryState } from '../../src/state/memory-state.js';
import { testLogger } from '../support/helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('liveness, heartbeat and the dead-replica reaper (memory state)', () => {
  it('a beat publishes the record, renews ownership and refreshes the view; leaving removes the replica', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const liveness = createLiveness({ registry: state.replicas, self: 'a' });
    await state.owners.claim('alice', 'a', 100);
    const beat = createHeartbeat({ state, liveness, startedAtMs: Date.now(), intervalMs: 50, snapshot: () => ({ idle: 3 }), leasedUsers: () => ['alice'], ownerTtlMs: 100, logger: testLogger() });
    await beat.start();
    assert.equal((await liveness.live()).find((r) => r.replica === 'a')?.idle, 3);
    await sleep(250);
    assert.equal(await state.owners.owner('alice'), 'a', 'ownership renewed by the beats');
    await beat.stop();
    assert.deepEqual(await liveness.live(), []);
    await state.close();
  });

  it('looks up a replica missing from the view now, and assumes alive when shared state cannot answer', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const liveness = createLiveness({ registry: state.replicas, self: 'a' });
    assert.equal(await liveness.isLive('a'), true);
    assert.equal(await liveness.isLive('b'), false);
    await state.replicas.heartbeat({ replica: 'b', pid: 2, startedAtMs: 0, seenAtMs: Date.now() }, 1000);
    assert.equal(await liveness.isLive('b'), true, 'started after the last beat: alive');
    const broken = createLiveness({ registry: { ...state.replicas, isLive: () => Promise.reject(new Error('Redis down')) }, self: 'a' });
    assert.equal(await broken.isLive('c'), true);
    await state.close();
  });

  it('the reaper removes a dead replica\'s containers once, outside any beat, and never its own', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    await state.replicas.heartbeat({ replica: 'b', pid: 2, startedAtMs: 0, seenAtMs: Date.now() }, 30);
    await state.replicas.heartbeat({ replica: 'a', pid: 1, startedAtMs: 0, seenAtMs: Date.now() }, 30);
    const removed: string[] = [];
    const reaper = createDeadReplicaReaper({ registry: state.replicas, self: 'a', intervalMs: 20, removeReplica: async (id) => void removed.push(id), logger: testLogger() });
    await sleep(60);
    await reaper.reap();
    await reaper.reap();
    assert.deepEqual(removed, ['b'], 'b once; a (itself) never');
    assert.deepEqual(await state.replicas.dead(), ['a']);
    await reaper.stop();
    await state.close();
  });
});
