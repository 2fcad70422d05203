import assert from 'node:assert/strict';
import os from 'node:os';
import { after, describe, it } from 'node:test';
import { createSandpool } from '../../src/app/create-sandpool.js';
import { createOrphanSweeper } from '../../src/orphans/orphan-sweeper.js';
import { createDockerRuntime } from '../../src/runtime/docker-runtime.js';
import { LABELS } from '../../src/runtime/types.js';
import { dockerPs, execFileAsync, startReplica, testConfig, testLogger, uniqueReplica } from '../support/helpers.js';

const created: string[] = [];

/** A stopped container carrying sandpool labels, as another replica would have left it. */
async function labelledContainer(labels: Record<string, string>): Promise<string> {
  const args = ['create', ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]), '--network', 'none', 'sandpool-sandbox:latest'];
  const { stdout } = await execFileAsync('docker', args);
  const id = stdout.trim();
  created.push(id);
  return id;
}

after(async () => {
  await execFileAsync('docker', ['rm', '-f', ...created]).catch(() => undefined);
});

describe('orphan sweep', () => {
  it('removes at start-up the containers of a replica that was killed -9', async () => {
    const dead = uniqueReplica('dead');
    // Ready once the doomed replica has warmed up.
    const doomed = await startReplica({ REPLICA_ID: dead, POOL_MIN_SIZE: '2' }, /Initialized with 2 idle containers/, 30_000);
    doomed.signal('SIGKILL');
    await doomed.exited;
    const leftover = await dockerPs({ [LABELS.replica]: dead });
    assert.equal(leftover.length, 2, 'kill -9 should have left its containers behind');

    const survivor = await createSandpool(testConfig({ POOL_MIN_SIZE: '1' }));
    try {
      // The start-up sweep runs before createSandpool resolves.
      assert.deepEqual(await dockerPs({ [LABELS.replica]: dead }), []);
      const metrics = await (await fetch(`${survivor.url}/metrics`)).text();
      assert.match(metrics, /^sandpool_orphans_removed_total\{replica="[^"]+"\} 2$/m);
    } finally {
      await survivor.stop();
    }
  });

  it('judges owners: dead pid, own earlier run, unknown old, unknown young, live pid', async () => {
    const me = uniqueReplica('me');
    const base = { [LABELS.app]: 'sandpool', [LABELS.pool]: 'default' };
    const now = Date.now();
    const deadPid = await labelledContainer({ ...base, [LABELS.replica]: 'other-a', [LABELS.owner]: `${os.hostname()}/999999`, [LABELS.created]: String(now) });
    const ownEarlierRun = await labelledContainer({ ...base, [LABELS.replica]: me, [LABELS.owner]: 'gone-host/1', [LABELS.created]: String(now) });
    const unknownOld = await labelledContainer({ ...base, [LABELS.replica]: 'other-b', [LABELS.owner]: 'far-host/1', [LABELS.created]: String(now - 2 * 3_600_000) });
    const unknownYoung = await labelledContainer({ ...base, [LABELS.replica]: 'other-c', [LABELS.owner]: 'far-host/1', [LABELS.created]: String(now) });
    // A live process on this host (the test runner itself) owns this one, however old.
    const livePid = await labelledContainer({ ...base, [LABELS.replica]: 'other-d', [LABELS.owner]: `${os.hostname()}/${process.pid}`, [LABELS.created]: String(now - 48 * 3_600_000) });

    const sweeper = createOrphanSweeper({
      runtime: createDockerRuntime(),
      replicaId: me,
      owner: `${os.hostname()}/${process.pid}-sweeper`,
      ownedIds: () => new Set(),
      logger: testLogger(),
      graceMs: 3_600_000,
      // No shared heartbeats here: liveness is judged from the labels alone.
      isReplicaLive: async () => false,
      deadReplicaGraceMs: 300_000,
      onRemoved: () => undefined,
    });
    const removed = new Set(await sweeper.sweep());
    assert.equal(removed.has(deadPid), true, 'dead owner pid on this host');
    assert.equal(removed.has(ownEarlierRun), true, 'same REPLICA_ID from an earlier run');
    assert.equal(removed.has(unknownOld), true, 'unknown replica older than the grace period');
    assert.equal(removed.has(unknownYoung), false, 'unknown replica within the grace period');
    assert.equal(removed.has(livePid), false, 'owner process alive on this host');
    const remaining = await dockerPs({ [LABELS.app]: 'sandpool' });
    assert.ok(remaining.includes(unknownYoung) && remaining.includes(livePid));
    assert.ok(!remaining.includes(deadPid) && !remaining.includes(ownEarlierRun) && !remaining.includes(unknownOld));
  });
});
