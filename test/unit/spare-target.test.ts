import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSpareTarget, type SpareTargetOptions } from '../../src/pool/spare-target.js';

/** A target on a clock the test moves. */
function target(overrides: Partial<SpareTargetOptions> = {}): { t: ReturnType<typeof createSpareTarget>; advance(ms: number): void } {
  let now = 1_000_000;
  const t = createSpareTarget({ floor: 2, ceiling: 40, windowMs: 60_000, averagingMs: 10_000, headroom: 2, defaultStartMs: 1_000, now: () => now, ...overrides });
  return { t, advance: (ms) => void (now += ms) };
}

/** `perSecond` arrivals in each of `seconds` seconds. */
function arrive(s: ReturnType<typeof target>, perSecond: number, seconds: number): void {
  for (let i = 0; i < seconds; i++) {
    for (let k = 0; k < perSecond; k++) s.t.recordArrival();
    s.advance(1_000);
  }
}

describe('spare target (spares that follow demand)', () => {
  it('is the floor with no arrivals', () => {
    const s = target();
    assert.equal(s.t.arrivalRate(), 0);
    assert.equal(s.t.target(500), 2);
  });

  it('keeps arrivals/s x start seconds x headroom spares', () => {
    const s = target();
    arrive(s, 8, 10);
    assert.equal(s.t.arrivalRate(), 8);
    // 8/s x 0.5 s x 2 = 8
    assert.equal(s.t.target(500), 8);
    // Slower starts need more spares for the same arrivals: 8/s x 1.5 s x 2 = 24.
    assert.equal(s.t.target(1_500), 24);
    // Unknown start time: the default (1 s).
    assert.equal(s.t.target(null), 16);
  });

  it('counts the refill delay as part of every start, measured or not', () => {
    const s = target({ refillDelayMs: 500 });
    arrive(s, 8, 10);
    // 8/s x (0.5 + 0.5) s x 2 = 16
    assert.equal(s.t.target(500), 16);
    // 8/s x (1 s default + 0.5 s) x 2 = 24
    assert.equal(s.t.target(null), 24);
  });

  it('keeps no spare above the floor for a trickle of users', () => {
    const s = target({ floor: 0 });
    arrive(s, 1, 1);
    arrive(s, 0, 9);
    // 0.1/s x 1 s x 2 = 0.2 spares: none.
    assert.equal(s.t.target(1_000), 0);
  });

  it('averages arrivals, so one busy second is not a rate', () => {
    const s = target();
    arrive(s, 10, 1);
    arrive(s, 0, 9);
    assert.equal(s.t.arrivalRate(), 1);
  });

  it('holds the peak through a quiet spell within the window, then falls back to the floor', () => {
    const s = target();
    arrive(s, 4, 10);
    arrive(s, 0, 40);
    assert.equal(s.t.target(1_000), 8, 'a burst after 40 quiet seconds finds the last busy spell\'s spares');
    arrive(s, 0, 30);
    assert.equal(s.t.target(1_000), 2, 'past the window, back to the floor');
  });

  it('never goes above the ceiling (POOL_MAX_SIZE, spares memory), nor below the floor', () => {
    const s = target({ ceiling: 10 });
    arrive(s, 50, 10);
    assert.equal(s.t.target(1_000), 10);
    const high = target({ floor: 20, ceiling: 10 });
    assert.equal(high.t.target(1_000), 20, 'the operator\'s floor holds even above the memory budget');
  });

  it('with headroom 0 keeps exactly the floor', () => {
    const s = target({ headroom: 0 });
    arrive(s, 20, 10);
    assert.equal(s.t.target(1_000), 2);
  });
});
