import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isHealthy } from '../../src/http/healthcheck.js';
import { notReadyReasons } from '../../src/http/readiness.js';

const reasons = (input: Parameters<typeof notReadyReasons>[0]) => ({ ready: false, reasons: notReadyReasons(input) });
const pool = (ready: boolean, lastError: string | null = null) => ({ ready, lastError });

describe('readiness reasons (/ready)', () => {
  it('are codes with generic words: an engine\'s or proxy\'s error never reaches the public answer', () => {
    const failing = notReadyReasons({ draining: false, pool: pool(false, 'connect EACCES /run/sandpool/docker.sock: secret-ish detail'), stateHealthy: true });
    assert.deepEqual(failing, [{ code: 'POOL_FAILING', message: 'sandbox pool cannot start sandboxes right now' }]);
    assert.deepEqual(notReadyReasons({ draining: false, pool: pool(true), stateHealthy: true }), []);
    assert.deepEqual(notReadyReasons({ draining: true, pool: pool(false), stateHealthy: false }).map((r) => r.code), ['SHUTTING_DOWN']);
    assert.deepEqual(notReadyReasons({ draining: false, pool: pool(false), stateHealthy: false }).map((r) => r.code), ['POOL_WARMING', 'REDIS_UNREACHABLE']);
  });
});

describe('container healthcheck (compose and swarm stacks)', () => {
  it('is healthy when the replica is ready', () => {
    assert.equal(isHealthy(200, { ready: true }), true);
  });

  it('is not while the pool warms up, fails, or the replica drains', () => {
    assert.equal(isHealthy(503, reasons({ draining: false, pool: pool(false), stateHealthy: true })), false);
    assert.equal(isHealthy(503, reasons({ draining: false, pool: pool(false, 'engine gone'), stateHealthy: true })), false);
    assert.equal(isHealthy(503, reasons({ draining: true, pool: pool(true), stateHealthy: true })), false);
    assert.equal(isHealthy(503, reasons({ draining: false, pool: pool(false), stateHealthy: false })), false);
  });

  it('stays healthy when Redis is the only thing missing: replacing the replica would not bring it back', () => {
    assert.equal(isHealthy(503, reasons({ draining: false, pool: pool(true), stateHealthy: false })), true);
  });

  it('decides on codes, never on wording, and is not for anything it cannot read', () => {
    assert.equal(isHealthy(503, { ready: false, reasons: ['shared state is unreachable'] }), false, 'text is not a code');
    assert.equal(isHealthy(503, undefined), false);
    assert.equal(isHealthy(503, { reasons: [] }), false);
    assert.equal(isHealthy(500, reasons({ draining: false, pool: pool(true), stateHealthy: false })), false);
    assert.equal(isHealthy(404, 'not found'), false);
  });
});
