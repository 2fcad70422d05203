import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runShutdown } from '../../src/app/shutdown.js';
import { testLogger } from '../support/helpers.js';

describe('ordered, bounded shutdown', () => {
  it('runs every step in order, past one that fails and one that hangs, within the budget', async () => {
    const ran: string[] = [];
    let cut = false;
    const started = Date.now();
    await runShutdown(
      [
        { name: 'first', run: () => void ran.push('first') },
        { name: 'fails', run: async () => (ran.push('fails'), Promise.reject(new Error('boom'))) },
        { name: 'hangs', maxMs: 100, run: () => (ran.push('hangs'), new Promise(() => undefined)), onTimeout: () => (cut = true) },
        { name: 'gets its budget', run: async (budgetMs) => void ran.push(`last ${budgetMs > 100 ? 'with time' : 'without'}`) },
      ],
      { budgetMs: 2_000, logger: testLogger() },
    );
    assert.deepEqual(ran, ['first', 'fails', 'hangs', 'last with time']);
    assert.equal(cut, true, 'the hung step was cut');
    assert.ok(Date.now() - started < 1_000);
  });

  it('still gives later steps a moment when the budget is spent', async () => {
    const ran: string[] = [];
    await runShutdown(
      [
        { name: 'eats the budget', run: () => new Promise(() => undefined) },
        { name: 'remove containers', run: async () => void ran.push('removed') },
      ],
      { budgetMs: 50, logger: testLogger() },
    );
    assert.deepEqual(ran, ['removed']);
  });
});
