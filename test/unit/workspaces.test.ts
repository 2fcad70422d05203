import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { sleep } from '../../src/util/async.js';
import { createFsWorkspaceStore } from '../../src/workspace/fs-store.js';
import { createWorkspaceStore, snapshotRedisOf } from '../../src/workspace/select-store.js';
import type { WorkspaceStore } from '../../src/workspace/workspace-store.js';
import { createWorkspaces, type Workspaces } from '../../src/workspace/workspaces.js';
import { createChatHarness, type ChatHarness } from '../support/chat-harness.js';
import { createPlanCatalog, type PlanCatalog } from '../../src/plans/plans.js';
import { createFakePool } from '../support/fake-pool.js';
import { testLogger } from '../support/helpers.js';

const harnesses: ChatHarness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

function setup(options: { maxBytes?: number; idleMs?: number; store?: WorkspaceStore; plans?: PlanCatalog } = {}): { h: ChatHarness; store: WorkspaceStore; workspaces: Workspaces; observed: string[] } {
  const store = options.store ?? createFsWorkspaceStore({ dir: mkdtempSync(path.join(os.tmpdir(), 'sandpool-wsu-')) });
  const observed: string[] = [];
  const workspaces = createWorkspaces({
    store,
    maxBytes: options.maxBytes ?? 1_000_000,
    timeoutMs: 2_000,
    logger: testLogger(),
    observer: { saved: (_ms, _b, kind) => void observed.push(`save:${kind}`), restored: (_ms, _b, kind) => void observed.push(`restore:${kind}`) },
  });
  const h = createChatHarness({
    pool: createFakePool({ snapshots: true }),
    workspaces,
    settings: { sessionIdleTimeoutMs: options.idleMs ?? 60_000 },
    workspaceMaxBytes: options.maxBytes ?? 1_000_000,
    ...(options.plans ? { plans: options.plans } : {}),
  });
  harnesses.push(h);
  return { h, store, workspaces, observed };
}


