import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { QuotaLimits, QuotaStore } from '../../src/quota/quota-store.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A clock tests move by hand: the stores read the time only from it. */
export interface TestClock {
  now(): number;
  set(ms: number): void;
  advance(ms: number): void;
}

export function testClock(startMs: number): TestClock {
  let t = startMs;
  return { now: () => t, set: (ms) => void (t = ms), advance: (ms) => void (t += ms) };
}

/** Midnight UTC, 1 January 2030: aligned to every bucket. */
export const T0 = Date.UTC(2030, 0, 1);

const limits = (hour: number | null, day: number | null = null, month: number | null = null): QuotaLimits => ({ hour, day, month });

/**
 * One contract, two stores: whatever passes here for memory must pass for
 * Redis (test/unit/quota-memory.test.ts, test/integration/quota-redis.test.ts).
 */
export function quotaStoreContract(name: string, make: (clock: TestClock) => Promise<QuotaStore>): void {
  describe(`QuotaStore contract: ${name}`, () => {
    const clock = testClock(T0);
    let store: QuotaStore;
    const user = (): string => `q-${randomBytes(4).toString('hex')}`;
    before(async () => {
      store = await make(clock);
    });
    after(() => store.close());
    const take = (u: string, l: QuotaLimits) => store.check(u, l, { count: true });
    const look = (u: string, l: QuotaLimits) => store.check(u, l, { count: false });

    it('admits a burst exactly up to the limit, refuses the next with its window and limit; looking does not count', async () => {
      clock.set(T0 + 10 * MINUTE);
      const u = user();
      const l = limits(5, 50, 500);
      for (let i = 1; i <= 5; i++) {
        assert.equal((await look(u, l)).admitted, true);
        const got = await take(u, l);
        assert.equal(got.admitted, true, `call ${i}`);
        assert.equal(got.usage.hour.used, i);
        assert.equal(got.usage.day.used, i);
        assert.equal(got.usage.month.used, i);
      }
      const refused = await take(u, l);
      assert.equal(refused.admitted, false);
      assert.equal(refused.refusal?.window, 'hour');
      assert.equal(refused.refusal?.limit, 5);
      assert.equal(refused.usage.hour.used, 5, 'a refused call is not counted');
      const looked = await look(u, l);
      assert.equal(looked.admitted, false, 'looking says the window is full');
      assert.equal(looked.usage.hour.used, 5);
    });

    it('says exactly when the next call fits (retryAfterMs), and admits it then, not a millisecond before', async () => {
      clock.set(T0 + 3 * HOUR + 7 * MINUTE + 13_000);
      const u = user();
      const l = limits(2);
      await take(u, l);
      clock.advance(20 * MINUTE);
      await take(u, l);
      clock.advance(5 * MINUTE);
      const refused = await take(u, l);
      assert.equal(refused.admitted, false);
      const retryAfterMs = refused.refusal?.retryAfterMs ?? 0;
      // The first call's minute bucket (3:07) leaves at 4:08: 60-61 minutes after it.
      assert.equal(retryAfterMs, T0 + 4 * HOUR + 8 * MINUTE - clock.now());
      clock.advance(retryAfterMs - 1);
      assert.equal((await take(u, l)).admitted, false);
      clock.advance(1);
      const admitted = await take(u, l);
      assert.equal(admitted.admitted, true);
      assert.equal(admitted.usage.hour.used, 2);
    });

    it('slides: at the hour edge only the calls that left make room (a fixed window would start over)', async () => {
      clock.set(T0 + 5 * DAY);
      const u = user();
      const l = limits(3);
      // Calls at :00, :30 and :59.
      await take(u, l);
      clock.advance(30 * MINUTE);
      await take(u, l);
      clock.advance(29 * MINUTE);
      await take(u, l);
      assert.equal((await take(u, l)).admitted, false);
      // 1:00:30: a fixed hourly window would have restarted with 3 free calls; the sliding hour still holds all 3.
      clock.set(T0 + 5 * DAY + HOUR + 30_000);
      const atEdge = await take(u, l);
      assert.equal(atEdge.admitted, false, 'a fixed window would admit here');
      assert.equal(atEdge.usage.hour.used, 3);
      // 1:01: the :00 call has left (its minute bucket ends 1:01); exactly one more fits.
      clock.set(T0 + 5 * DAY + HOUR + MINUTE);
      assert.equal((await take(u, l)).admitted, true);
      assert.equal((await take(u, l)).admitted, false, 'the :30 and :59 calls still count');
      // 1:31: the :30 call has left.
      clock.set(T0 + 5 * DAY + HOUR + 31 * MINUTE);
      assert.equal((await take(u, l)).admitted, true);
    });

    it('refuses on the window that holds the call back longest (a full day with room in the hour)', async () => {
      clock.set(T0 + 10 * DAY);
      const u = user();
      const l = limits(10, 4, 100);
      for (let i = 0; i < 4; i++) {
        await take(u, l);
        clock.advance(2 * HOUR);
      }
      const refused = await take(u, l);
      assert.equal(refused.admitted, false);
      assert.equal(refused.refusal?.window, 'day');
      assert.equal(refused.refusal?.limit, 4);
      // The first call (hour bucket 00:00) leaves the day at 01:00 the next day.
      assert.equal(refused.refusal?.retryAfterMs, T0 + 11 * DAY + HOUR - clock.now());
      assert.equal(refused.usage.hour.used, 0, 'the hour is empty');
    });

    it('counts a 30-day month in daily buckets', async () => {
      clock.set(T0 + 40 * DAY + 12 * HOUR);
      const u = user();
      const l = limits(null, null, 3);
      for (let d = 0; d < 3; d++) {
        assert.equal((await take(u, l)).admitted, true);
        clock.advance(DAY);
      }
      const refused = await take(u, l);
      assert.equal(refused.refusal?.window, 'month');
      // Day 40's bucket leaves at day 41 + 30.
      assert.equal(refused.refusal?.retryAfterMs, T0 + 71 * DAY - clock.now());
      clock.set(T0 + 71 * DAY);
      assert.equal((await take(u, l)).admitted, true);
    });

    it('counts unlimited windows without ever refusing (enterprise), and users apart', async () => {
      clock.set(T0 + 80 * DAY);
      const u = user();
      const other = user();
      const unlimited = limits(null, null, null);
      for (let i = 0; i < 30; i++) assert.equal((await take(u, unlimited)).admitted, true);
      const seen = await look(u, unlimited);
      assert.deepEqual(
        [seen.usage.hour.used, seen.usage.day.used, seen.usage.month.used, seen.usage.hour.limit],
        [30, 30, 30, null],
      );
      assert.equal((await look(other, unlimited)).usage.month.used, 0);
    });

    it('a limit of 0 admits nothing', async () => {
      clock.set(T0 + 90 * DAY);
      const refused = await take(user(), limits(0));
      assert.equal(refused.admitted, false);
      assert.equal(refused.refusal?.limit, 0);
      assert.equal(refused.refusal?.retryAfterMs, HOUR);
    });

    it('reports when the count next goes down (resetsInMs), and 0 for an empty window', async () => {
      clock.set(T0 + 100 * DAY + 10 * MINUTE + 5_000);
      const u = user();
      const l = limits(10, 10, 10);
      await take(u, l);
      clock.advance(2 * MINUTE);
      const seen = await look(u, l);
      // The first call's minute (:10) leaves at 1:11; its hour (0:00) at 1:00 the next day; its day at day 131.
      assert.equal(seen.usage.hour.resetsInMs, T0 + 100 * DAY + HOUR + 11 * MINUTE - clock.now());
      assert.equal(seen.usage.day.resetsInMs, T0 + 101 * DAY + HOUR - clock.now());
      assert.equal(seen.usage.month.resetsInMs, T0 + 131 * DAY - clock.now());
      assert.equal((await look(user(), l)).usage.hour.resetsInMs, 0);
    });

    it('gives back a refunded call, never below zero', async () => {
      clock.set(T0 + 110 * DAY);
      const u = user();
      const l = limits(1);
      const first = await take(u, l);
      assert.equal((await take(u, l)).admitted, false);
      await store.refund(u, first.atMs);
      await store.refund(u, first.atMs);
      assert.equal((await look(u, l)).usage.hour.used, 0);
      assert.equal((await take(u, l)).admitted, true);
    });

    it('admits exactly the limit when many calls race', async () => {
      clock.set(T0 + 120 * DAY);
      const u = user();
      const l = limits(7);
      const results = await Promise.all(Array.from({ length: 25 }, () => take(u, l)));
      assert.equal(results.filter((r) => r.admitted).length, 7);
      assert.equal((await look(u, l)).usage.hour.used, 7);
    });

    it('forgets everything of a user once the month has passed', async () => {
      clock.set(T0 + 200 * DAY);
      const u = user();
      const l = limits(5, 5, 5);
      for (let i = 0; i < 5; i++) await take(u, l);
      clock.advance(31 * DAY);
      const seen = await look(u, l);
      assert.deepEqual([seen.usage.hour.used, seen.usage.day.used, seen.usage.month.used], [0, 0, 0]);
      assert.equal((await take(u, l)).admitted, true);
    });
  });
}
