import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runShutdown, shutdownPlan, type ShutdownParts } from '../../src/app/shutdown.js';
import { loadConfig } from '../../src/config/config.js';
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

describe('the shutdown plan (its steps and their bounds from SHUTDOWN_* settings)', () => {
  /** Parts that record what ran, with what bound. */
  function recording(): { parts: ShutdownParts; ran: string[] } {
    const ran: string[] = [];
    const note = (what: string) => async (ms?: number): Promise<void> => void ran.push(ms === undefined ? what : `${what} ${ms}`);
    return {
      ran,
      parts: {
        stopSweeps: () => void ran.push('sweeps'),
        finishRequests: note('requests'),
        closeSockets: note('sockets'),
        closeMcpSessions: note('mcp'),
        closeHttp: note('http'),
        cutHttp: () => void ran.push('cut'),
        drainPool: async () => void ran.push('drain'),
        removeOwnContainers: note('remove'),
        leaveCluster: note('leave'),
        closeSharedState: note('state'),
        closeQuotaStore: note('quota'),
        closeWorkspaceStore: note('store'),
        quitRedis: note('quit'),
      },
    };
  }

  it('has the order and, with the defaults, the bounds a replica always had', async () => {
    const c = loadConfig({}).server;
    const settings = { budgetMs: c.shutdownTimeoutMs, requestGraceMs: c.shutdownRequestGraceMs, httpGraceMs: c.shutdownHttpGraceMs, stepTimeoutMs: c.shutdownStepTimeoutMs };
    const { parts, ran } = recording();
    const steps = shutdownPlan(parts, settings);
    assert.deepEqual(
      steps.map((s) => [s.name, s.maxMs]),
      [
        ['stop background sweeps', undefined],
        ['finish requests in flight', 6_000],
        ['close sockets', 3_000],
        ['close MCP sessions', 2_000],
        ['stop accepting HTTP', 5_000],
        ['drain the pool', undefined],
        ['remove our containers', undefined],
        ['leave the cluster', 2_000],
        ['close shared state', 2_000],
        ['close the quota store', 2_000],
        ['close the workspace store', 2_000],
        ['quit Redis', 3_000],
      ],
    );
    await runShutdown(steps, { budgetMs: settings.budgetMs, logger: testLogger() });
    assert.deepEqual(ran, ['sweeps', 'requests 5000', 'sockets', 'mcp', 'http', 'drain', 'remove', 'leave', 'state', 'quota', 'store', 'quit 2000']);
  });

  it('gives requests at most a third of a short budget, and every bound follows its setting', () => {
    const steps = shutdownPlan(recording().parts, { budgetMs: 3_000, requestGraceMs: 5_000, httpGraceMs: 700, stepTimeoutMs: 400 });
    const bound = (name: string): number | undefined => steps.find((s) => s.name === name)?.maxMs;
    assert.equal(bound('finish requests in flight'), 2_000);
    assert.equal(bound('stop accepting HTTP'), 700);
    assert.equal(bound('close MCP sessions'), 400);
    assert.equal(bound('quit Redis'), 1_400);
  });
});
