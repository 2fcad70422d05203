import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OwnedElsewhereError, createSessionManager, type SessionManager } from '../../src/chat/sessions.js';
import { CancelledError, SandpoolError } from '../../src/errors.js';
import { createMemoryState } from '../../src/state/memory-state.js';
import { createNoWorkspaceStore } from '../../src/workspace/workspace-store.js';
import { createWorkspaces } from '../../src/workspace/workspaces.js';
import type { SharedState } from '../../src/state/types.js';
import { TEST_CHAT_SETTINGS } from '../support/chat-harness.js';
import { createFakePool, type FakePool } from '../support/fake-pool.js';
import { testLogger } from '../support/helpers.js';

function setup(overrides: { idleMs?: number; graceMs?: number; maxSessions?: number; live?: (id: string) => boolean } = {}): { sessions: SessionManager; pool: FakePool; state: SharedState } {
  const pool = createFakePool();
  const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
  const sessions = createSessionManager({
    chat: { ...TEST_CHAT_SETTINGS, sessionIdleTimeoutMs: overrides.idleMs ?? 60_000, disconnectGraceMs: overrides.graceMs ?? 60_000, maxSessions: overrides.maxSessions ?? 10 },
    pool,
    owners: state.owners,
    replicaId: 'a',
    ownerTtlMs: 60_000,
    isReplicaLive: async (id) => id === 'a' || (overrides.live?.(id) ?? false),
    ensureCurrent: async () => undefined,
    workspaces: createWorkspaces({ store: createNoWorkspaceStore(), maxBytes: 0, timeoutMs: 1000, logger: testLogger(), observer: { saved: () => undefined, restored: () => undefined } }),
    logger: testLogger(),
  });
  return { sessions, pool, state };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('sessions', () => {
  it('takes one sandbox per user on first use, shared by concurrent first calls, and claims ownership', async () => {
    const { sessions, pool, state } = setup();
    const s = sessions.open('alice');
    const [a, b] = await Promise.all([sessions.lease(s), sessions.lease(s)]);
    assert.equal(a.lease, b.lease);
    assert.equal(pool.sandboxes.length, 1);
    assert.equal(a.startedFresh, 'after-release');
    assert.equal((await sessions.lease(s)).startedFresh, 'no');
    assert.equal(await state.owners.owner('alice'), 'a');
    assert.deepEqual(sessions.leasedUsers(), ['alice']);
    await sessions.closeAll();
  });

  it('replaces a sandbox that died, and says the files were lost', async () => {
    const { sessions, pool } = setup();
    const s = sessions.open('alice');
    await sessions.lease(s);
    const [first] = pool.sandboxes;
    assert.ok(first);
    pool.kill(first);
    const again = await sessions.lease(s);
    assert.equal(again.startedFresh, 'after-loss');
    assert.equal(first.released, true, 'the dead one was released');
    assert.equal(pool.live().length, 1);
    await sessions.closeAll();
  });

  it('refuses to take a sandbox while a live replica holds the user\'s, and takes over from a dead one', async () => {
    let bLive = true;
    const { sessions, state, pool } = setup({ live: (id) => id === 'b' && bLive });
    await state.owners.claim('alice', 'b', 60_000);
    const s = sessions.open('alice');
    await assert.rejects(sessions.lease(s), (err) => err instanceof OwnedElsewhereError && err.owner === 'b');
    assert.equal(pool.sandboxes.length, 0);
    bLive = false;
    const taken = await sessions.lease(s);
    assert.equal(taken.startedFresh, 'after-loss', 'the dead replica\'s sandbox and its files are gone');
    assert.equal(await state.owners.owner('alice'), 'a');
    await sessions.closeAll();
  });

  it('releases an idle sandbox but keeps the session while a socket is open; a busy session is never idle', async () => {
    const { sessions, pool, state } = setup({ idleMs: 40 });
    const s = sessions.attach('alice');
    await sessions.lease(s);
    s.running++;
    await sleep(120);
    assert.equal(pool.live().length, 1, 'a request still running keeps the sandbox');
    s.running--;
    sessions.touch(s);
    await sleep(120);
    assert.equal(pool.live().length, 0);
    assert.equal(sessions.get('alice'), s, 'the session stays for its socket');
    assert.equal(await state.owners.owner('alice'), undefined, 'ownership released with the sandbox');
    await sessions.closeAll();
  });

  it('ends the session after the disconnect grace, cancelling its requests as "user left"', async () => {
    const { sessions, pool } = setup({ graceMs: 30 });
    const s = sessions.attach('alice');
    await sessions.lease(s);
    sessions.attach('alice');
    sessions.detach('alice');
    await sleep(60);
    assert.equal(s.abort.signal.aborted, false, 'another tab is still there');
    sessions.detach('alice');
    await sleep(80);
    assert.ok(s.abort.signal.reason instanceof CancelledError);
    assert.equal((s.abort.signal.reason as CancelledError).reason, 'user-left');
    assert.equal(sessions.get('alice'), undefined);
    assert.equal(pool.live().length, 0);
  });

  it('a reconnect within the grace keeps everything', async () => {
    const { sessions, pool } = setup({ graceMs: 50 });
    const s = sessions.attach('alice');
    await sessions.lease(s);
    sessions.detach('alice');
    sessions.attach('alice');
    await sleep(100);
    assert.equal(sessions.get('alice'), s);
    assert.equal(pool.live().length, 1);
    await sessions.closeAll();
  });

  it('refuses sessions beyond MAX_SESSIONS with TOO_MANY_REQUESTS', async () => {
    const { sessions } = setup({ maxSessions: 1 });
    sessions.open('alice');
    assert.throws(() => sessions.open('bob'), (err: unknown) => err instanceof SandpoolError && err.code === 'TOO_MANY_REQUESTS');
    assert.equal(sessions.open('alice'), sessions.get('alice'));
    await sessions.closeAll();
  });

  it('closeAll cancels every session as a shutdown and releases every sandbox', async () => {
    const { sessions, pool } = setup();
    const a = sessions.open('alice');
    const b = sessions.open('bob');
    await Promise.all([sessions.lease(a), sessions.lease(b)]);
    await sessions.closeAll();
    for (const s of [a, b]) assert.equal((s.abort.signal.reason as CancelledError).reason, 'shutdown');
    assert.equal(pool.live().length, 0);
    assert.equal(sessions.count(), 0);
  });

  it('a failed acquire leaves no ownership record behind', async () => {
    const { sessions, pool, state } = setup();
    pool.failNext(new SandpoolError('POOL_EXHAUSTED', 'none'));
    await assert.rejects(sessions.lease(sessions.open('alice')), (err) => err instanceof SandpoolError && err.code === 'POOL_EXHAUSTED');
    assert.equal(await state.owners.owner('alice'), undefined);
    await sessions.closeAll();
  });
});
