import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEventBudget } from '../../src/realtime/event-budget.js';

describe('per-user event budget', () => {
  it('allows a burst of twice the rate, then refills at the rate', () => {
    const budget = createEventBudget({ eventsPerSecond: 5 });
    budget.attach('alice');
    const t0 = Date.now();
    const burst = Array.from({ length: 12 }, () => budget.take('alice', t0)).filter(Boolean).length;
    assert.equal(burst, 10);
    assert.equal(budget.take('alice', t0 + 100), false, 'half an event refilled is not an event');
    assert.equal(budget.take('alice', t0 + 200), true);
  });

  it('is one budget for all of a user\'s sockets: more tabs buy no more events', () => {
    const budget = createEventBudget({ eventsPerSecond: 5 });
    budget.attach('alice');
    budget.attach('alice');
    budget.attach('bob');
    const t0 = Date.now();
    const taken = Array.from({ length: 30 }, () => budget.take('alice', t0)).filter(Boolean).length;
    assert.equal(taken, 10);
    assert.equal(budget.take('bob', t0), true, 'another user has their own');
  });

  it('lives while the user has sockets here; an unknown user has none', () => {
    const budget = createEventBudget({ eventsPerSecond: 5 });
    assert.equal(budget.take('ghost'), false);
    budget.attach('alice');
    budget.attach('alice');
    budget.detach('alice');
    assert.equal(budget.size(), 1);
    budget.detach('alice');
    assert.equal(budget.size(), 0);
  });
});
