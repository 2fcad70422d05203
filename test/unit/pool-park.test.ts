import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/logger.js';
import { startedPools } from '../../scripts/lib/started-pools.js';
import type { ContainerPool, ContainerPoolOptions } from '../../src/pool/container-pool.js';
import type { PoolSettings } from '../../src/pool/settings.js';
import type { ParkEvictReason } from '../../src/pool/types.js';
import { createFakeRuntime, type FakeRuntime } from '../support/fake-runtime.js';
import { textOf, waitFor as waitUntil } from '../support/helpers.js';

/**
 * Parking (docs/architecture.md, "Parked sandboxes") against the fake runtime:
 * a lease's end may freeze its sandbox for its user alone; resume hands it
 * back; count, TTL, demand, failure and drain remove it.
 * test/integration/park.test.ts checks the same on the real engine.
 */

const pools = startedPools();
let replicaSeq = 0;

function makePool(rt: FakeRuntime, pool: Partial<PoolSettings> = {}, extra: Partial<ContainerPoolOptions> = {}): { pool: ContainerPool; evicted: Array<[string, ParkEvictReason]>; observed: string[] } {
  const evicted: Array<[string, ParkEvictReason]> = [];
  const observed: string[] = [];
  const started = pools.start({
    runtime: rt,
    pool: {
      enabled: true,
      minSize: 1,
      refillDelayMs: 0,
      maxSize: 4,
      idleTimeoutMs: 60_000,
      acquireTimeoutMs: 2_000,
      createTimeoutMs: 2_000,
      maxWaitingClients: 100,
      createConcurrency: 4,
      removeConcurrency: 2,
      demandWindowMs: 60_000,
      demandHeadroom: 0,
      sparesMemoryMb: 1024,
      idleSandboxMemoryMb: 32,
      parkMax: 5,
      parkTtlS: 60,
      resumeTimeoutMs: 1_000,
      image: 'sandpool-fake:latest',
      command: undefined,
      ...pool,
    },
    sandbox: { memoryMb: 256, cpus: 1, pidsLimit: 64, workspaceMb: 64, tmpMb: 16, shmMb: 1, nofile: 1024, user: '65532' },
    replicaId: `park-${++replicaSeq}`,
    logger: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    removalMaxDeferMs: 50,
    observer: { resumed: () => void observed.push('resumed'), parkEvicted: (reason) => void observed.push(`evicted:${reason}`) },
    ...extra,
  });
  started.onParkedEvicted((userId, reason) => evicted.push([userId, reason]));
  return { pool: started, evicted, observed };
}

const waitFor = (what: string, fn: () => boolean, timeoutMs = 3_000): Promise<boolean> => waitUntil(what, fn, timeoutMs, 5);
const container = (rt: FakeRuntime, id: string) => rt.containers().find((c) => c.id === id);

after(async () => {
  await pools.drainAll(1_000);
});

