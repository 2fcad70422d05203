import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandpoolError } from '../../src/errors.js';
import { createPlanCatalog } from '../../src/plans/plans.js';
import { createMemoryQuotaStore } from '../../src/quota/memory-quota-store.js';
import { createQuota, type QuotaObserver } from '../../src/quota/quota.js';
import type { QuotaStore } from '../../src/quota/quota-store.js';
import { testLogger } from '../support/helpers.js';
import { T0, testClock } from '../support/quota-contract.js';

const catalog = createPlanCatalog({
  plans: { tiny: { callsPerHour: 5, callsPerDay: 20, callsPerMonth: null }, big: { callsPerHour: null, callsPerDay: null, callsPerMonth: null } },
  defaultPlan: 'tiny',
  maxInFlight: 5,
  workspaceMaxBytes: 4096,
});
const tiny = catalog.resolve('tiny');

function recorder(): QuotaObserver & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    checked: () => undefined,
    counted: (plan) => events.push(`counted ${plan}`),
    refused: (plan, window) => events.push(`refused ${plan} ${window}`),
    crossedWarning: (plan, window) => events.push(`warning ${plan} ${window}`),
    storeFailed: (mode) => events.push(`failed ${mode}`),
  };
}

async function refusal(work: Promise<unknown>): Promise<SandpoolError> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof SandpoolError);
    return err;
  }
  assert.fail('not refused');
}

const failingStore: QuotaStore = {
  kind: 'redis',
  check: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379')),
  refund: () => Promise.reject(new Error('down')),
  close: async () => undefined,
};

describe('quota', () => {
  it('refuses the call over the limit with QUOTA_EXCEEDED carrying plan, window, limit and retryAfterSeconds', async () => {
    const clock = testClock(T0 + 30_000);
    const observer = recorder();
    const quota = createQuota({ store: createMemoryQuotaStore({ now: clock.now }), failMode: 'closed', logger: testLogger(), observer });
    for (let i = 0; i < 5; i++) await quota.countCall('u', tiny);
    const err = await refusal(quota.countCall('u', tiny));
    assert.equal(err.code, 'QUOTA_EXCEEDED');
    // The :00 minute bucket leaves at 1:01; it is 0:00:30.
    assert.deepEqual(err.fields, { plan: 'tiny', window: 'hour', limit: 5, retryAfterSeconds: 3630 });
    assert.match(err.message, /tiny plan allows 5 tool calls per hour.*in 3630 s/);
    assert.deepEqual(observer.events.filter((e) => !e.startsWith('counted')), ['warning tiny hour', 'refused tiny hour']);
    assert.equal(observer.events.filter((e) => e === 'counted tiny').length, 5);
  });

  it('refuses a message while a window is full, and tells an accepted one what remains', async () => {
    const clock = testClock(T0);
    const quota = createQuota({ store: createMemoryQuotaStore({ now: clock.now }), failMode: 'closed', logger: testLogger() });
    assert.deepEqual(await quota.admitMessage('m', tiny), { plan: 'tiny', remaining: { hour: 5, day: 20, month: null } });
    await quota.countCall('m', tiny);
    assert.deepEqual(await quota.admitMessage('m', tiny), { plan: 'tiny', remaining: { hour: 4, day: 19, month: null } });
    for (let i = 0; i < 4; i++) await quota.countCall('m', tiny);
    assert.equal((await refusal(quota.admitMessage('m', tiny))).fields?.window, 'hour');
    assert.deepEqual(await quota.usage('m', tiny), {
      plan: 'tiny',
      windows: { hour: { used: 5, limit: 5, resetsInSeconds: 3660 }, day: { used: 5, limit: 20, resetsInSeconds: 90_000 }, month: { used: 5, limit: null, resetsInSeconds: 2_678_400 } },
    });
  });

  it('counts each crossing of 80 % once per window (5 per hour: at the 4th call; 20 per day: at the 16th)', async () => {
    const clock = testClock(T0);
    const observer = recorder();
    const quota = createQuota({ store: createMemoryQuotaStore({ now: clock.now }), failMode: 'closed', logger: testLogger(), observer });
    for (let i = 1; i <= 16; i++) {
      await quota.countCall('w', tiny);
      if (i % 4 === 0) clock.advance(3_600_000 + 60_000);
    }
    const warnings = observer.events.filter((e) => e.startsWith('warning'));
    assert.deepEqual(warnings, ['warning tiny hour', 'warning tiny hour', 'warning tiny hour', 'warning tiny hour', 'warning tiny day']);
  });

  it('a refund gives the call back (a call that found no sandbox never ran)', async () => {
    const clock = testClock(T0);
    const quota = createQuota({ store: createMemoryQuotaStore({ now: clock.now }), failMode: 'closed', logger: testLogger() });
    const counted = await quota.countCall('r', tiny);
    clock.advance(1_000);
    await counted.refund();
    assert.equal((await quota.usage('r', tiny)).windows.hour.used, 0);
  });

  it('store unreachable, closed (the default): the call is refused with INTERNAL, and counted as a limiter failure', async () => {
    const observer = recorder();
    const quota = createQuota({ store: failingStore, failMode: 'closed', logger: testLogger(), observer });
    const err = await refusal(quota.countCall('x', tiny));
    assert.equal(err.code, 'INTERNAL');
    assert.match(err.message, /usage cannot be checked right now/);
    assert.doesNotMatch(err.message, /ECONNREFUSED/);
    assert.equal((await refusal(quota.admitMessage('x', tiny))).code, 'INTERNAL');
    assert.deepEqual(observer.events, ['failed closed', 'failed closed']);
  });

  it('store unreachable, open: the call goes through uncounted, a message is accepted without a quota field; each counted as a failure', async () => {
    const observer = recorder();
    const quota = createQuota({ store: failingStore, failMode: 'open', logger: testLogger(), observer });
    const counted = await quota.countCall('x', tiny);
    await counted.refund();
    assert.equal(await quota.admitMessage('x', tiny), undefined);
    assert.deepEqual(observer.events, ['failed open', 'failed open']);
    // /me/usage cannot make numbers up.
    assert.equal((await refusal(quota.usage('x', tiny))).code, 'INTERNAL');
  });
});
