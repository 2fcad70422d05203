import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createOwnership } from '../../src/chat/ownership.js';
import { createPresences, type Presences } from '../../src/chat/presence.js';
import { createSandboxLeases, type SandboxLeases } from '../../src/chat/sandbox-leases.js';
import { createMemoryState } from '../../src/state/memory-state.js';
import type { SharedState } from '../../src/state/types.js';
import { createFsWorkspaceStore } from '../../src/workspace/fs-store.js';
import type { WorkspaceStore } from '../../src/workspace/workspace-store.js';
import { createWorkspaces, type Workspaces } from '../../src/workspace/workspaces.js';
import { TEST_CHAT_SETTINGS } from '../support/chat-harness.js';
import { createFakePool, type FakePool } from '../support/fake-pool.js';
import { textOf, testLogger, waitFor } from '../support/helpers.js';

/**
 * Leases over a pool that parks (the fake pool with parking on): a lease that
 * ends for idleness or because the user left parks the sandbox after a last
 * snapshot, keeps the user's claim, and the user's next lease resumes it; a
 * failed resume falls back to a fresh sandbox with the snapshot restored.
 */
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The current setup's workspaces (the write helper marks its changes, as sandbox-tools does). */
let workspaces: Workspaces;

function setup(overrides: { idleMs?: number; graceMs?: number } = {}): {
  presences: Presences;
  leases: SandboxLeases;
  pool: FakePool;
  state: SharedState;
  store: WorkspaceStore;
  returning: string[];
} {
  const pool = createFakePool({ snapshots: true });
  pool.parking = true;
  const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
  const logger = testLogger();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-park-'));
  dirs.push(dir);
  const store = createFsWorkspaceStore({ dir });
  const ownership = createOwnership({ owners: state.owners, replicaId: 'a', ownerTtlMs: 60_000, isReplicaLive: async (id) => id === 'a', logger });
  workspaces = createWorkspaces({ store, maxBytes: 1_000_000, timeoutMs: 1000, logger, observer: { saved: () => undefined, restored: () => undefined } });
  const returning: string[] = [];
  const leases = createSandboxLeases({ pool, ownership, ensureCurrent: async () => undefined, workspaces, logger, observer: { returningUser: (how) => void returning.push(how) } });
  const settings = { ...TEST_CHAT_SETTINGS, sessionIdleTimeoutMs: overrides.idleMs ?? 60_000, disconnectGraceMs: overrides.graceMs ?? 60_000, maxSessions: 10 };
  return { presences: createPresences({ settings, sandbox: leases }), leases, pool, state, store, returning };
}

/** A write through the lease, marked changed as sandbox-tools does (saved when the lease ends). */
async function write(leases: SandboxLeases, presences: Presences, userId: string, file: string, content: string): Promise<string> {
  const { lease } = await leases.lease(presences.open(userId));
  await lease.callTool('write_file', { path: `/workspace/${file}`, content });
  workspaces.markChanged(lease.sandbox);
  return lease.sandbox.id;
}