describe('ContainerPool parking (fake runtime)', () => {
  it('parks a sandbox frozen for its user: counted in total, not idle or active; resumed with its files for that user only', async () => {
    const rt = createFakeRuntime();
    const { pool, observed } = makePool(rt, { minSize: 0 });
    const lease = await pool.acquire();
    await lease.callTool('write_file', { path: '/workspace/a.txt', content: 'alice was here' });
    const id = lease.sandbox.id;
    assert.equal(await lease.park('alice'), true);
    assert.equal(container(rt, id)?.paused(), true, 'frozen');
    assert.equal(container(rt, id)?.removed(), false);
    const stats = pool.stats();
    assert.deepEqual({ parked: stats.parked, idle: stats.idle, active: stats.active, total: stats.total }, { parked: 1, idle: 0, active: 0, total: 1 });
    assert.ok(pool.ownedIds().has(id), 'still owned: the orphan sweep leaves it');
    assert.deepEqual(pool.parkedUsers(), ['alice']);
    assert.equal(await pool.resume('bob'), undefined, 'never handed to another user');
    const back = await pool.resume('alice');
    assert.ok(back);
    assert.equal(back.sandbox.id, id);
    assert.equal(container(rt, id)?.paused(), false);
    assert.equal(textOf(await back.callTool('read_text_file', { path: '/workspace/a.txt' })), 'alice was here');
    assert.deepEqual({ parked: pool.stats().parked, active: pool.stats().active }, { parked: 0, active: 1 });
    assert.equal(await pool.resume('alice'), undefined, 'resumed once');
    assert.deepEqual(observed, ['resumed']);
    await back.release();
    await waitFor('removed on release', () => container(rt, id)?.removed() === true);
  });

  it('never hands a parked sandbox to another acquire', async () => {
    const rt = createFakeRuntime();
    const { pool } = makePool(rt, { minSize: 0, maxSize: 3 });
    const lease = await pool.acquire();
    const parkedId = lease.sandbox.id;
    await lease.park('alice');
    const others = [await pool.acquire(), await pool.acquire()];
    assert.ok(others.every((l) => l.sandbox.id !== parkedId));
    await Promise.all(others.map((l) => l.release()));
  });

  it('evicts the least recently parked beyond PARK_MAX (count) and removes it', async () => {
    const rt = createFakeRuntime();
    const { pool, evicted, observed } = makePool(rt, { minSize: 0, parkMax: 1 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const aId = a.sandbox.id;
    await a.park('alice');
    await b.park('bob');
    assert.deepEqual(evicted, [['alice', 'count']]);
    assert.deepEqual(observed, ['evicted:count']);
    await waitFor('the evicted sandbox removed', () => container(rt, aId)?.removed() === true);
    assert.equal(await pool.resume('alice'), undefined);
    assert.equal(pool.stats().parked, 1);
  });

  it('evicts a parked sandbox after PARK_TTL_S', async () => {
    const rt = createFakeRuntime();
    const { pool, evicted } = makePool(rt, { minSize: 0, parkTtlS: 1 });
    const a = await pool.acquire();
    const id = a.sandbox.id;
    await a.park('alice');
    await waitFor('ttl eviction', () => evicted.length === 1, 4_000);
    assert.deepEqual(evicted, [['alice', 'ttl']]);
    await waitFor('removed', () => container(rt, id)?.removed() === true);
    assert.equal(pool.stats().parked, 0);
  });

  it('yields to demand: an acquire at POOL_MAX_SIZE frees the oldest parked sandbox\'s slot', async () => {
    const rt = createFakeRuntime();
    const { pool, evicted } = makePool(rt, { minSize: 0, maxSize: 2 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const aId = a.sandbox.id;
    await a.park('alice');
    await b.park('bob');
    assert.equal(pool.stats().total, 2);
    const c = await pool.acquire();
    assert.deepEqual(evicted, [['alice', 'demand']]);
    assert.equal(container(rt, aId)?.removed(), true);
    assert.deepEqual(pool.parkedUsers(), ['bob']);
    await c.release();
  });

  it('yields to the spares: with every slot parked, the oldest makes room for POOL_MIN_SIZE, one at a time', async () => {
    const rt = createFakeRuntime();
    const { pool, evicted } = makePool(rt, { minSize: 1, maxSize: 3 }, { retargetIntervalMs: 50 });
    await waitFor('warm', () => pool.stats().idle === 1);
    const leases = [];
    for (let i = 0; i < 3; i++) leases.push(await pool.acquire());
    for (const [i, user] of ['alice', 'bob', 'carol'].entries()) await leases[i]?.park(user);
    await waitFor('a spare again', () => pool.stats().idle === 1);
    assert.deepEqual(evicted, [['alice', 'demand']]);
    assert.deepEqual(pool.parkedUsers().sort(), ['bob', 'carol']);
    // Many retargets later, the spare is there and nobody else lost theirs.
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(evicted, [['alice', 'demand']]);
    assert.deepEqual({ idle: pool.stats().idle, parked: pool.stats().parked }, { idle: 1, parked: 2 });
  });

  it('a resume that fails removes the sandbox and answers undefined (the caller restores from the snapshot)', async () => {
    const rt = createFakeRuntime();
    const { pool, observed, evicted } = makePool(rt, { minSize: 0 });
    const a = await pool.acquire();
    const id = a.sandbox.id;
    await a.park('alice');
    rt.faults.failResume = 'unpause: the engine said no';
    assert.equal(await pool.resume('alice'), undefined);
    assert.equal(container(rt, id)?.removed(), true);
    assert.deepEqual(observed, ['evicted:failed']);
    assert.deepEqual(evicted, [], 'not an eviction behind the user\'s back: the caller knows');
    assert.equal(pool.stats().parked, 0);
  });

  it('a parked sandbox that died is not resumed', async () => {
    const rt = createFakeRuntime();
    const { pool } = makePool(rt, { minSize: 0 });
    const a = await pool.acquire();
    const id = a.sandbox.id;
    await a.park('alice');
    rt.crash(id);
    await waitFor('seen dead', () => !a.sandbox.isUsable());
    assert.equal(await pool.resume('alice'), undefined);
  });

  it('PARK_MAX=0 turns parking off: park removes the sandbox as release does', async () => {
    const rt = createFakeRuntime();
    const { pool } = makePool(rt, { minSize: 0, parkMax: 0 });
    const a = await pool.acquire();
    const id = a.sandbox.id;
    assert.equal(await a.park('alice'), false);
    assert.equal(container(rt, id)?.removed(), true);
    assert.equal(pool.stats().parked, 0);
  });

  it('evictParked removes one user\'s parked sandbox (wipe)', async () => {
    const rt = createFakeRuntime();
    const { pool, evicted } = makePool(rt, { minSize: 0 });
    const a = await pool.acquire();
    const id = a.sandbox.id;
    await a.park('alice');
    assert.equal(pool.evictParked('bob', 'wipe'), false);
    assert.equal(pool.evictParked('alice', 'wipe'), true);
    assert.deepEqual(evicted, [['alice', 'wipe']]);
    await waitFor('removed', () => container(rt, id)?.removed() === true);
  });

  it('drain removes parked sandboxes, and parks nothing once draining', async () => {
    const rt = createFakeRuntime();
    const { pool, evicted } = makePool(rt, { minSize: 0 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    await a.park('alice');
    const draining = pool.drain(2_000);
    assert.equal(await b.park('bob'), false);
    await draining;
    assert.deepEqual(evicted, [['alice', 'shutdown']]);
    assert.equal(rt.present().length, 0);
  });
});