describe('workspaces: a returning user finds their files', () => {
  it('saves after a call that writes (not after one that reads), and restores into the next sandbox after an idle release', async () => {
    const { h, store, observed } = setup({ idleMs: 1_000 });
    await h.chat.connect('alice');
    await h.converse('alice', 'write "kept" to /workspace/a.txt');
    assert.equal((await store.load('alice'))?.files, 1, 'saved before message:done');
    await h.converse('alice', 'list files in /workspace');
    assert.deepEqual(observed, ['restore:none', 'save:saved'], 'a read leaves nothing to save');
    await sleep(1_300);
    assert.equal(h.pool.live().length, 0, 'the idle sandbox went');
    const { results } = await h.converse('alice', 'read /workspace/a.txt');
    assert.equal(results[0]?.content, 'kept', 'back, with no "files are gone" notice');
    assert.equal(h.pool.sandboxes.length, 2);
  });

  it('never restores one user\'s files into another user\'s sandbox', async () => {
    const { h } = setup();
    await h.converse('alice', 'write "alice only" to /workspace/secret.txt');
    const { results } = await h.converse('bob', 'read /workspace/secret.txt');
    assert.equal(results[0]?.ok, false);
    assert.doesNotMatch(String(results[0]?.content), /alice only/);
  });

  it('over WORKSPACE_MAX_BYTES tells the user, and the last good snapshot stays', async () => {
    const { h, store } = setup({ maxBytes: 40 });
    await h.converse('alice', 'write "small" to /workspace/a.txt');
    const good = await store.load('alice');
    const { results } = await h.converse('alice', `write "${'x'.repeat(100)}" to /workspace/b.txt`);
    assert.match(String(results[0]?.content), /more than the 40 bytes a snapshot may keep: this change was not saved, and your last saved files stay as they were/);
    assert.equal((await store.load('alice'))?.version, good?.version);
  });

  it('a plan\'s workspaceMaxBytes caps its users\' snapshots instead of WORKSPACE_MAX_BYTES', async () => {
    const plans = createPlanCatalog({
      plans: { free: { callsPerHour: null, callsPerDay: null, callsPerMonth: null }, roomy: { callsPerHour: null, callsPerDay: null, callsPerMonth: null, workspaceMaxBytes: 4096 } },
      defaultPlan: 'free',
      maxInFlight: 5,
      workspaceMaxBytes: 512,
    });
    const { h, store } = setup({ maxBytes: 512, plans });
    const big = `write "${'y'.repeat(900)}" to /workspace/big.txt`;
    const { results: refused } = await h.converse('small-user', big);
    assert.match(String(refused[0]?.content), /more than the 512 bytes a snapshot may keep/);
    assert.equal(await store.load('small-user'), undefined);
    const { results: kept } = await h.converse('roomy-user', big, true, 'roomy');
    assert.doesNotMatch(String(kept[0]?.content), /not saved/);
    assert.equal((await store.load('roomy-user'))?.files, 1);
  });

  it('says a damaged snapshot could not be restored, starts an empty workspace, and keeps serving', async () => {
    const { h, store } = setup();
    await h.converse('alice', 'write "x" to /workspace/a.txt');
    await h.chat.wipeWorkspace('alice');
    await store.save('alice', { version: Number.MAX_SAFE_INTEGER, takenAtMs: Date.now(), files: 1, sizeBytes: 1, archive: Buffer.from('not an archive') });
    const { results, end } = await h.converse('alice', 'read /workspace/a.txt');
    assert.equal(end.event, 'message:done');
    assert.match(String(results[0]?.content), /Your saved files could not be restored \(your saved files are damaged\), so this ran in a fresh, empty workspace/);
    assert.doesNotMatch(String(results[0]?.content), /files from before are gone/, 'one notice, not two');
  });

  it('wipes a user\'s files: the snapshot and the live sandbox, so the next call starts empty', async () => {
    const { h, store } = setup();
    await h.converse('alice', 'write "gone soon" to /workspace/a.txt');
    await h.chat.wipeWorkspace('alice');
    assert.equal(await store.load('alice'), undefined);
    assert.equal(h.pool.live().length, 0);
    const { results } = await h.converse('alice', 'read /workspace/a.txt');
    assert.equal(results[0]?.ok, false);
  });
});

describe('the snapshot store WORKSPACE_STORE selects', () => {
  it('keeps snapshots in the shared state\'s Redis, or in their own when WORKSPACE_REDIS_URL names another', () => {
    const of = (env: Record<string, string>): ReturnType<typeof snapshotRedisOf> => snapshotRedisOf(loadConfig(env));
    assert.deepEqual(of({}), { kind: 'none' }, 'fs by default');
    assert.deepEqual(of({ WORKSPACE_STORE: 'none', REDIS_URL: 'redis://a:6379' }), { kind: 'none' });
    assert.deepEqual(of({ REDIS_URL: 'redis://a:6379' }), { kind: 'shared' });
    assert.deepEqual(of({ REDIS_URL: 'redis://a:6379', WORKSPACE_REDIS_URL: 'redis://a:6379' }), { kind: 'shared' });
    assert.deepEqual(of({ REDIS_URL: 'redis://a:6379', WORKSPACE_REDIS_URL: 'redis://b:6379' }), { kind: 'own', url: 'redis://b:6379' });
    assert.deepEqual(of({ WORKSPACE_REDIS_URL: 'redis://b:6379' }), { kind: 'own', url: 'redis://b:6379' });
  });

  it('fails start-up with a clear error, never falls back, when the redis store has no connection', () => {
    const settings = loadConfig({ REDIS_URL: 'redis://a:6379' }).workspace;
    assert.throws(() => createWorkspaceStore(settings, { redis: undefined, prefix: 'x:' }), /WORKSPACE_STORE=redis, but no Redis connection/);
  });
});
