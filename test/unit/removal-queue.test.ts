import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRemovalQueue } from '../../src/pool/removal-queue.js';
import { sleep } from '../../src/util/async.js';

/** A removal the test finishes by hand, noting when it began. */
function removal(log: string[], name: string): { work: () => Promise<void>; finish: () => void } {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    work: async () => {
      log.push(`start ${name}`);
      await done;
    },
    finish: () => finish(),
  };
}

describe('removal queue (removals off the path of starts)', () => {
  it('runs at most `concurrency` removals at once, in order', async () => {
    const log: string[] = [];
    const q = createRemovalQueue({ concurrency: 2, startsBusy: () => false, maxDeferMs: 1_000 });
    const [a, b, c] = [removal(log, 'a'), removal(log, 'b'), removal(log, 'c')];
    const done = [q.run(a.work), q.run(b.work), q.run(c.work)];
    await sleep(10);
    assert.deepEqual(log, ['start a', 'start b']);
    assert.equal(q.pending(), 3);
    a.finish();
    await done[0];
    await sleep(0);
    assert.deepEqual(log, ['start a', 'start b', 'start c']);
    b.finish();
    c.finish();
    await Promise.all(done);
    assert.equal(q.pending(), 0);
  });

  it('waits while sandboxes start, and runs once they are done', async () => {
    const log: string[] = [];
    let busy = true;
    const q = createRemovalQueue({ concurrency: 1, startsBusy: () => busy, maxDeferMs: 5_000, recheckMs: 5 });
    const a = removal(log, 'a');
    const done = q.run(a.work);
    await sleep(50);
    assert.deepEqual(log, [], 'removed while a start ran');
    busy = false;
    await sleep(30);
    assert.deepEqual(log, ['start a']);
    a.finish();
    await done;
  });

  it('waits for starts at most maxDeferMs: used sandboxes never pile up', async () => {
    const log: string[] = [];
    const q = createRemovalQueue({ concurrency: 1, startsBusy: () => true, maxDeferMs: 80, recheckMs: 5 });
    const a = removal(log, 'a');
    const started = Date.now();
    const done = q.run(a.work);
    while (log.length === 0) await sleep(5);
    const waited = Date.now() - started;
    assert.ok(waited >= 70 && waited < 1_000, `waited ${waited} ms`);
    a.finish();
    await done;
  });

  it('hurry (drain) stops waiting for starts and raises the concurrency', async () => {
    const log: string[] = [];
    const q = createRemovalQueue({ concurrency: 1, startsBusy: () => true, maxDeferMs: 60_000, recheckMs: 5 });
    const jobs = [removal(log, 'a'), removal(log, 'b'), removal(log, 'c')];
    const done = jobs.map((j) => q.run(j.work));
    await sleep(20);
    assert.deepEqual(log, []);
    q.hurry(8);
    await sleep(0);
    assert.deepEqual(log, ['start a', 'start b', 'start c']);
    for (const j of jobs) j.finish();
    await Promise.all(done);
  });

  it('a failed removal settles and does not stop the queue', async () => {
    const q = createRemovalQueue({ concurrency: 1, startsBusy: () => false, maxDeferMs: 1_000 });
    let ran = false;
    await q.run(() => Promise.reject(new Error('engine said no')));
    await q.run(async () => {
      ran = true;
    });
    assert.equal(ran, true);
  });
});
