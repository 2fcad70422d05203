import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { startSandbox } from '../../src/mcp/sandbox.js';
import { createSpecMaker } from '../../src/pool/sandbox-spec.js';
import { createProcessRuntime } from '../../src/runtime/process-runtime.js';
import { createFsWorkspaceStore } from '../../src/workspace/fs-store.js';
import { createWorkspaces, saveNotice } from '../../src/workspace/workspaces.js';
import { testConfig, testLogger } from '../support/helpers.js';

const FIXTURE = path.resolve('test/fixtures/flooding-workspace-mcp.mjs');

describe('what a sandbox may send (the workspace channel\'s bounds)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sandpool-limits-'));
  const store = createFsWorkspaceStore({ dir, ttlMs: 60_000 });
  after(() => store.close());

  for (const [flood, maxBytes] of [['chunks', 1_048_576], ['big-chunk', 1_048_576], ['endless', 8 * 1_048_576]] as const) {
    it(`a sandbox that floods a snapshot (${flood}) is removed, the user is told, and the last good snapshot stays`, { timeout: 30_000 }, async () => {
      process.env.FLOOD = flood;
      const cfg = testConfig();
      const spec = createSpecMaker({ pool: cfg.pool, sandbox: cfg.sandbox, replicaId: 'limits-test', poolName: 'limits' })();
      const sandbox = await startSandbox(createProcessRuntime({ serverEntry: FIXTURE }), spec, { logger: testLogger() });
      try {
        const userId = `flooder-${flood}`;
        const good = Buffer.from('the last good archive');
        await store.save(userId, { version: 1, takenAtMs: Date.now(), files: 1, sizeBytes: good.length, archive: good });
        const saved: string[] = [];
        const workspaces = createWorkspaces({ store, maxBytes, timeoutMs: 20_000, logger: testLogger(), observer: { restored: () => undefined, saved: (_ms, _bytes, kind) => saved.push(kind) } });
        assert.ok(sandbox.workspace, 'the fixture offers the channel');
        assert.equal(sandbox.isUsable(), true);

        workspaces.markChanged(sandbox);
        const outcome = await workspaces.save(userId, sandbox);

        assert.equal(outcome.kind, 'rejected');
        assert.match(saveNotice(outcome) ?? '', /sent more data than a snapshot may hold, so it was removed; your last saved files come back in a fresh sandbox/);
        assert.deepEqual(saved, ['rejected']);
        assert.equal(sandbox.isUsable(), false);
        assert.match(sandbox.failureReason() ?? '', /^removed: the sandbox's snapshot/);
        const exit = await sandbox.process.exited;
        assert.match(exit.reason, /killed|exited/, 'its process is gone');
        assert.deepEqual((await store.load(userId))?.archive, good, 'the last good snapshot is untouched');
      } finally {
        delete process.env.FLOOD;
        await sandbox.destroy();
      }
    });
  }
});
