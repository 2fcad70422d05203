import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tenths, toPublicStatus } from '../../src/http/public-status.js';
import type { NotReadyCode, NotReadyReason } from '../../src/http/readiness.js';
import type { PoolStats } from '../../src/pool/pool-stats.js';

function pool(overrides: Partial<PoolStats> = {}): PoolStats {
  return {
    idle: 5, active: 0, parked: 0, maxParked: 0, total: 5, maxPoolSize: 50, minPoolSize: 5, pending: 0, creating: 0,
    spareTarget: 5, arrivalRate: 0, removing: 0, replaced: 0,
    enabled: true, runtime: 'docker', isolated: true, ready: true, draining: false,
    created: 5, destroyed: 0, failed: 0, acquired: 0, consecutiveFailures: 0, lastError: null,
    acquireLatencyMs: { p50: null, p95: null, p99: null }, createLatencyMs: { p50: 640, p95: 700, p99: 700 },
    ...overrides,
  };
}

const reason = (code: NotReadyCode): NotReadyReason => ({ code, message: code });
const [W, F, R, S] = [reason('POOL_WARMING'), reason('POOL_FAILING'), reason('REDIS_UNREACHABLE'), reason('SHUTTING_DOWN')];

describe('public status (GET /status)', () => {
  it('splits capacity into tenths that add up to 10; a share above zero gets at least one', () => {
    assert.deepEqual(tenths([1, 1, 0, 2]), [3, 2, 0, 5]);
    assert.deepEqual(tenths([0, 0, 0, 0]), [0, 0, 0, 0]);
    assert.deepEqual(tenths([1, 0, 0, 99]), [1, 0, 0, 9]);
    assert.deepEqual(tenths([1, 1, 1, 97]), [1, 1, 1, 7]);
    for (const counts of [[3, 7, 1, 39], [50, 0, 0, 0], [1, 2, 3, 4], [0, 1, 0, 0], [17, 4, 2, 977]]) {
      const t = tenths(counts);
      assert.equal(t.reduce((a, b) => a + b, 0), 10, JSON.stringify(counts));
      counts.forEach((n, i) => assert.equal((t[i] ?? 0) > 0, n > 0, `${JSON.stringify(counts)} -> ${JSON.stringify(t)}`));
    }
  });

  it('a warm replica: ready, shares in percent, a warm sandbox available, nothing internal', () => {
    const status = toPublicStatus(pool({ idle: 5, active: 1, total: 6 }), [], false);
    assert.deepEqual(status, {
      status: 'ready',
      ready: true,
      sandboxes: { inUse: 10, warm: 10, starting: 0, free: 80, warmAvailable: true },
      waiting: 'none',
    });
    // No counts, sizes, ids, runtime, errors or latencies.
    assert.doesNotMatch(JSON.stringify(status), /docker|maxPoolSize|replica|lastError|Latency/);
  });

  it('busy when requests wait or no sandbox is warm and there is no room to start one', () => {
    assert.equal(toPublicStatus(pool({ idle: 0, active: 50, total: 50 }), [], false).status, 'busy');
    const queued = toPublicStatus(pool({ idle: 0, active: 40, creating: 10, pending: 7 }), [], false);
    assert.equal(queued.status, 'busy');
    assert.equal(queued.waiting, 'many');
    assert.equal(queued.sandboxes.warmAvailable, false);
    assert.equal(toPublicStatus(pool({ pending: 2 }), [], false).waiting, 'few');
    // No warm spare but room to start one: still ready (a cold start, not a wait).
    assert.equal(toPublicStatus(pool({ idle: 0, active: 3, total: 3 }), [], false).status, 'ready');
  });

  it('warming, unavailable and draining, and never ready then', () => {
    const warming = toPublicStatus(pool({ ready: false, idle: 2, creating: 3 }), [W], false);
    assert.equal(warming.status, 'warming');
    assert.equal(warming.ready, false);
    assert.equal(toPublicStatus(pool({ ready: false, idle: 0, lastError: 'No such image: x' }), [F], false).status, 'unavailable');
    assert.equal(toPublicStatus(pool({ ready: false }), [W, R], false).status, 'unavailable');
    assert.equal(toPublicStatus(pool(), [R], false).status, 'unavailable');
    const stopping = toPublicStatus(pool(), [S], true);
    assert.deepEqual([stopping.status, stopping.ready], ['draining', false]);
    assert.equal(toPublicStatus(pool({ draining: true, ready: false }), [W], false).status, 'draining');
  });
});
