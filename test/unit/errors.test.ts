import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelledError, SandboxGoneError, SandpoolError, toErrorBody } from '../../src/errors.js';
import { ERROR_CODES } from '../../src/protocol/errors.js';

describe('errors on the wire', () => {
  it('keeps a SandpoolError\'s code and message', () => {
    assert.deepEqual(toErrorBody(new SandpoolError('POOL_EXHAUSTED', 'none free')), { code: 'POOL_EXHAUSTED', message: 'none free' });
    assert.equal(toErrorBody(new SandboxGoneError('container exited with code 137')).code, 'SANDBOX_FAILED');
  });

  it('turns a cancellation into SHUTTING_DOWN or CANCELLED, never INTERNAL', () => {
    assert.equal(toErrorBody(new CancelledError('shutdown')).code, 'SHUTTING_DOWN');
    assert.equal(toErrorBody(new CancelledError('user-left')).code, 'CANCELLED');
  });

  it('makes anything else INTERNAL, and every code is one of the protocol\'s', () => {
    assert.equal(toErrorBody(new Error('boom')).code, 'INTERNAL');
    assert.equal(toErrorBody('text').code, 'INTERNAL');
    for (const err of [new SandpoolError('UNAUTHORIZED', 'x'), new CancelledError('user-left'), new TypeError('y')]) {
      assert.ok((ERROR_CODES as readonly string[]).includes(toErrorBody(err).code));
    }
  });
});
