/**
 * Plans and quotas in the chat layer, on fakes (the chat harness): the
 * message ack's refusal and quota field, the tool call that crosses a limit
 * mid-request, per-plan in-flight caps, refunds, and MCP-style direct calls
 * counting against the same windows once.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { createDirectToolCalls } from '../../src/chat/direct-tool-calls.js';
import { createSandboxTools } from '../../src/chat/sandbox-tools.js';
import type { ReplicaBus } from '../../src/cluster/replica-bus.js';
import { SandpoolError } from '../../src/errors.js';
import { createPlanCatalog } from '../../src/plans/plans.js';
import { createMemoryQuotaStore } from '../../src/quota/memory-quota-store.js';
import { createQuota } from '../../src/quota/quota.js';
import { createWorkspaces } from '../../src/workspace/workspaces.js';
import { createNoWorkspaceStore } from '../../src/workspace/workspace-store.js';
import { TEST_CHAT_SETTINGS, createChatHarness, type ChatHarness } from '../support/chat-harness.js';
import { createOwnership } from '../../src/chat/ownership.js';
import { createPresences, type Presences } from '../../src/chat/presence.js';
import { createSandboxLeases } from '../../src/chat/sandbox-leases.js';
import { testLogger } from '../support/helpers.js';

const plans = createPlanCatalog({
  plans: {
    tiny: { callsPerHour: 2, callsPerDay: 10, callsPerMonth: null, maxInFlight: 3 },
    roomy: { callsPerHour: null, callsPerDay: null, callsPerMonth: null, maxInFlight: 1 },
  },
  defaultPlan: 'tiny',
  maxInFlight: 5,
  workspaceMaxBytes: 1_048_576,
});

const harnesses: ChatHarness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});
function harness(options: Parameters<typeof createChatHarness>[0] = {}): ChatHarness {
  const h = createChatHarness({ plans, ...options });
  harnesses.push(h);
  return h;
}

async function refusal(work: Promise<unknown>): Promise<SandpoolError> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof SandpoolError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

describe('quotas in chat', () => {
  it('acks what remains per window, counts executed calls only (not denied ones), and refuses the message once a window is full', async () => {
    const h = harness();
    const first = await h.chat.handleMessage('alice', 'list files in /workspace', { plan: 'tiny' });
    assert.deepEqual(first.quota, { plan: 'tiny', remaining: { hour: 2, day: 10, month: null } });
    const request = await h.next('alice', 'tool:request', (p) => p.requestId === first.requestId);
    await h.chat.handleApproval('alice', { callId: request.callId, approved: true });
    await h.next('alice', 'message:done', (p) => p.requestId === first.requestId);
    // A denied call never ran: nothing counted.
    await h.converse('alice', 'list files in /workspace', false);
    const { end } = await h.converse('alice', 'list files in /workspace');
    assert.equal(end.event, 'message:done');
    const err = await refusal(h.chat.handleMessage('alice', 'list files in /workspace'));
    assert.equal(err.code, 'QUOTA_EXCEEDED');
    assert.deepEqual({ ...err.fields, retryAfterSeconds: typeof err.fields?.retryAfterSeconds }, { plan: 'tiny', window: 'hour', limit: 2, retryAfterSeconds: 'number' });
    assert.ok((err.fields?.retryAfterSeconds ?? 0) > 3_500 && (err.fields?.retryAfterSeconds ?? 0) <= 3_660);
    // Another user, another count.
    assert.equal((await h.chat.handleMessage('bob', 'help')).quota?.remaining.hour, 2);
  });

  it('ends a request with request:error QUOTA_EXCEEDED when its tool call would cross the limit mid-request', async () => {
    const h = harness();
    // Both accepted while 2 calls remain; three calls are then approved.
    const acks = [await h.chat.handleMessage('carol', 'list files in /workspace'), await h.chat.handleMessage('carol', 'list files in /workspace'), await h.chat.handleMessage('carol', 'list files in /workspace')];
    for (const ack of acks.slice(0, 2)) {
      const request = await h.next('carol', 'tool:request', (p) => p.requestId === ack.requestId);
      await h.chat.handleApproval('carol', { callId: request.callId, approved: true });
      await h.next('carol', 'message:done', (p) => p.requestId === ack.requestId);
    }
    const last = acks[2]?.requestId;
    const request = await h.next('carol', 'tool:request', (p) => p.requestId === last);
    await h.chat.handleApproval('carol', { callId: request.callId, approved: true });
    const failed = await h.next('carol', 'request:error', (p) => p.requestId === last);
    const error = failed.error as Record<string, unknown>;
    assert.equal(error.code, 'QUOTA_EXCEEDED');
    assert.equal(error.plan, 'tiny');
    assert.equal(error.window, 'hour');
    assert.equal(error.limit, 2);
    assert.equal(typeof error.retryAfterSeconds, 'number');
    assert.equal(h.events.some((e) => e.event === 'tool:result' && e.payload.requestId === last), false, 'the call did not run');
  });

  it('caps requests in flight by the plan\'s maxInFlight, not MAX_REQUESTS_PER_USER', async () => {
    const h = harness();
    await h.chat.handleMessage('dave', 'list files in /workspace', { plan: 'roomy' });
    const err = await refusal(h.chat.handleMessage('dave', 'help', { plan: 'roomy' }));
    assert.equal(err.code, 'TOO_MANY_REQUESTS');
    assert.match(err.message, /1 requests in flight \(your roomy plan's limit\)/);
    for (let i = 0; i < 3; i++) await h.chat.handleMessage('erin', 'list files in /workspace', { plan: 'tiny' });
    assert.equal((await refusal(h.chat.handleMessage('erin', 'help', { plan: 'tiny' }))).code, 'TOO_MANY_REQUESTS');
  });

  it('the session event names the plan and its in-flight cap', async () => {
    const h = harness();
    const info = await h.chat.connect('frank', { plan: 'roomy' });
    assert.equal(info.plan, 'roomy');
    assert.equal(info.limits.maxRequestsPerUser, 1);
    assert.equal((await h.chat.connect('gina')).plan, 'tiny');
  });

  it('gives back a call that found no sandbox (POOL_EXHAUSTED): it never ran', async () => {
    const h = harness();
    h.pool.failNext(new SandpoolError('POOL_EXHAUSTED', 'no sandbox free'));
    const { end } = await h.converse('hank', 'list files in /workspace');
    assert.equal(end.event, 'request:error');
    assert.equal((end.payload.error as { code: string }).code, 'POOL_EXHAUSTED');
    assert.equal((await h.chat.handleMessage('hank', 'help')).quota?.remaining.hour, 2);
  });
});

describe('quotas across the sandbox tools', () => {
  function setup() {
    // Replica unit-a (the harness) sees unit-b alive; unit-b holds the sandboxes of users it claimed.
    const h = harness({ isReplicaLive: async () => true });
    const bWorkspaces = createWorkspaces({ store: createNoWorkspaceStore(), maxBytes: 0, timeoutMs: 1000, logger: testLogger(), observer: { saved: () => undefined, restored: () => undefined } });
    const bOwnership = createOwnership({ owners: h.state.owners, replicaId: 'unit-b', ownerTtlMs: 60_000, isReplicaLive: async () => true, logger: testLogger() });
    const bLeases = createSandboxLeases({ pool: h.pool, ownership: bOwnership, ensureCurrent: async () => undefined, workspaces: bWorkspaces, logger: testLogger() });
    const b: Presences = createPresences({ settings: TEST_CHAT_SETTINGS, sandbox: bLeases });
    const quota = createQuota({ store: createMemoryQuotaStore(), failMode: 'closed', logger: testLogger() });
    const workspaces = createWorkspaces({ store: createNoWorkspaceStore(), maxBytes: 0, timeoutMs: 1000, logger: testLogger(), observer: { saved: () => undefined, restored: () => undefined } });
    const routed: string[] = [];
    // A bus whose other replica holds every sandbox: calls are routed, and the target runs them through runRouted.
    let target: ReturnType<typeof createSandboxTools> | undefined;
    const bus: ReplicaBus = {
      forwardMessage: () => Promise.reject(new Error('unused')),
      forwardApproval: async () => false,
      runTool: async (_t, userId, call) => {
        routed.push(call.name);
        if (!target) throw new Error('no target');
        return target.runRouted(userId, call);
      },
      release: () => undefined,
      wipe: async () => undefined,
      serve: () => undefined,
    };
    const silentOwner = { lapseMs: 300, pollMs: 20 };
    const tools = createSandboxTools({ presences: h.presences, leases: h.leases, bus, ownership: h.ownership, silentOwner, workspaces, quota, plans, isReadOnly: () => true });
    target = createSandboxTools({ presences: b, leases: bLeases, bus, ownership: bOwnership, silentOwner, workspaces: bWorkspaces, quota, plans, isReadOnly: () => true });
    const direct = createDirectToolCalls({ presences: h.presences, sandboxTools: tools, limiter: h.state.limiter, plans, toolCallTimeoutMs: 5_000, logger: testLogger() });
    return { quota, direct, routed, tools, h, b };
  }

  it('an MCP call counts once; the replica a routed call runs on does not count it again', async () => {
    const { quota, direct, routed, h, b } = setup();
    await direct.call('ivy', 'list_directory', { path: '/workspace' }, { plan: 'tiny' });
    assert.equal((await quota.usage('ivy', plans.resolve('tiny'))).windows.hour.used, 1);
    assert.deepEqual(routed, [], 'ran here');
    // Kim's sandbox is on unit-b: the call is routed there and still counted once.
    await h.state.owners.claim('kim', 'unit-b', 60_000);
    await direct.call('kim', 'list_directory', { path: '/workspace' }, { plan: 'tiny' });
    assert.deepEqual(routed, ['list_directory']);
    assert.equal((await quota.usage('kim', plans.resolve('tiny'))).windows.hour.used, 1);
    await b.closeAll();
  });

  it('an MCP call over the limit is refused with QUOTA_EXCEEDED and its fields', async () => {
    const { direct } = setup();
    await direct.call('jo', 'list_directory', { path: '/workspace' });
    await direct.call('jo', 'list_directory', { path: '/workspace' });
    const err = await refusal(direct.call('jo', 'list_directory', { path: '/workspace' }));
    assert.equal(err.code, 'QUOTA_EXCEEDED');
    assert.equal(err.fields?.plan, 'tiny');
    assert.equal(err.fields?.limit, 2);
  });
});