describe('sandbox leases with parking', () => {
  it('a user who left is parked with a last snapshot and keeps their claim; their next lease resumes the same sandbox', async () => {
    const { presences, leases, pool, state, returning } = setup({ graceMs: 20 });
    presences.attach('alice');
    const id = await write(leases, presences, 'alice', 'a.txt', 'mine');
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    assert.equal(await state.owners.owner('alice'), 'a', 'the claim stays with the parked sandbox');
    assert.deepEqual(leases.leasedUsers(), ['alice'], 'renewed by the heartbeat like a leased one');
    const back = await leases.lease(presences.open('alice'));
    assert.equal(back.lease.sandbox.id, id);
    assert.equal(back.resumed, true);
    assert.equal(back.startedFresh, 'no', 'nothing to tell the user');
    assert.equal(textOf(await back.lease.callTool('read_text_file', { path: '/workspace/a.txt' })), 'mine');
    assert.deepEqual(returning, ['resumed']);
    assert.equal(pool.sandboxes.length, 1, 'no new sandbox');
    await presences.closeAll();
  });

  it('a lease that comes while the sandbox is being parked waits for it and resumes it (no second sandbox)', async () => {
    const { presences, leases, pool } = setup();
    pool.parkDelayMs = 100;
    const presence = presences.attach('alice');
    const id = await write(leases, presences, 'alice', 'a.txt', 'x');
    const parking = leases.release(presence, 'idle timeout', true);
    const back = await leases.lease(presence);
    await parking;
    assert.equal(back.lease.sandbox.id, id);
    assert.equal(back.resumed, true);
    assert.equal(pool.sandboxes.length, 1);
    assert.equal(pool.parked.size, 0);
    await presences.closeAll();
  });

  it('a socket of the returning user starts the resume before their first call, which then finds it thawed', async () => {
    const { presences, leases, pool } = setup({ graceMs: 20 });
    presences.attach('alice');
    const id = await write(leases, presences, 'alice', 'a.txt', 'x');
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    const presence = presences.attach('alice');
    await waitFor('resumed on connect', () => !pool.parked.has('alice') && leases.leasedUsers().includes('alice'), 2_000, 5);
    const first = await leases.lease(presence);
    assert.equal(first.lease.sandbox.id, id);
    assert.equal(first.startedFresh, 'no');
    assert.equal(pool.sandboxes.length, 1);
    await presences.closeAll();
  });

  it('an idle timeout parks the sandbox while the socket stays; the next call resumes it', async () => {
    const { presences, leases, pool } = setup({ idleMs: 1_000 });
    presences.attach('alice');
    const id = await write(leases, presences, 'alice', 'a.txt', 'x');
    await waitFor('parked', () => pool.parked.has('alice'), 3_000, 10);
    const back = await leases.lease(presences.open('alice'));
    assert.equal(back.lease.sandbox.id, id);
    await presences.closeAll();
  });

  it('another user never gets the parked sandbox', async () => {
    const { presences, leases, pool } = setup({ graceMs: 20 });
    presences.attach('alice');
    const id = await write(leases, presences, 'alice', 'a.txt', 'secret');
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    const bob = await leases.lease(presences.open('bob'));
    assert.notEqual(bob.lease.sandbox.id, id);
    assert.equal(bob.resumed, undefined);
    assert.equal((await bob.lease.callTool('read_text_file', { path: '/workspace/a.txt' })).isError, true);
    await presences.closeAll();
  });

  it('a resume that fails gives a fresh sandbox with the snapshot restored, and no notice worse than a slower start', async () => {
    const { presences, leases, pool, store, returning } = setup({ graceMs: 20 });
    presences.attach('alice');
    const { lease } = await leases.lease(presences.open('alice'));
    await lease.callTool('write_file', { path: '/workspace/a.txt', content: 'saved' });
    workspaces.markChanged(lease.sandbox);
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    assert.ok(await store.load('alice'), 'the snapshot was taken when it was parked');
    pool.failResumes = 1;
    const back = await leases.lease(presences.open('alice'));
    assert.notEqual(back.lease.sandbox.id, lease.sandbox.id);
    assert.equal(back.restore?.kind, 'restored');
    assert.equal(back.startedFresh, 'after-release', 'restored: the agent adds no "files are gone" notice');
    assert.equal(textOf(await back.lease.callTool('read_text_file', { path: '/workspace/a.txt' })), 'saved');
    assert.deepEqual(returning, ['restored']);
    await presences.closeAll();
  });

  it('an eviction behind the user\'s back drops their claim; the next lease restores from the snapshot', async () => {
    const { presences, leases, pool, state } = setup({ graceMs: 20 });
    presences.attach('alice');
    await write(leases, presences, 'alice', 'a.txt', 'kept');
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    pool.evict('alice', 'ttl');
    await waitFor('claim dropped', async () => (await state.owners.owner('alice')) === undefined, 2_000, 5);
    assert.deepEqual(leases.leasedUsers(), []);
    const back = await leases.lease(presences.open('alice'));
    assert.equal(back.restore?.kind, 'restored');
    assert.equal(textOf(await back.lease.callTool('read_text_file', { path: '/workspace/a.txt' })), 'kept');
    await presences.closeAll();
  });

  it('wipe removes a parked sandbox, its snapshot and its claim', async () => {
    const { presences, leases, pool, state, store } = setup({ graceMs: 20 });
    presences.attach('alice');
    await write(leases, presences, 'alice', 'a.txt', 'gone soon');
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    await leases.wipe('alice');
    assert.equal(pool.parked.has('alice'), false);
    assert.equal(await store.load('alice'), undefined);
    await waitFor('claim dropped', async () => (await state.owners.owner('alice')) === undefined, 2_000, 5);
    const back = await leases.lease(presences.open('alice'));
    assert.equal(back.resumed, undefined);
    assert.equal((await back.lease.callTool('read_text_file', { path: '/workspace/a.txt' })).isError, true);
    await presences.closeAll();
  });

  it('a wipe while the returning user\'s sandbox is being resumed waits for it, then removes it', async () => {
    const { presences, leases, pool, store } = setup({ graceMs: 20 });
    presences.attach('alice');
    const id = await write(leases, presences, 'alice', 'a.txt', 'gone soon');
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    const presence = presences.attach('alice');
    // The resume the socket started is under way (the fake resumes in a microtask): the wipe must not miss it.
    await leases.wipe('alice');
    assert.equal(pool.sandboxes.find((s) => s.id === id)?.released, true, 'the resumed sandbox went with the wipe');
    assert.equal(await store.load('alice'), undefined);
    const back = await leases.lease(presence);
    assert.notEqual(back.lease.sandbox.id, id);
    assert.equal((await back.lease.callTool('read_text_file', { path: '/workspace/a.txt' })).isError, true);
    await presences.closeAll();
  });

  it('a claim another replica took over removes the parked sandbox (giveUp)', async () => {
    const { presences, leases, pool } = setup({ graceMs: 20 });
    presences.attach('alice');
    await write(leases, presences, 'alice', 'a.txt', 'x');
    presences.detach('alice');
    await waitFor('parked', () => pool.parked.has('alice'), 2_000, 5);
    leases.giveUp(['alice']);
    assert.equal(pool.parked.has('alice'), false);
  });

  it('shutdown releases instead of parking', async () => {
    const { presences, leases, pool, state } = setup();
    presences.attach('alice');
    await write(leases, presences, 'alice', 'a.txt', 'x');
    await presences.closeAll();
    assert.equal(pool.parked.size, 0);
    assert.equal(pool.live().length, 0);
    assert.equal(await state.owners.owner('alice'), undefined);
  });
});
