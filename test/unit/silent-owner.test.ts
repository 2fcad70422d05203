import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplicaSilentError } from '../../src/cluster/replica-bus.js';
import { callOwnerUnlessSilent } from '../../src/cluster/silent-owner.js';
import { sleep } from '../../src/util/async.js';

const wait = { lapseMs: 300, pollMs: 10 };

/** Calls as a bus would: `silent` targets throw ReplicaSilentError (with `late` as their late answer), the others answer their name. */
function bus(silent: string[], late?: Promise<string>): { call: (target: string) => Promise<string>; targets: string[] } {
  const targets: string[] = [];
  return {
    targets,
    call: async (target) => {
      targets.push(target);
      if (silent.includes(target)) throw new ReplicaSilentError(target, late);
      return `answer of ${target}`;
    },
  };
}

describe('a silent owner waited out (chat messages and routed tool calls)', () => {
  it('an owner that answers: its answer, no waiting', async () => {
    const b = bus([]);
    assert.deepEqual(await callOwnerUnlessSilent('a', b.call, async () => 'a', wait), { owner: 'a', answer: 'answer of a' });
  });

  it('a dead owner: once its claim lapses, nobody (the caller serves the user itself)', async () => {
    const died = Date.now();
    const b = bus(['a']);
    const routed = await callOwnerUnlessSilent('a', b.call, async () => (Date.now() - died < 50 ? 'a' : undefined), wait);
    assert.deepEqual(routed, { owner: undefined });
    assert.deepEqual(b.targets, ['a']);
  });

  it('the sandbox taken over meanwhile: the call goes to the new owner', async () => {
    const died = Date.now();
    const b = bus(['a']);
    const routed = await callOwnerUnlessSilent('a', b.call, async () => (Date.now() - died < 50 ? 'a' : 'b'), wait);
    assert.deepEqual(routed, { owner: 'b', answer: 'answer of b' });
    assert.deepEqual(b.targets, ['a', 'b']);
  });

  it('live and silent to the deadline: "try again"', async () => {
    const b = bus(['a']);
    await assert.rejects(callOwnerUnlessSilent('a', b.call, async () => 'a', wait), (err: unknown) => err instanceof ReplicaSilentError && /did not answer; try again/.test(err.message));
  });

  it('a live owner that runs the call without acking it (the previous version): its late answer, before or after the deadline', async () => {
    const soon = bus(['a'], sleep(50).then(() => 'late answer'));
    assert.deepEqual(await callOwnerUnlessSilent('a', soon.call, async () => 'a', wait), { owner: 'a', answer: 'late answer' });
    const afterDeadline = bus(['a'], sleep(wait.lapseMs + 200).then(() => 'later answer'));
    assert.deepEqual(await callOwnerUnlessSilent('a', afterDeadline.call, async () => 'a', wait), { owner: 'a', answer: 'later answer' });
    const failing = bus(['a'], sleep(50).then(() => Promise.reject(new Error('the call failed there'))));
    await assert.rejects(callOwnerUnlessSilent('a', failing.call, async () => 'a', wait), /the call failed there/);
  });

  it('a late answer that never comes from a dead owner does not hold the user', async () => {
    const died = Date.now();
    const b = bus(['a'], new Promise<string>(() => undefined));
    assert.deepEqual(await callOwnerUnlessSilent('a', b.call, async () => (Date.now() - died < 50 ? 'a' : undefined), wait), { owner: undefined });
  });
});
