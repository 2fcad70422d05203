import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WorkspaceCorruptError, type WorkspaceSnapshot, type WorkspaceStore } from '../../src/workspace/workspace-store.js';

/** A snapshot whose archive is `bytes` random bytes (binary: every byte value occurs). */
export function snapshot(version: number, bytes = 4096): WorkspaceSnapshot {
  return { version, takenAtMs: Date.now(), files: 3, sizeBytes: bytes * 2, archive: randomBytes(bytes) };
}

/**
 * One contract, every WorkspaceStore: what passes here for the fs store must
 * pass for Redis. `corrupt` damages a user's stored snapshot the way a torn
 * write or a bad disk would.
 */
export function workspaceStoreContract(name: string, make: () => Promise<{ store: WorkspaceStore; corrupt(userId: string): Promise<void> }>): void {
  describe(`WorkspaceStore contract: ${name}`, () => {
    let store: WorkspaceStore;
    let corrupt: (userId: string) => Promise<void>;
    const user = (): string => `u-${randomBytes(4).toString('hex')}`;
    before(async () => {
      ({ store, corrupt } = await make());
    });
    after(() => store.close());

    it('gives back exactly what was saved, binary-safe, and nothing for a user it never saw', async () => {
      const u = user();
      assert.equal(await store.load(u), undefined);
      const s = snapshot(10, 256 * 1024);
      assert.equal(await store.save(u, s), 'stored');
      const back = await store.load(u);
      assert.ok(back);
      assert.equal(back.version, 10);
      assert.equal(back.files, 3);
      assert.equal(back.sizeBytes, s.sizeBytes);
      assert.ok(back.archive.equals(s.archive), 'byte for byte');
    });

    it('never lets an older snapshot overwrite a newer one, whatever order saves arrive in', async () => {
      const u = user();
      assert.equal(await store.save(u, snapshot(20)), 'stored');
      assert.equal(await store.save(u, snapshot(19)), 'stale');
      assert.equal(await store.save(u, snapshot(20)), 'stale', 'the same version is not stored twice');
      assert.equal((await store.load(u))?.version, 20);
      const racing = [5, 40, 17, 33, 39, 2].map((v) => snapshot(v));
      await Promise.all(racing.map((s) => store.save(u, s)));
      const kept = await store.load(u);
      assert.equal(kept?.version, 40);
      assert.ok(kept.archive.equals(racing[1]?.archive ?? Buffer.alloc(0)), 'the archive that came with the newest version');
    });

    it('keeps users apart and forgets one on remove', async () => {
      const [a, b] = [user(), user()];
      await store.save(a, snapshot(1));
      assert.equal(await store.load(b), undefined);
      await store.remove(a);
      assert.equal(await store.load(a), undefined);
      assert.equal(await store.save(a, snapshot(1)), 'stored', 'a removed user starts again');
    });

    it('reports a damaged snapshot as corrupt instead of handing it out, and a good save replaces it', async () => {
      const u = user();
      await store.save(u, snapshot(7));
      await corrupt(u);
      await assert.rejects(store.load(u), WorkspaceCorruptError);
      assert.equal(await store.save(u, snapshot(8)), 'stored');
      assert.equal((await store.load(u))?.version, 8);
    });
  });
}
