import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isHealthy } from '../../src/http/healthcheck.js';
import { notReadyReasons } from '../../src/http/readiness.js';

type Input = Parameters<typeof notReadyReasons>[0];
const pool = (ready: boolean, lastError: string | null = null) => ({ ready, lastError });
/** Not draining, Redis reachable, a pool that never warmed: each case changes what it names. */
const input = (over: Partial<Input> = {}): Input => ({ draining: false, pool: pool(false), poolHasWarmed: false, stateHealthy: true, ...over });
const reasons = (over: Partial<Input> = {}) => ({ ready: false, reasons: notReadyReasons(input(over)) });

describe('readiness reasons (/ready)', () => {
  it('are codes with generic words: an engine\'s or proxy\'s error never reaches the public answer', () => {
    const failing = notReadyReasons(input({ pool: pool(false, 'connect EACCES /run/sandpool/docker.sock: secret-ish detail') }));
    assert.deepEqual(failing, [{ code: 'POOL_FAILING', message: 'sandbox pool cannot start sandboxes right now' }]);
    assert.deepEqual(notReadyReasons(input({ pool: pool(true) })), []);
    assert.deepEqual(notReadyReasons(input({ draining: true, stateHealthy: false })).map((r) => r.code), ['SHUTTING_DOWN']);
    assert.deepEqual(notReadyReasons(input({ stateHealthy: false })).map((r) => r.code), ['POOL_WARMING', 'REDIS_UNREACHABLE']);
  });

  it('names a pool that cannot start sandboxes POOL_FAILING until it was warm once, POOL_DEGRADED after', () => {
    assert.deepEqual(notReadyReasons(input({ pool: pool(false, 'create timed out') })).map((r) => r.code), ['POOL_FAILING']);
    assert.deepEqual(notReadyReasons(input({ pool: pool(false, 'create timed out'), poolHasWarmed: true })), [{ code: 'POOL_DEGRADED', message: 'sandbox pool cannot start sandboxes right now' }]);
  });
});

describe('container healthcheck (compose and swarm stacks)', () => {
  it('is healthy when the replica is ready', () => {
    assert.equal(isHealthy(200, { ready: true }), true);
  });

  it('is not while the pool warms up or fails before it ever served, or the replica drains', () => {
    assert.equal(isHealthy(503, reasons()), false);
    assert.equal(isHealthy(503, reasons({ pool: pool(false, 'engine gone') })), false);
    assert.equal(isHealthy(503, reasons({ draining: true, pool: pool(true) })), false);
    assert.equal(isHealthy(503, reasons({ stateHealthy: false })), false);
    assert.equal(isHealthy(503, reasons({ pool: pool(false, 'engine gone'), poolHasWarmed: true, draining: true })), false, 'draining wins');
  });

  it('stays healthy when Redis is the only thing missing: replacing the replica would not bring it back', () => {
    assert.equal(isHealthy(503, reasons({ pool: pool(true), stateHealthy: false })), true);
  });

  it('stays healthy when a replica that served cannot start sandboxes right now (under load): replacing it would drop every user\'s sandbox', () => {
    assert.equal(isHealthy(503, reasons({ pool: pool(false, 'create timed out'), poolHasWarmed: true })), true);
    assert.equal(isHealthy(503, reasons({ pool: pool(false, 'create timed out'), poolHasWarmed: true, stateHealthy: false })), true);
  });

  it('decides on codes, never on wording, and is not for anything it cannot read', () => {
    assert.equal(isHealthy(503, { ready: false, reasons: ['shared state is unreachable'] }), false, 'text is not a code');
    assert.equal(isHealthy(503, undefined), false);
    assert.equal(isHealthy(503, { reasons: [] }), false);
    assert.equal(isHealthy(500, reasons({ pool: pool(true), stateHealthy: false })), false);
    assert.equal(isHealthy(404, 'not found'), false);
  });
});
