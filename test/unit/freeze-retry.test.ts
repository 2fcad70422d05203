import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pauseRetryingFreeze } from '../../src/runtime/freeze-retry.js';

/** A pause that fails with each of `errors` in turn, then succeeds; counts its calls. */
function flakyPause(errors: Error[]): { pause: () => Promise<void>; calls: () => number } {
  let calls = 0;
  return {
    pause: async () => {
      const err = errors[calls++];
      if (err) throw err;
    },
    calls: () => calls,
  };
}

const freezeFailed = (): Error => new Error('(HTTP code 500) server error - Cannot pause container ffc7: OCI runtime pause failed: unable to freeze: unknown');

describe('pause retrying a freezer that could not settle', () => {
  it('asks again after "unable to freeze" and succeeds', async () => {
    const p = flakyPause([freezeFailed(), freezeFailed()]);
    await pauseRetryingFreeze(p.pause, [1, 1]);
    assert.equal(p.calls(), 3);
  });

  it('gives up after its last wait with the engine\'s own error', async () => {
    const p = flakyPause([freezeFailed(), freezeFailed(), freezeFailed()]);
    await assert.rejects(pauseRetryingFreeze(p.pause, [1, 1]), /unable to freeze/);
    assert.equal(p.calls(), 3);
  });

  it('does not retry any other failure (a gone container, a timeout)', async () => {
    const p = flakyPause([new Error('(HTTP code 404) no such container')]);
    await assert.rejects(pauseRetryingFreeze(p.pause, [1, 1]), /no such container/);
    assert.equal(p.calls(), 1);
  });
});
