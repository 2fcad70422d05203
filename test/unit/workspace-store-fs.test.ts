import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createFsWorkspaceStore } from '../../src/workspace/fs-store.js';
import { createVersionClock, decodeSnapshot, encodeSnapshot, WorkspaceCorruptError } from '../../src/workspace/workspace-store.js';
import { snapshot, workspaceStoreContract } from '../support/workspace-store-contract.js';

const fileOf = (dir: string, userId: string): string => path.join(dir, `${createHash('sha256').update(userId).digest('hex')}.snapshot`);

workspaceStoreContract('fs', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-ws-'));
  return {
    store: createFsWorkspaceStore({ dir }),
    corrupt: async (userId) => {
      const file = fileOf(dir, userId);
      const bytes = readFileSync(file);
      writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    },
  };
});

describe('fs workspace store', () => {
  it('writes by rename: a temp file left by a crash is ignored, files are not named after user ids', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-ws-'));
    const store = createFsWorkspaceStore({ dir });
    await store.save('../../etc/passwd', snapshot(1));
    // What a crash between write and rename leaves behind.
    writeFileSync(`${fileOf(dir, '../../etc/passwd')}.dead.tmp`, 'half a snapshot');
    assert.equal((await store.load('../../etc/passwd'))?.version, 1);
    assert.ok(readdirSync(dir).every((f) => /^[0-9a-f]{64}\.snapshot(\.[0-9a-z]+\.tmp)?$/.test(f)), readdirSync(dir).join(' '));
  });
});

describe('snapshot encoding and versions', () => {
  it('round-trips, and rejects a wrong magic, a cut header and a changed archive', () => {
    const s = snapshot(3);
    const bytes = encodeSnapshot(s);
    assert.ok(decodeSnapshot(bytes).archive.equals(s.archive));
    assert.throws(() => decodeSnapshot(Buffer.from('nonsense')), WorkspaceCorruptError);
    assert.throws(() => decodeSnapshot(bytes.subarray(0, 14)), WorkspaceCorruptError);
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0xff;
    assert.throws(() => decodeSnapshot(tampered), /checksum/);
  });

  it('orders versions by time, strictly increasing within a process even in the same millisecond', () => {
    const next = createVersionClock(() => 1_000);
    const [a, b, c] = [next(), next(), next()];
    assert.ok(a < b && b < c);
    assert.ok(a >= 1_000_000);
  });
});
