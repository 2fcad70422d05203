import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OwnedElsewhereError, createOwnership } from '../../src/chat/ownership.js';
import { createPresences, type Presences } from '../../src/chat/presence.js';
import { createSandboxLeases, type SandboxLeases } from '../../src/chat/sandbox-leases.js';
import { CancelledError, SandpoolError } from '../../src/errors.js';
import { createMemoryState } from '../../src/state/memory-state.js';
import { createNoWorkspaceStore } from '../../src/workspace/workspace-store.js';
import { sleep } from '../../src/util/async.js';
import { createWorkspaces } from '../../src/workspace/workspaces.js';
import type { SharedState } from '../../src/state/types.js';
import { TEST_CHAT_SETTINGS } from '../support/chat-harness.js';
import { createFakePool, type FakePool } from '../support/fake-pool.js';
import { testLogger } from '../support/helpers.js';

/** Presences over sandbox leases over ownership, as a replica wires them, on the fake pool and memory state. */
function setup(overrides: { idleMs?: number; graceMs?: number; maxSessions?: number; live?: (id: string) => boolean } = {}): {
  presences: Presences;
  leases: SandboxLeases;
  pool: FakePool;
  state: SharedState;
} {
  const pool = createFakePool();
  const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
  const logger = testLogger();
  const ownership = createOwnership({ owners: state.owners, replicaId: 'a', ownerTtlMs: 60_000, isReplicaLive: async (id) => id === 'a' || (overrides.live?.(id) ?? false), logger });
  const workspaces = createWorkspaces({ store: createNoWorkspaceStore(), maxBytes: 0, timeoutMs: 1000, logger, observer: { saved: () => undefined, restored: () => undefined } });
  const leases = createSandboxLeases({ pool, ownership, ensureCurrent: async () => undefined, workspaces, logger });
  const settings = { ...TEST_CHAT_SETTINGS, sessionIdleTimeoutMs: overrides.idleMs ?? 60_000, disconnectGraceMs: overrides.graceMs ?? 60_000, maxSessions: overrides.maxSessions ?? 10 };
  return { presences: createPresences({ settings, sandbox: leases }), leases, pool, state };
}

