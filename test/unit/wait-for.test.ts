import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { httpOk } from '../../scripts/lib/start-process.js';
import { startHangUpServer } from '../support/hang-up-server.js';
import { waitFor } from '../support/helpers.js';

describe('waitFor (test support)', () => {
  it('returns the first value that is neither undefined nor false, after retrying failures', async () => {
    let calls = 0;
    const value = await waitFor('the third call', () => {
      calls += 1;
      if (calls === 1) throw new Error('not yet');
      return calls === 3 ? 'three' : false;
    }, 2_000, 10);
    assert.equal(value, 'three');
    assert.equal(calls, 3);
  });

  it('gives up at its deadline on an attempt that never settles, naming what it waited for', async () => {
    // Nothing else holds the event loop here: without its own timer, waitFor
    // would leave the test pending with the loop already empty.
    await assert.rejects(waitFor('a promise that never settles', () => new Promise<boolean>(() => undefined), 300, 50), /timed out after 300 ms waiting for a promise that never settles: .*an attempt at a promise that never settles timed out/);
  });

  it('gets past a server that hangs up on its first connections (a probe with a timeout retries)', async () => {
    const server = await startHangUpServer(2);
    try {
      assert.equal(await waitFor('the server to answer', httpOk(server.url, 300), 10_000, 50), true);
      assert.equal(server.connections(), 3);
    } finally {
      await server.close();
    }
  });
});
