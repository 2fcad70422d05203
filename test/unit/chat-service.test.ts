import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { SandpoolError } from '../../src/errors.js';
import { ReplicaSilentError, type ReplicaBus, type ReplicaBusHandlers } from '../../src/cluster/replica-bus.js';
import type { RemoteToolCall, ToolApproval } from '../../src/protocol/events.js';
import { createChatHarness, type ChatHarness } from '../support/chat-harness.js';

const harnesses: ChatHarness[] = [];
function harness(...args: Parameters<typeof createChatHarness>): ChatHarness {
  const h = createChatHarness(...args);
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

async function refusal(work: Promise<unknown>): Promise<SandpoolError> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof SandpoolError, `expected a SandpoolError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

/** A bus that records what is routed and answers as a remote replica would. */
function recordingBus(answers: Partial<ReplicaBusHandlers> = {}): ReplicaBus & { routed: Array<{ kind: string; target?: string; userId: string; body: unknown }> } {
  const routed: Array<{ kind: string; target?: string; userId: string; body: unknown }> = [];
  return {
    routed,
    async forwardMessage(target, userId, payload, plan) {
      routed.push({ kind: 'message', target, userId, body: payload });
      return answers.message ? answers.message(userId, payload, plan) : { requestId: 'remote-r', sessionId: 'remote-s' };
    },
    async forwardApproval(userId, approval: ToolApproval) {
      routed.push({ kind: 'approval', userId, body: approval });
      return answers.approval ? answers.approval(userId, approval) : true;
    },
    async runTool(target, userId, call: RemoteToolCall, onNotice) {
      routed.push({ kind: 'tool', target, userId, body: call });
      if (answers.tool) return answers.tool(userId, call, onNotice ?? (() => undefined));
      return { result: { content: [{ type: 'text', text: `ran ${call.name} on ${target}` }] }, startedFresh: 'no' };
    },
    release(target, userId) {
      routed.push({ kind: 'release', target, userId, body: undefined });
    },
    async wipe(target, userId) {
      routed.push({ kind: 'wipe', target, userId, body: undefined });
    },
    serve() {},
  };
}

describe('chat service (fakes: in-memory sandboxes, memory state, local planner)', () => {
  it('runs the seed flow: accepted, tool:request, approval, tool:result, message:done, in that order', async () => {
    const h = harness();
    const { requestId, results, end } = await h.converse('alice', 'list files in /workspace');
    assert.equal(end.event, 'message:done');
    assert.equal(results.length, 1);
    assert.equal(results[0]?.tool, 'list_directory');
    assert.equal(results[0]?.approval, 'approved');
    const order = h.events.filter((e) => e.payload.requestId === requestId).map((e) => e.event);
    assert.deepEqual(order, ['message:accepted', 'tool:request', 'tool:decided', 'tool:result', 'message:delta', 'message:done']);
    assert.equal(h.pool.live().length, 1, 'the user holds one sandbox');
  });

  it('keeps one sandbox per user across messages, and none for a user who never ran a tool', async () => {
    const h = harness();
    await h.converse('alice', 'write "hello" to /workspace/a.txt');
    const { results } = await h.converse('alice', 'read /workspace/a.txt');
    assert.equal(results[0]?.content, 'hello');
    await h.converse('bob', 'help');
    assert.equal(h.pool.sandboxes.length, 1);
  });

  it('never shows one user another user\'s files or lets them decide their calls', async () => {
    const h = harness();
    await h.converse('alice', 'write "secret" to /workspace/a.txt');
    const { results } = await h.converse('bob', 'read /workspace/a.txt');
    assert.equal(results[0]?.ok, false);
    const { requestId } = await h.chat.handleMessage('alice', 'list files in /workspace');
    const request = await h.next('alice', 'tool:request', (p) => p.requestId === requestId);
    const err = await refusal(h.chat.handleApproval('bob', { callId: request.callId, approved: true }));
    assert.equal(err.code, 'UNKNOWN_CALL');
    await h.chat.handleApproval('alice', { callId: request.callId, approved: true });
    await h.next('alice', 'message:done', (p) => p.requestId === requestId);
  });

  it('holds MAX_REQUESTS_PER_USER in flight, refuses the next with TOO_MANY_REQUESTS, and frees a slot when one ends', async () => {
    const h = harness({ settings: { maxRequestsPerUser: 2 } });
    const first = await h.chat.handleMessage('alice', 'list files in /workspace');
    await h.chat.handleMessage('alice', 'list files in /workspace');
    assert.equal((await refusal(h.chat.handleMessage('alice', 'help'))).code, 'TOO_MANY_REQUESTS');
    assert.ok((await h.chat.handleMessage('bob', 'help')).requestId, 'another user is unaffected');
    const request = await h.next('alice', 'tool:request', (p) => p.requestId === first.requestId);
    await h.chat.handleApproval('alice', { callId: request.callId, approved: false });
    await h.next('alice', 'message:done', (p) => p.requestId === first.requestId);
    await new Promise((r) => setImmediate(r));
    assert.ok((await h.chat.handleMessage('alice', 'help')).requestId);
  });

  it('answers bad input with coded refusals and runs nothing', async () => {
    const h = harness({ settings: { maxMessageBytes: 64 } });
    assert.equal((await refusal(h.chat.handleMessage('alice', 42))).code, 'BAD_REQUEST');
    assert.equal((await refusal(h.chat.handleMessage('alice', { text: 7 }))).code, 'BAD_REQUEST');
    assert.equal((await refusal(h.chat.handleMessage('alice', '   '))).code, 'BAD_REQUEST');
    assert.equal((await refusal(h.chat.handleMessage('alice', 'x'.repeat(65)))).code, 'PAYLOAD_TOO_LARGE');
    assert.equal((await refusal(h.chat.handleApproval('alice', { callId: 1, approved: 'yes' }))).code, 'BAD_REQUEST');
    assert.equal((await refusal(h.chat.handleApproval('alice', { callId: 'ghost', approved: true }))).code, 'UNKNOWN_CALL');
    assert.equal(h.events.length, 0);
  });

  it('reports a denial and a timeout to the model and the user without running the tool', async () => {
    const h = harness({ settings: { toolApprovalTimeoutMs: 100 } });
    const denied = await h.converse('alice', 'write "x" to /workspace/a.txt', false);
    assert.equal(denied.results[0]?.approval, 'denied');
    assert.match(String(denied.results[0]?.content), /denied/);
    const { requestId } = await h.chat.handleMessage('alice', 'write "x" to /workspace/a.txt');
    const result = await h.next('alice', 'tool:result', (p) => p.requestId === requestId);
    assert.equal(result.approval, 'timeout');
    assert.equal(h.pool.sandboxes.length, 0, 'no sandbox was ever taken');
  });

  it('ends a request with SANDBOX_FAILED when its sandbox dies, and the next one starts fresh and says so', async () => {
    const h = harness();
    await h.converse('alice', 'write "x" to /workspace/a.txt');
    const [sandbox] = h.pool.sandboxes;
    assert.ok(sandbox);
    h.pool.kill(sandbox);
    const { results, end } = await h.converse('alice', 'list files in /workspace');
    assert.equal(end.event, 'message:done');
    assert.match(String(results[0]?.content), /previous sandbox stopped/);
    assert.equal(h.pool.sandboxes.length, 2);
  });

  it('fails a request with POOL_EXHAUSTED when no sandbox can be had, and frees its slot', async () => {
    const h = harness({ settings: { maxRequestsPerUser: 1 } });
    h.pool.failNext(new SandpoolError('POOL_EXHAUSTED', 'no sandbox became free'));
    const { end } = await h.converse('alice', 'list files in /workspace');
    assert.equal(end.event, 'request:error');
    assert.deepEqual((end.payload.error as { code: string }).code, 'POOL_EXHAUSTED');
    await new Promise((r) => setImmediate(r));
    assert.ok((await h.chat.handleMessage('alice', 'help')).requestId);
  });

  it('cancels the requests of a user who left as CANCELLED (never INTERNAL), and of a stopping replica as SHUTTING_DOWN', async () => {
    const h = harness({ settings: { disconnectGraceMs: 10 } });
    await h.chat.connect('alice');
    const { requestId } = await h.chat.handleMessage('alice', 'list files in /workspace');
    await h.next('alice', 'tool:request', (p) => p.requestId === requestId);
    h.chat.disconnect('alice');
    const left = await h.next('alice', 'request:error', (p) => p.requestId === requestId);
    assert.equal((left.error as { code: string }).code, 'CANCELLED');

    const other = await h.chat.handleMessage('bob', 'list files in /workspace');
    await h.next('bob', 'tool:request', (p) => p.requestId === other.requestId);
    await h.chat.shutdown(10);
    const stopped = await h.next('bob', 'request:error', (p) => p.requestId === other.requestId);
    assert.equal((stopped.error as { code: string }).code, 'SHUTTING_DOWN');
    assert.equal((await refusal(h.chat.handleMessage('bob', 'help'))).code, 'SHUTTING_DOWN');
  });

  it('tells a connecting tab the session, its limits, the tools and the calls still waiting', async () => {
    const h = harness();
    const { requestId } = await h.chat.handleMessage('alice', 'list files in /workspace');
    await h.next('alice', 'tool:request', (p) => p.requestId === requestId);
    const info = await h.chat.connect('alice');
    assert.equal(info.userId, 'alice');
    assert.equal(info.inFlight, 1);
    assert.deepEqual(info.pending.map((p) => p.requestId), [requestId]);
    assert.ok(info.tools.includes('list_directory'));
    assert.equal(info.limits.maxRequestsPerUser, 5);
    assert.equal((await h.chat.connect('alice')).sessionId, info.sessionId, 'one session id per user');
  });

  it('refuses a user beyond MAX_SESSIONS, but never one who is already present', async () => {
    const h = harness({ settings: { maxSessions: 1 } });
    await h.chat.connect('alice');
    await h.chat.connect('alice');
    assert.equal((await refusal(h.chat.connect('bob'))).code, 'TOO_MANY_REQUESTS');
  });

  it('routes a message to the live replica that holds the user\'s sandbox', async () => {
    const bus = recordingBus();
    const h = harness({ bus, isReplicaLive: async () => true });
    await h.state.owners.claim('alice', 'unit-b', 60_000);
    const accepted = await h.chat.handleMessage('alice', 'list files in /workspace');
    assert.deepEqual(accepted, { requestId: 'remote-r', sessionId: 'remote-s' });
    assert.deepEqual(bus.routed.map((r) => [r.kind, r.target]), [['message', 'unit-b']]);
    // A routed message runs here even though the record names another owner.
    const here = await h.chat.handleMessage('alice', 'help', { routed: true });
    await h.next('alice', 'message:done', (p) => p.requestId === here.requestId);
  });

  it('waits out an owner that does not answer until its heartbeat lapses, then serves the user here; an owner that stays live is "try again"', async () => {
    const silent: ReplicaBusHandlers['message'] = async () => {
      throw new ReplicaSilentError('unit-b');
    };
    // unit-b died: its heartbeat lapses 100 ms after the message came.
    const bus = recordingBus({ message: silent });
    const diedAt = Date.now();
    const h = harness({ bus, isReplicaLive: async (id) => id === 'unit-a' || Date.now() - diedAt < 100, silentOwner: { lapseMs: 2_000, pollMs: 20 } });
    await h.state.owners.claim('alice', 'unit-b', 60_000);
    const accepted = await h.chat.handleMessage('alice', 'list files in /workspace');
    assert.deepEqual(bus.routed.map((r) => [r.kind, r.target]), [['message', 'unit-b']]);
    const request = await h.next('alice', 'tool:request', (p) => p.requestId === accepted.requestId);
    await h.chat.handleApproval('alice', { callId: request.callId, approved: true });
    await h.next('alice', 'message:done', (p) => p.requestId === accepted.requestId);
    assert.equal(h.pool.sandboxes.length, 1, 'the user got a sandbox here');
    // An owner that is silent but stays live (stalled): after lapseMs the user is told to try again, and nothing ran here.
    const stalledBus = recordingBus({ message: silent });
    const stalled = harness({ bus: stalledBus, isReplicaLive: async () => true, silentOwner: { lapseMs: 200, pollMs: 20 } });
    await stalled.state.owners.claim('bob', 'unit-b', 60_000);
    const refusedBob = await refusal(stalled.chat.handleMessage('bob', 'list files in /workspace'));
    assert.equal(refusedBob.code, 'SANDBOX_FAILED');
    assert.match(refusedBob.message, /did not answer; try again/);
    assert.equal(stalled.pool.sandboxes.length, 0);
  });

  it('runs a tool call on the replica that holds the sandbox when ownership moved there mid-request', async () => {
    const bus = recordingBus();
    let live = false;
    const h = harness({ bus, isReplicaLive: async (id) => id === 'unit-a' || live });
    const { requestId } = await h.chat.handleMessage('alice', 'list files in /workspace');
    const request = await h.next('alice', 'tool:request', (p) => p.requestId === requestId);
    // Another replica claimed the user's sandbox while this call waited for approval.
    await h.state.owners.claim('alice', 'unit-b', 60_000);
    live = true;
    await h.chat.handleApproval('alice', { callId: request.callId, approved: true });
    const result = await h.next('alice', 'tool:result', (p) => p.requestId === requestId);
    assert.equal(result.content, 'ran list_directory on unit-b');
    assert.equal(h.pool.sandboxes.length, 0, 'no second sandbox for the same user');
  });

  it('a tool call routed to an owner that does not take it waits until that owner\'s heartbeat lapses, then runs here (MCP calls come this way)', async () => {
    const silentTool: ReplicaBusHandlers['tool'] = async () => {
      throw new ReplicaSilentError('unit-b');
    };
    let diedAt: number | undefined;
    const h = harness({ bus: recordingBus({ tool: silentTool }), isReplicaLive: async (id) => id === 'unit-a' || diedAt === undefined || Date.now() - diedAt < 100, silentOwner: { lapseMs: 2_000, pollMs: 20 } });
    const { requestId } = await h.chat.handleMessage('alice', 'list files in /workspace');
    const request = await h.next('alice', 'tool:request', (p) => p.requestId === requestId);
    // unit-b claimed the sandbox while the call waited for approval, then died: its heartbeat lapses 100 ms later.
    await h.state.owners.claim('alice', 'unit-b', 60_000);
    diedAt = Date.now();
    await h.chat.handleApproval('alice', { callId: request.callId, approved: true });
    const result = await h.next('alice', 'tool:result', (p) => p.requestId === requestId);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(h.pool.sandboxes.length, 1, 'ran in a sandbox here');
    // Still live at the deadline (stalled): "try again", and nothing ran here.
    const stalled = harness({ bus: recordingBus({ tool: silentTool }), isReplicaLive: async () => true, silentOwner: { lapseMs: 200, pollMs: 20 } });
    const second = await stalled.chat.handleMessage('bob', 'list files in /workspace');
    const asked = await stalled.next('bob', 'tool:request', (p) => p.requestId === second.requestId);
    await stalled.state.owners.claim('bob', 'unit-b', 60_000);
    await stalled.chat.handleApproval('bob', { callId: asked.callId, approved: true });
    const failed = await stalled.next('bob', 'request:error', (p) => p.requestId === second.requestId);
    const { code, message } = failed.error as { code: string; message: string };
    assert.equal(code, 'SANDBOX_FAILED');
    assert.match(message, /did not answer; try again/);
    assert.equal(stalled.pool.sandboxes.length, 0);
  });

  it('routes an approval to the replica running that request', async () => {
    const bus = recordingBus();
    const h = harness({ bus });
    await h.state.pending.add('alice', { requestId: 'r1', callId: 'c1', tool: 'write_file', arguments: {}, expiresAtMs: Date.now() + 10_000, replica: 'unit-b' });
    assert.equal(await h.chat.handleApproval('alice', { callId: 'c1', approved: true }), true);
    assert.deepEqual(bus.routed.map((r) => r.kind), ['approval']);
    // Routed to us and not held here: false, so the sender can say UNKNOWN_CALL.
    assert.equal(await h.chat.handleApproval('alice', { callId: 'c2', approved: true }, { routed: true }), false);
  });

  it('translates /workspace for a sandbox rooted elsewhere (the process runtime)', async () => {
    const { createFakePool } = await import('../support/fake-pool.js');
    const h = harness({ pool: createFakePool({ workspaceDir: '/tmp/sandpool-sbx-x1' }) });
    await h.converse('alice', 'write "hi" to /workspace/a.txt');
    const { results } = await h.converse('alice', 'list files in /workspace');
    assert.equal(results[0]?.content, '[FILE] a.txt');
    assert.deepEqual([...(h.pool.sandboxes[0]?.files.keys() ?? [])], ['/tmp/sandpool-sbx-x1/a.txt']);
  });
});