describe('presences and their sandbox leases', () => {
  it('takes one sandbox per user on first use, shared by concurrent first calls, and claims ownership', async () => {
    const { presences, leases, pool, state } = setup();
    const s = presences.open('alice');
    const [a, b] = await Promise.all([leases.lease(s), leases.lease(s)]);
    assert.equal(a.lease, b.lease);
    assert.equal(pool.sandboxes.length, 1);
    assert.equal(a.startedFresh, 'after-release');
    assert.equal((await leases.lease(s)).startedFresh, 'no');
    assert.equal(await state.owners.owner('alice'), 'a');
    assert.deepEqual(leases.leasedUsers(), ['alice']);
    await presences.closeAll();
  });

  it('replaces a sandbox that died, and says the files were lost', async () => {
    const { presences, leases, pool } = setup();
    const s = presences.open('alice');
    await leases.lease(s);
    const [first] = pool.sandboxes;
    assert.ok(first);
    pool.kill(first);
    const again = await leases.lease(s);
    assert.equal(again.startedFresh, 'after-loss');
    assert.equal(first.released, true, 'the dead one was released');
    assert.equal(pool.live().length, 1);
    await presences.closeAll();
  });

  it('refuses to take a sandbox while a live replica holds the user\'s, and takes over from a dead one', async () => {
    let bLive = true;
    const { presences, leases, state, pool } = setup({ live: (id) => id === 'b' && bLive });
    await state.owners.claim('alice', 'b', 60_000);
    const s = presences.open('alice');
    await assert.rejects(leases.lease(s), (err) => err instanceof OwnedElsewhereError && err.owner === 'b');
    assert.equal(pool.sandboxes.length, 0);
    bLive = false;
    const taken = await leases.lease(s);
    assert.equal(taken.startedFresh, 'after-loss', 'the dead replica\'s sandbox and its files are gone');
    assert.equal(await state.owners.owner('alice'), 'a');
    await presences.closeAll();
  });

  it('releases an idle sandbox but keeps the presence while a socket is open; a busy presence is never idle', async () => {
    const { presences, leases, pool, state } = setup({ idleMs: 40 });
    const s = presences.attach('alice');
    await leases.lease(s);
    const done = s.begin();
    await sleep(120);
    assert.equal(pool.live().length, 1, 'a request still running keeps the sandbox');
    done();
    await sleep(120);
    assert.equal(pool.live().length, 0);
    assert.equal(presences.get('alice'), s, 'the presence stays for its socket');
    assert.equal(await state.owners.owner('alice'), undefined, 'ownership released with the sandbox');
    await presences.closeAll();
  });

  it('ends the presence after the disconnect grace, cancelling its requests as "user left"', async () => {
    const { presences, leases, pool } = setup({ graceMs: 30 });
    const s = presences.attach('alice');
    await leases.lease(s);
    presences.attach('alice');
    presences.detach('alice');
    await sleep(60);
    assert.equal(s.signal.aborted, false, 'another tab is still there');
    presences.detach('alice');
    await sleep(80);
    assert.ok(s.signal.reason instanceof CancelledError);
    assert.equal((s.signal.reason as CancelledError).reason, 'user-left');
    assert.equal(presences.get('alice'), undefined);
    assert.equal(pool.live().length, 0);
  });

  it('a reconnect within the grace keeps everything', async () => {
    const { presences, leases, pool } = setup({ graceMs: 50 });
    const s = presences.attach('alice');
    await leases.lease(s);
    presences.detach('alice');
    presences.attach('alice');
    await sleep(100);
    assert.equal(presences.get('alice'), s);
    assert.equal(pool.live().length, 1);
    await presences.closeAll();
  });

  it('refuses presences beyond MAX_SESSIONS with TOO_MANY_REQUESTS, and has room for one already here', async () => {
    const { presences } = setup({ maxSessions: 1 });
    presences.open('alice');
    assert.throws(() => presences.open('bob'), (err: unknown) => err instanceof SandpoolError && err.code === 'TOO_MANY_REQUESTS');
    assert.equal(presences.open('alice'), presences.get('alice'));
    assert.equal(presences.hasRoomFor('alice'), true);
    assert.equal(presences.hasRoomFor('bob'), false);
    assert.equal(presences.hasRoomFor(undefined), false, 'an unknown user counts as new');
    assert.throws(() => presences.checkRoomFor('bob'), (err: unknown) => err instanceof SandpoolError && err.code === 'TOO_MANY_REQUESTS');
    await presences.closeAll();
  });

  it('closeAll cancels every presence as a shutdown and releases every sandbox', async () => {
    const { presences, leases, pool } = setup();
    const a = presences.open('alice');
    const b = presences.open('bob');
    await Promise.all([leases.lease(a), leases.lease(b)]);
    await presences.closeAll();
    for (const s of [a, b]) assert.equal((s.signal.reason as CancelledError).reason, 'shutdown');
    assert.equal(pool.live().length, 0);
    assert.equal(presences.count(), 0);
  });

  it('a failed acquire leaves no ownership record behind', async () => {
    const { presences, leases, pool, state } = setup();
    pool.failNext(new SandpoolError('POOL_EXHAUSTED', 'none'));
    await assert.rejects(leases.lease(presences.open('alice')), (err) => err instanceof SandpoolError && err.code === 'POOL_EXHAUSTED');
    assert.equal(await state.owners.owner('alice'), undefined);
    await presences.closeAll();
  });

  it('ownership: names the replica holding a user\'s sandbox only while it is another one and alive', async () => {
    let bLive = true;
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const ownership = createOwnership({ owners: state.owners, replicaId: 'a', ownerTtlMs: 60_000, isReplicaLive: async (id) => id === 'a' || (id === 'b' && bLive), logger: testLogger() });
    assert.equal(await ownership.liveOwnerElsewhere('alice'), undefined, 'nobody holds it');
    await state.owners.claim('alice', 'b', 60_000);
    assert.equal(await ownership.liveOwnerElsewhere('alice'), 'b');
    bLive = false;
    assert.equal(await ownership.liveOwnerElsewhere('alice'), undefined, 'a dead owner holds nothing');
    assert.equal(await ownership.claim('alice'), true, 'taken over from the dead replica');
    assert.equal(await ownership.liveOwnerElsewhere('alice'), undefined, 'this replica holds it now');
    await state.close();
  });
});
