import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REDIS_UNREACHABLE, isHealthy } from '../../src/http/healthcheck.js';

describe('container healthcheck (compose and swarm stacks)', () => {
  it('is healthy when the replica is ready', () => {
    assert.equal(isHealthy(200, { ready: true }), true);
  });

  it('is not while the pool warms up, fails, or the replica drains', () => {
    assert.equal(isHealthy(503, { ready: false, reasons: ['sandbox pool warming up'] }), false);
    assert.equal(isHealthy(503, { ready: false, reasons: ['sandbox pool not ready: engine gone'] }), false);
    assert.equal(isHealthy(503, { ready: false, reasons: ['shutting down'] }), false);
    assert.equal(isHealthy(503, { ready: false, reasons: ['sandbox pool warming up', REDIS_UNREACHABLE] }), false);
  });

  it('stays healthy when Redis is the only thing missing: replacing the replica would not bring it back', () => {
    assert.equal(isHealthy(503, { ready: false, reasons: [REDIS_UNREACHABLE] }), true);
  });

  it('is not for anything it cannot read', () => {
    assert.equal(isHealthy(503, undefined), false);
    assert.equal(isHealthy(503, { reasons: [] }), false);
    assert.equal(isHealthy(500, { reasons: [REDIS_UNREACHABLE] }), false);
    assert.equal(isHealthy(404, 'not found'), false);
  });
});
