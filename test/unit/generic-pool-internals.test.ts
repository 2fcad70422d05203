import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import genericPool from 'generic-pool';
import { assertGenericPoolInternals, installedGenericPoolVersion } from '../../src/pool/generic-pool-internals.js';

/** A generic-pool module object as a later version might look. */
function standIn(overrides: { Pool?: unknown; drop?: Array<'_ensureMinimum' | '_evict'> } = {}): Record<string, unknown> {
  class Pool {
    constructor(_evictor: unknown, _deque: unknown, _priorityQueue: unknown, _factory: unknown, _options: unknown) {}
    _ensureMinimum(): void {}
    _evict(): void {}
  }
  for (const member of overrides.drop ?? []) Object.defineProperty(Pool.prototype, member, { value: undefined });
  return { Pool: 'Pool' in overrides ? overrides.Pool : Pool, Deque: class {}, PriorityQueue: class {} };
}

describe('generic-pool internals check', () => {
  it('passes for the installed, pinned generic-pool', () => {
    assert.equal(installedGenericPoolVersion(), '3.9.0');
    assert.doesNotThrow(() => assertGenericPoolInternals(genericPool, installedGenericPoolVersion()));
  });

  it('names the version and the missing private method', () => {
    assert.throws(
      () => assertGenericPoolInternals(standIn({ drop: ['_ensureMinimum'] }), '4.0.0'),
      (err: Error) => {
        assert.match(err.message, /^generic-pool 4\.0\.0 lacks Pool#_ensureMinimum\(\)/);
        assert.match(err.message, /3\.9\.0/);
        return true;
      },
    );
    assert.throws(() => assertGenericPoolInternals(standIn({ drop: ['_evict'] }), '4.0.0'), /generic-pool 4\.0\.0 lacks Pool#_evict\(\)/);
  });

  it('names a missing Pool export or a changed constructor', () => {
    assert.throws(() => assertGenericPoolInternals(standIn({ Pool: undefined }), '4.0.0'), /generic-pool 4\.0\.0 lacks the exported Pool class/);
    assert.throws(
      () => assertGenericPoolInternals(standIn({ Pool: class { constructor(_factory: unknown, _options: unknown) {} } }), '4.0.0'),
      /lacks the Pool constructor taking \(Evictor, Deque, PriorityQueue, factory, options\)/,
    );
    assert.throws(() => assertGenericPoolInternals({ ...standIn(), Deque: undefined }, '4.0.0'), /lacks the exported Deque class/);
  });
});
