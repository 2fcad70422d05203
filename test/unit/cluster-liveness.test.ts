import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHeartbeat } from '../../src/cluster/heartbeat.js';
import { createLiveness } from '../../src/cluster/liveness.js';
import { createDeadReplicaReaper } from '../../src/orphans/dead-replica-reaper.js';
import { createMemoryState } from '../../src/state/memory-state.js';
import type { ReplicaRecord } from '../../src/cluster/replica-record.js';
import { sleep } from '../../src/util/async.js';
import { testLogger } from '../support/helpers.js';
import { replicaNumbers, replicaRecord } from '../support/replica-record.js';

/** Replica a's reaper, over that state, removing containers as the test says. */
function reaperOf(
  state: ReturnType<typeof createMemoryState>,
  removeReplica: Parameters<typeof createDeadReplicaReaper>[0]['removeReplica'],
  peers: () => readonly ReplicaRecord[] = () => [],
  forgetOtherNodeAfterMs = 60_000,
): ReturnType<typeof createDeadReplicaReaper> {
  return createDeadReplicaReaper({ registry: state.replicas, self: 'a', node: 'node-a', forgetOtherNodeAfterMs, intervalMs: 20, peers, removeReplica, logger: testLogger() });
}

describe('liveness, heartbeat and the dead-replica reaper (memory state)', () => {
  it('a beat publishes the record, renews ownership and refreshes the view; leaving removes the replica', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const liveness = createLiveness({ registry: state.replicas, self: 'a' });
    await state.owners.claim('alice', 'a', 100);
    const beat = createHeartbeat({ state, liveness, startedAtMs: Date.now(), intervalMs: 50, ownerTtlMs: 100, logger: testLogger() });
    const givenUp: string[] = [];
    beat.track({ leasedUsers: () => ['alice', 'bob'], giveUp: (users) => void givenUp.push(...users) });
    beat.publish(() => replicaNumbers({ idle: 3 }));
    await state.owners.claim('bob', 'b', 60_000);
    await beat.start();
    assert.deepEqual(givenUp, ['bob'], 'a record another replica holds is given up');
    assert.equal((await liveness.live()).find((r) => r.replica === 'a')?.idle, 3);
    await sleep(250);
    assert.equal(await state.owners.owner('alice'), 'a', 'ownership renewed by the beats');
    await beat.stop();
    assert.deepEqual(await liveness.live(), []);
    await state.close();
  });

  it('after a lapse (stalled, or shared state unreachable) beats and re-validates ownership before anything is served', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    let clock = Date.now();
    let beats = 0;
    const counting = { ...state, replicas: { ...state.replicas, heartbeat: (...args: Parameters<typeof state.replicas.heartbeat>) => (beats++, state.replicas.heartbeat(...args)) } };
    const liveness = createLiveness({ registry: state.replicas, self: 'a' });
    const beat = createHeartbeat({ state: counting, liveness, startedAtMs: clock, intervalMs: 60_000, ownerTtlMs: 600_000, logger: testLogger(), now: () => clock });
    beat.publish(() => replicaNumbers());
    const givenUp: string[] = [];
    beat.track({ leasedUsers: () => ['alice'], giveUp: (users) => void givenUp.push(...users) });
    await beat.start();
    await beat.ensureCurrent();
    assert.equal(beats, 1, 'current: no extra beat');
    // This replica stalls for longer than its TTL; meanwhile another takes alice over.
    await state.owners.release('alice', 'a');
    await state.owners.claim('alice', 'b', 600_000);
    clock += 200_000;
    await beat.ensureCurrent();
    assert.equal(beats, 2, 'a lapsed heartbeat beats before serving');
    assert.deepEqual(givenUp, ['alice']);
    await beat.stop();
    await state.close();
  });

  it('the reaper remembers replicas it saw alive: one that shared state forgot (a Redis flush) and then died is still cleaned up', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    await state.replicas.heartbeat(replicaRecord('a', { pid: 1, seenAtMs: Date.now() }), 60_000);
    await state.replicas.heartbeat(replicaRecord('b', { pid: 2, seenAtMs: Date.now() }), 60_000);
    const asked: string[] = [];
    let bContainers = ['b-1'];
    // What a's heartbeat last read (Liveness.peers).
    let peers = (await state.replicas.live()).filter((r) => r.replica !== 'a');
    const reaper = reaperOf(
      state,
      async (dead) => {
        asked.push(dead.replica);
        const removed = bContainers;
        bContainers = [];
        return { removed, kept: 0, failed: 0 };
      },
      () => peers,
    );
    await reaper.reap();
    assert.deepEqual(asked, [], 'b is alive');
    // Shared state loses b (as a Redis flush would), and b dies before it beats again; a's next beat reads that.
    await state.replicas.leave('b');
    peers = (await state.replicas.live()).filter((r) => r.replica !== 'a');
    await reaper.reap();
    await reaper.reap();
    await reaper.reap();
    assert.deepEqual(asked, ['b', 'b'], 'cleaned up from memory, then forgotten after a clean pass');
    await reaper.stop();
    await state.close();
  });

  it('a beat that never settles (a Redis command lost across a reconnect) does not stop the beats after it', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    let calls = 0;
    const hanging = {
      ...state,
      replicas: {
        ...state.replicas,
        heartbeat: (...args: Parameters<typeof state.replicas.heartbeat>) => (++calls === 1 ? new Promise<void>(() => undefined) : state.replicas.heartbeat(...args)),
      },
    };
    const liveness = createLiveness({ registry: state.replicas, self: 'a' });
    const beat = createHeartbeat({ state: hanging, liveness, startedAtMs: Date.now(), intervalMs: 50, ownerTtlMs: 1000, logger: testLogger() });
    beat.publish(() => replicaNumbers());
    await beat.start();
    assert.equal(await liveness.isLive('a'), true);
    assert.equal((await state.replicas.live()).length, 0, 'the first beat hangs');
    await sleep(1_300);
    assert.ok(calls >= 2, `beats after the hung one: ${calls - 1}`);
    assert.deepEqual((await state.replicas.live()).map((r) => r.replica), ['a'], 'a later beat published the record');
    await beat.stop();
    await state.close();
  });

  it('looks a replica up now, not in the last beat\'s view, and assumes alive when shared state cannot answer', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const liveness = createLiveness({ registry: state.replicas, self: 'a' });
    assert.equal(await liveness.isLive('a'), true);
    assert.equal(await liveness.isLive('b'), false);
    await state.replicas.heartbeat(replicaRecord('b', { pid: 2, seenAtMs: Date.now() }), 1000);
    assert.equal(await liveness.isLive('b'), true, 'started after the last beat: alive');
    // In the view of the last beat, but its heartbeat expired since: dead now, not at the next beat.
    await state.replicas.heartbeat(replicaRecord('c', { pid: 3, seenAtMs: Date.now() }), 30);
    liveness.observe(await state.replicas.live());
    assert.ok(liveness.peers().some((r) => r.replica === 'c'));
    await sleep(60);
    assert.equal(await liveness.isLive('c'), false, 'expired since the last beat: dead');
    const broken = createLiveness({ registry: { ...state.replicas, isLive: () => Promise.reject(new Error('Redis down')) }, self: 'a' });
    assert.equal(await broken.isLive('c'), true);
    await state.close();
  });

  it('the reaper leaves a dead replica of another node to that node\'s replicas (its containers are on that engine), and forgets it only after forgetOtherNodeAfterMs', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const beatAt = Date.now();
    await state.replicas.heartbeat(replicaRecord('a', { pid: 1, seenAtMs: beatAt, node: 'node-a' }), 60_000);
    await state.replicas.heartbeat(replicaRecord('b', { pid: 2, seenAtMs: beatAt, node: 'node-b' }), 30);
    await state.replicas.heartbeat(replicaRecord('c', { pid: 3, seenAtMs: beatAt, node: 'node-a' }), 30);
    const asked: string[] = [];
    // Found nothing here: on node-b's engine, b's sandboxes are still there.
    const nothingHere = async (dead: { replica: string }): Promise<{ removed: string[]; kept: number; failed: number }> => (asked.push(dead.replica), { removed: [], kept: 0, failed: 0 });
    await sleep(60);
    const reaper = reaperOf(state, nothingHere);
    await reaper.reap();
    await reaper.reap();
    assert.deepEqual(asked, ['c'], 'c (this node) is cleaned up here; b (another node) is not even looked for');
    assert.deepEqual((await state.replicas.dead()).map((d) => [d.replica, d.node]), [['b', 'node-b']], 'b is kept for node-b\'s replicas, with its node; c was forgotten');
    await reaper.stop();
    // A replica on node-b (after node-b came back) cleans b up.
    const onB = createDeadReplicaReaper({ registry: state.replicas, self: 'b2', node: 'node-b', forgetOtherNodeAfterMs: 60_000, intervalMs: 20, peers: () => [], removeReplica: nothingHere, logger: testLogger() });
    await onB.reap();
    assert.deepEqual(asked, ['c', 'b'], 'node-b\'s replica looks for b\'s containers');
    assert.deepEqual(await state.replicas.dead(), [], 'and forgets b after a pass that found nothing');
    await onB.stop();
    // Lost for good (its node never came back): forgotten elsewhere after forgetOtherNodeAfterMs.
    await state.replicas.heartbeat(replicaRecord('d', { pid: 4, seenAtMs: Date.now(), node: 'node-d' }), 30);
    await sleep(60);
    const patient = reaperOf(state, nothingHere, () => [], 40);
    await patient.reap();
    assert.deepEqual(await state.replicas.dead(), [], 'd forgotten after its lapse passed forgetOtherNodeAfterMs');
    assert.deepEqual(asked, ['c', 'b'], 'd was never looked for on node-a\'s engine');
    await patient.stop();
    await state.close();
  });

  it('the reaper cleans up a dead replica outside any beat, never itself, and forgets it only after a pass that found nothing of it', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const beatAt = Date.now();
    await state.replicas.heartbeat(replicaRecord('b', { pid: 2, seenAtMs: beatAt }), 30);
    await state.replicas.heartbeat(replicaRecord('c', { pid: 3, seenAtMs: beatAt }), 30);
    await state.replicas.heartbeat(replicaRecord('a', { pid: 1, seenAtMs: beatAt }), 30);
    await state.replicas.heartbeat(replicaRecord('d', { pid: 4, seenAtMs: beatAt }), 30);
    // d's engine fails: first its listing, then one removal; it is forgotten only after a clean pass.
    const dPasses: Array<'list fails' | { removed: string[]; kept: number; failed: number }> = ['list fails', { removed: [], kept: 0, failed: 1 }, { removed: [], kept: 0, failed: 0 }];
    const asked: Array<[string, number]> = [];
    // b had one container (removed on the first pass); c's owner process still exists (stalled): its containers are kept.
    let bContainers = ['b-1'];
    const reaper = reaperOf(state, async (dead) => {
      asked.push([dead.replica, dead.lastSeenAtMs]);
      if (dead.replica === 'c') return { removed: [], kept: 1, failed: 0 };
      if (dead.replica === 'd') {
        const pass = dPasses.shift();
        if (pass === 'list fails' || pass === undefined) throw new Error('engine unreachable');
        return pass;
      }
      const removed = bContainers;
      bContainers = [];
      return { removed, kept: 0, failed: 0 };
    });
    await sleep(60);
    await reaper.reap();
    await reaper.reap();
    await reaper.reap();
    assert.deepEqual(asked.map(([r]) => r), ['b', 'c', 'd', 'b', 'c', 'd', 'c', 'd'], 'b and d until a clean pass found nothing (then forgotten), c each pass (kept), a (itself) never');
    assert.deepEqual(dPasses, [], 'd was asked after its listing and a removal failed');
    assert.ok(asked.every(([, at]) => at >= beatAt && at <= beatAt + 50), 'with the time of its last beat');
    assert.deepEqual((await state.replicas.dead()).map((d) => d.replica).sort(), ['a', 'c']);
    await reaper.stop();
    await state.close();
  });
});
