import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { LABELS } from '../../src/runtime/types.js';
import { createMemoryState } from '../../src/state/memory-state.js';
import type { MessageText, ToolRequest, ToolResult } from '../../src/protocol/events.js';
import { sleep } from '../../src/util/async.js';
import { connectUser, dockerPs, emitAck, emitUnchecked, nextEvent, sendUnchecked, testConfig, waitFor, type ClientSocket } from '../support/helpers.js';

const sockets: ClientSocket[] = [];
async function user(app: Sandpool, userId: string, transports?: Array<'websocket' | 'polling'>): Promise<ClientSocket> {
  const s = await connectUser(app.url, { userId }, { transports });
  sockets.push(s);
  return s;
}

/** Sends a message, approves (or denies) every tool call of it, resolves with its results and final answer. */
async function converse(socket: ClientSocket, text: string, approved = true): Promise<{ requestId: string; results: ToolResult[]; done: MessageText }> {
  const ack = await emitAck(socket, 'message', text);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const requestId = ack.requestId ?? '';
  const results: ToolResult[] = [];
  const mine = (p: { requestId: string | null }): boolean => p.requestId === requestId;
  // Waits that lose their race are stopped on the way out (a pending one's timer keeps the file's process alive).
  const stop = new AbortController();
  try {
    const done = nextEvent(socket, 'message:done', mine, undefined, stop.signal);
    const failed = nextEvent(socket, 'request:error', mine, undefined, stop.signal).then((e) => {
      throw new Error(`${e.error.code}: ${e.error.message}`);
    });
    failed.catch(() => undefined);
    let finished = false;
    void done.then(() => (finished = true), () => undefined);
    // Approve each tool call as it comes, until the answer arrives.
    for (;;) {
      const next = await Promise.race([done.then(() => null), failed, nextEvent(socket, 'tool:request', mine, undefined, stop.signal).catch(() => null)]);
      if (next === null || finished) break;
      await emitAck(socket, 'tool:approval', { callId: next.callId, approved });
      results.push(await nextEvent(socket, 'tool:result', (r) => r.callId === next.callId));
    }
    return { requestId, results, done: await done };
  } finally {
    stop.abort();
  }
}

async function stats(app: Sandpool): Promise<{ idle: number; active: number; total: number }> {
  return (await (await fetch(`${app.url}/stats/pool`)).json()) as { idle: number; active: number; total: number };
}

/*
 * The chat over the wire: a real replica, socket.io-client and Docker
 * sandboxes. test/unit/chat-service.test.ts runs the same rules on fakes in
 * milliseconds; a test here that has a twin there says so, and stays for
 * what only the wire and the engine show (acks and events as a client gets
 * them, a container per user, the gateway's admission and budget).
 */
describe('chat gateway (real server, socket.io-client, Docker pool)', () => {
  let app: Sandpool;
  before(async () => {
    app = await createSandpool(
      testConfig({ POOL_MIN_SIZE: '2', POOL_MAX_SIZE: '12', SESSION_DISCONNECT_GRACE_MS: '400', TOOL_APPROVAL_TIMEOUT_MS: '30000' }),
      { warmTimeoutMs: 30_000 },
    );
  });
  after(async () => {
    for (const s of sockets) s.close();
    await app.stop();
  });

  // Twin in the fast tier: chat-service "runs the seed flow". Here: the order as socket.io-client receives it, over Docker.
  it('runs the seed scenario: message -> tool:request -> approve -> tool:result -> message:done', async () => {
    const s = await user(app, 'seed-user');
    const order: string[] = [];
    s.onAny((event: string) => order.push(event));
    await nextEvent(s, 'session');
    const ack = await emitAck(s, 'message', 'List all files in /workspace');
    assert.equal(ack.ok, true);
    assert.match(ack.requestId ?? '', /^[0-9a-f-]{36}$/);
    const req = await nextEvent(s, 'tool:request', (r) => r.requestId === ack.requestId);
    assert.equal(req.tool, 'list_directory');
    assert.deepEqual(req.arguments, { path: '/workspace' });
    assert.deepEqual(await emitAck(s, 'tool:approval', { callId: req.callId, approved: true }), { ok: true });
    const result = await nextEvent(s, 'tool:result', (r) => r.callId === req.callId);
    assert.equal(result.ok, true);
    assert.equal(result.tool, 'list_directory');
    assert.equal(typeof result.durationMs, 'number');
    const done = await nextEvent(s, 'message:done', (d) => d.requestId === ack.requestId);
    assert.match(done.text, /list_directory/);
    assert.deepEqual(
      order.filter((e) => e !== 'message:delta' && e !== 'session'),
      ['message:accepted', 'tool:request', 'tool:decided', 'tool:result', 'message:done'],
    );
  });

  // Twin in the fast tier: chat-service "keeps one sandbox per user". Here: the file lives in one container across messages.
  it('keeps one sandbox per session: a file written in one message is read in the next', async () => {
    const s = await user(app, 'writer');
    const wrote = await converse(s, 'write "persisted across messages" to /workspace/keep.txt');
    assert.equal(wrote.results[0]?.ok, true, wrote.results[0]?.content);
    const read = await converse(s, 'read /workspace/keep.txt');
    assert.equal(read.results[0]?.content, 'persisted across messages');
    assert.match(read.done.text, /persisted across messages/);
    const listed = await converse(s, 'list files in /workspace');
    assert.match(listed.results[0]?.content ?? '', /keep\.txt/);
  });

  // Twin in the fast tier: chat-service "never shows one user another user's files". Here: separate containers, and UNKNOWN_CALL in an ack.
  it('isolates users: B never sees A\'s files and cannot decide A\'s call', async () => {
    const a = await user(app, 'iso-a');
    const b = await user(app, 'iso-b');
    await converse(a, 'write "a secret" to /workspace/a-only.txt');
    const bList = await converse(b, 'list files in /workspace');
    assert.doesNotMatch(bList.results[0]?.content ?? '', /a-only/);
    const bRead = await converse(b, 'read /workspace/a-only.txt');
    assert.equal(bRead.results[0]?.ok, false);

    // A's pending call: B's approval is refused and changes nothing.
    const ack = await emitAck(a, 'message', 'read /workspace/a-only.txt');
    const req = await nextEvent(a, 'tool:request', (r) => r.requestId === ack.requestId);
    const bApproval = await emitAck(b, 'tool:approval', { callId: req.callId, approved: true });
    assert.equal(bApproval.ok, false);
    assert.equal(bApproval.error?.code, 'UNKNOWN_CALL');
    const unknown = await emitAck(a, 'tool:approval', { callId: 'no-such-call', approved: true });
    assert.equal(unknown.error?.code, 'UNKNOWN_CALL');
    // Still pending for A, who can decide it.
    const resultP = nextEvent(a, 'tool:result', (r) => r.callId === req.callId);
    assert.deepEqual(await emitAck(a, 'tool:approval', { callId: req.callId, approved: true }), { ok: true });
    assert.equal((await resultP).content, 'a secret');
  });

  // Twin in the fast tier: chat-service "holds MAX_REQUESTS_PER_USER in flight". Here: across two tabs, with acks on the wire.
  it('holds 5 requests in flight per user, refuses the 6th with TOO_MANY_REQUESTS, and frees slots as they finish', async () => {
    const s = await user(app, 'busy');
    const other = await user(app, 'bystander');
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await emitAck(s, 'message', `read /workspace/file-${i}.txt`));
    assert.ok(acks.every((a) => a.ok), JSON.stringify(acks));
    const pending: ToolRequest[] = [];
    for (const a of acks) pending.push(await nextEvent(s, 'tool:request', (r) => r.requestId === a.requestId));
    const sixth = await emitAck(s, 'message', 'list files in /workspace');
    assert.equal(sixth.ok, false);
    assert.equal(sixth.error?.code, 'TOO_MANY_REQUESTS');
    // Another tab of the same user shares the limit.
    const tab2 = await user(app, 'busy');
    assert.equal((await emitAck(tab2, 'message', 'help')).error?.code, 'TOO_MANY_REQUESTS');
    // Other users are unaffected.
    assert.match((await converse(other, 'help')).done.text, /local planner/);
    // Deny one: its slot frees and the next message is accepted.
    const doneP = nextEvent(s, 'message:done', (d) => d.requestId === pending[0]?.requestId);
    await emitAck(s, 'tool:approval', { callId: pending[0]?.callId ?? '', approved: false });
    await doneP;
    const seventh = await emitAck(s, 'message', 'help');
    assert.equal(seventh.ok, true);
    // Finish the rest so the user ends clean.
    for (const r of pending.slice(1)) await emitAck(s, 'tool:approval', { callId: r.callId, approved: false });
  });

  // Twin in the fast tier: chat-service "reports a denial and a timeout". Here: nothing ran in the container.
  it('reports a denial to the model and the user, without running the tool', async () => {
    const s = await user(app, 'denier');
    const before = (await stats(app)).active;
    const { results, done } = await converse(s, 'write "nope" to /workspace/denied.txt', false);
    assert.equal(results[0]?.ok, false);
    assert.equal(results[0]?.approval, 'denied');
    assert.match(results[0]?.content ?? '', /denied/);
    assert.match(done.text, /denied/);
    // Nothing ran, so no sandbox was leased for this user.
    assert.equal((await stats(app)).active, before);
  });

  it('shares one session and sandbox across a user\'s tabs; every tab receives the events', async () => {
    const tab1 = await user(app, 'two-tabs');
    const tab2 = await user(app, 'two-tabs', ['polling']);
    const ack = await emitAck(tab1, 'message', 'write "from tab 1" to /workspace/tabs.txt');
    const accepted = await nextEvent(tab2, 'message:accepted', (m) => m.requestId === ack.requestId);
    assert.equal(accepted.text, 'write "from tab 1" to /workspace/tabs.txt');
    const seen2 = await nextEvent(tab2, 'tool:request', (r) => r.requestId === ack.requestId);
    // A third tab connecting now is told about the waiting call in its session event.
    const tab3 = await user(app, 'two-tabs');
    const info = await nextEvent(tab3, 'session');
    assert.deepEqual(info.pending.map((p) => p.callId), [seen2.callId]);
    assert.equal(info.inFlight, 1);
    // Approve from the other tab (over long-polling).
    const resultOn1 = nextEvent(tab1, 'tool:result', (r) => r.callId === seen2.callId);
    assert.deepEqual(await emitAck(tab2, 'tool:approval', { callId: seen2.callId, approved: true }), { ok: true });
    assert.deepEqual(await nextEvent(tab1, 'tool:decided', (d: { callId: string }) => d.callId === seen2.callId), {
      requestId: ack.requestId,
      callId: seen2.callId,
      approved: true,
    });
    assert.equal((await resultOn1).ok, true);
    const read = await converse(tab2, 'read /workspace/tabs.txt');
    assert.equal(read.results[0]?.content, 'from tab 1');
  });

  it('frees the slots of a user who disconnects mid-request and destroys the sandbox after the grace period', async () => {
    const s = await user(app, 'leaver');
    await converse(s, 'write "x" to /workspace/x.txt');
    const sandboxes = await dockerPs({ [LABELS.replica]: app.config.server.replicaId });
    const activeBefore = (await stats(app)).active;
    assert.ok(activeBefore >= 1);
    for (let i = 0; i < 5; i++) await emitAck(s, 'message', 'read /workspace/x.txt');
    assert.equal((await emitAck(s, 'message', 'help')).error?.code, 'TOO_MANY_REQUESTS');
    s.close();
    await waitFor('the sandbox released after the grace period', async () => (await stats(app)).active === activeBefore - 1, 10_000);
    // The leaver's container is gone and the books match the engine once spares are refilled.
    await waitFor('containers to match the stats', async () => {
      const now = await dockerPs({ [LABELS.replica]: app.config.server.replicaId });
      const s2 = await stats(app);
      return now.length === s2.idle + s2.active && sandboxes.some((id) => !now.includes(id));
    });
    // Back again: a fresh session with all 5 slots free.
    const again = await user(app, 'leaver');
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await emitAck(again, 'message', 'help'));
    assert.ok(acks.every((a) => a.ok), JSON.stringify(acks));
    // ... and a fresh sandbox: the old workspace is gone.
    const read = await converse(again, 'read /workspace/x.txt');
    assert.equal(read.results[0]?.ok, false);
  });

  // Twin in the fast tier: chat-service "answers bad input with coded refusals". Here: what Socket.IO delivers (non-JSON payloads, unknown events, no ack).
  it('answers bad input with coded errors and keeps serving', async () => {
    const s = await user(app, 'fuzzer');
    const cases: Array<[unknown, string]> = [
      [42, 'BAD_REQUEST'],
      [null, 'BAD_REQUEST'],
      [['list files in /workspace'], 'BAD_REQUEST'],
      [{ text: 7 }, 'BAD_REQUEST'],
      [{ nope: 'x' }, 'BAD_REQUEST'],
      ['   ', 'BAD_REQUEST'],
      ['x'.repeat(app.config.chat.maxMessageBytes + 1), 'PAYLOAD_TOO_LARGE'],
      ['é'.repeat(app.config.chat.maxMessageBytes / 2 + 1), 'PAYLOAD_TOO_LARGE'],
    ];
    for (const [payload, code] of cases) {
      const ack = await emitUnchecked(s, 'message', payload);
      assert.equal(ack.ok, false, `accepted ${JSON.stringify(payload).slice(0, 40)}`);
      assert.equal(ack.error?.code, code, `${JSON.stringify(payload).slice(0, 40)}: ${ack.error?.message}`);
      assert.ok((ack.error?.message ?? '').length > 5);
    }
    for (const approval of [{}, { callId: 5, approved: true }, { callId: 'x', approved: 'yes' }, 'approve', null]) {
      const ack = await emitUnchecked(s, 'tool:approval', approval);
      assert.equal(ack.error?.code, 'BAD_REQUEST', JSON.stringify(approval));
    }
    const unknown = await emitUnchecked(s, 'rm -rf', '/');
    assert.equal(unknown.error?.code, 'BAD_REQUEST');
    // Without an ack the refusal still arrives, as request:error.
    const errP = nextEvent(s, 'request:error', (e) => e.requestId === null);
    sendUnchecked(s, 'message', 12345);
    assert.equal((await errP).error.code, 'BAD_REQUEST');
    // An approval without ack for nobody's call: ignored, no crash.
    s.emit('tool:approval', { callId: 'ghost', approved: true });
    // After all of that, the same socket still works.
    assert.match((await converse(s, 'help')).done.text, /list files in/);
  });

  it('refuses an event flood with TOO_MANY_REQUESTS while other users are unaffected', async () => {
    const flooder = await user(app, 'flooder');
    const calm = await user(app, 'calm');
    const acks = await Promise.all(Array.from({ length: 120 }, () => emitAck(flooder, 'tool:approval', { callId: 'x', approved: true })));
    const codes = new Map<string, number>();
    for (const a of acks) codes.set(a.error?.code ?? 'ok', (codes.get(a.error?.code ?? 'ok') ?? 0) + 1);
    assert.ok((codes.get('TOO_MANY_REQUESTS') ?? 0) > 0, JSON.stringify([...codes]));
    assert.equal([...codes.keys()].every((c) => c === 'TOO_MANY_REQUESTS' || c === 'UNKNOWN_CALL'), true, JSON.stringify([...codes]));
    assert.match((await converse(calm, 'help')).done.text, /local planner/);
  });

  it('answers anything else helpfully, and help lists the sandbox tools', async () => {
    const s = await user(app, 'curious');
    const other = await converse(s, 'what is the meaning of life?');
    assert.equal(other.results.length, 0);
    assert.match(other.done.text, /not a language model/);
    assert.match(other.done.text, /list files in/);
    const help = await converse(s, 'HELP');
    for (const tool of ['list_directory', 'read_text_file', 'write_file', 'search_files', 'directory_tree']) assert.match(help.done.text, new RegExp(tool));
  });

  it('searches and shows trees through the planner', async () => {
    const s = await user(app, 'searcher');
    assert.equal((await converse(s, 'mkdir /workspace/haystack')).results[0]?.ok, true);
    const wrote = await converse(s, 'write "needle" to /workspace/haystack/needle.txt');
    assert.equal(wrote.results[0]?.ok, true, wrote.results[0]?.content);
    const found = await converse(s, 'search needle in /workspace');
    assert.match(found.results[0]?.content ?? '', /needle\.txt/);
    const tree = await converse(s, 'tree /workspace');
    assert.match(tree.results[0]?.content ?? '', /haystack/);
  });

  it('exposes realtime metrics', async () => {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    assert.match(text, /^sandpool_socket_connections\{replica="[^"]+"\} [1-9]\d*$/m);
    assert.match(text, /^sandpool_rejections_total\{[^}]*code="TOO_MANY_REQUESTS"[^}]*\} [1-9]\d*$/m);
    assert.match(text, /^sandpool_approval_wait_seconds_count\{[^}]*outcome="approved"[^}]*\} [1-9]\d*$/m);
    assert.match(text, /^sandpool_time_to_first_tool_result_seconds_count\{replica="[^"]+"\} [1-9]\d*$/m);
    assert.match(text, /^sandpool_requests_in_flight\{replica="[^"]+"\} \d+$/m);
  });
});

describe('approval timeout, idle release and shutdown', () => {
  // Twin in the fast tier: chat-service "reports a denial and a timeout". Here: the timeout while the user's container waits.
  it('refuses a tool call nobody approves within TOOL_APPROVAL_TIMEOUT_MS', async () => {
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '0', TOOL_APPROVAL_TIMEOUT_MS: '600' }));
    try {
      const s = await user(app, 'sleepy');
      const ack = await emitAck(s, 'message', 'list files in /workspace');
      const result = await nextEvent(s, 'tool:result', (r) => r.requestId === ack.requestId);
      assert.equal(result.ok, false);
      assert.equal(result.approval, 'timeout');
      assert.match(result.content, /did not approve/);
      const done = await nextEvent(s, 'message:done', (d) => d.requestId === ack.requestId);
      assert.match(done.text, /did not approve/);
      // A late approval finds nothing to decide, and the timed-out request holds no slot.
      assert.equal((await emitAck(s, 'tool:approval', { callId: result.callId, approved: true })).error?.code, 'UNKNOWN_CALL');
      const tab = await user(app, 'sleepy');
      assert.equal((await nextEvent(tab, 'session')).inFlight, 0);
    } finally {
      await app.stop();
    }
  });

  it('releases an idle session\'s sandbox after SESSION_IDLE_TIMEOUT_MS', async () => {
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '1', SESSION_IDLE_TIMEOUT_MS: '1500' }), { warmTimeoutMs: 30_000 });
    try {
      const s = await user(app, 'idler');
      await converse(s, 'list files in /workspace');
      assert.equal((await stats(app)).active, 1);
      await waitFor('idle sandbox released', async () => (await stats(app)).active === 0, 10_000);
    } finally {
      await app.stop();
    }
  });

  it('keeps the sandbox through a request that outlasts SESSION_IDLE_TIMEOUT_MS, and says so when a later request starts fresh', async () => {
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '1', SESSION_IDLE_TIMEOUT_MS: '1000', TOOL_APPROVAL_TIMEOUT_MS: '20000' }), { warmTimeoutMs: 30_000 });
    try {
      const s = await user(app, 'slow-decider');
      assert.equal((await converse(s, 'write "kept" to /workspace/kept.txt')).results[0]?.ok, true);
      const ack = await emitAck(s, 'message', 'read /workspace/kept.txt');
      const asked = await nextEvent(s, 'tool:request', (r) => r.requestId === ack.requestId);
      // Twice the idle timeout while the request waits for its approval: busy, not idle.
      await sleep(2_200);
      assert.equal((await stats(app)).active, 1, 'the sandbox is kept while a request runs');
      await emitAck(s, 'tool:approval', { callId: asked.callId, approved: true });
      const result = await nextEvent(s, 'tool:result', (r) => r.callId === asked.callId);
      assert.equal(result.ok, true, result.content);
      assert.match(result.content, /kept/);
      await nextEvent(s, 'message:done', (d) => d.requestId === ack.requestId);
      // Idle for real now: released; the next tool call says its files are gone.
      await waitFor('idle sandbox released', async () => (await stats(app)).active === 0, 10_000);
      const later = await converse(s, 'read /workspace/kept.txt');
      assert.equal(later.results[0]?.ok, false);
      assert.match(later.results[0]?.content ?? '', /earlier sandbox was removed/);
    } finally {
      await app.stop();
    }
  });

  it('does not take a user\'s sandbox before their first tool call, even before any sandbox has started (POOL_MIN_SIZE=0)', async () => {
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '0' }));
    try {
      const s = await user(app, 'first-help');
      const help = await converse(s, 'help');
      assert.match(help.done.text, /list_directory/, 'help lists the sandbox tools, learnt from a throwaway sandbox');
      await waitFor('the throwaway sandbox is gone', async () => (await stats(app)).total === 0, 15_000);
      assert.equal((await converse(s, 'list files in /workspace')).results[0]?.ok, true);
      assert.equal((await stats(app)).active, 1, 'the first tool call took the user\'s own sandbox');
    } finally {
      await app.stop();
    }
  });

  // Twin in the fast tier: chat-service "cancels the requests ... of a stopping replica as SHUTTING_DOWN". Here: stop() of a whole replica, and no container left.
  it('on stop, fails a request still waiting with SHUTTING_DOWN and leaves no container', async () => {
    // 9 s: a third (the request grace) for the waiting request, the rest for removing containers, which on a loaded
    // machine took longer than what a 3 s budget left them (a container was still there after stop()).
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '1', SHUTDOWN_TIMEOUT_MS: '9000' }), { warmTimeoutMs: 30_000 });
    const s = await user(app, 'in-flight-at-stop');
    await converse(s, 'write "x" to /workspace/x.txt');
    const ack = await emitAck(s, 'message', 'read /workspace/x.txt');
    await nextEvent(s, 'tool:request', (r: ToolRequest) => r.requestId === ack.requestId);
    const errP = nextEvent(s, 'request:error', (e) => e.requestId === ack.requestId);
    const reason = new Promise<string>((resolve) => s.once('disconnect', resolve));
    await app.stop();
    assert.equal((await errP).error.code, 'SHUTTING_DOWN');
    // A transport-level close: Socket.IO clients reconnect by themselves (to a survivor).
    assert.equal(await reason, 'transport close');
    assert.deepEqual(await dockerPs({ [LABELS.replica]: app.config.server.replicaId }), []);
  });
});

describe('approval race', () => {
  it('announces a tool call only once it can be decided: an instant approval never gets UNKNOWN_CALL, even with slow shared state', async () => {
    // Sharing a pending call costs a Redis round trip; stretch it so the race is certain.
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    const add = state.pending.add.bind(state.pending);
    state.pending.add = async (userId, call) => {
      await sleep(150);
      return add(userId, call);
    };
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '1' }), { warmTimeoutMs: 30_000, state });
    try {
      const s = await user(app, 'quick-approver');
      const decisions: Array<Promise<{ ok: boolean; error?: { code: string } }>> = [];
      s.on('tool:request', (r: ToolRequest) => decisions.push(emitAck(s, 'tool:approval', { callId: r.callId, approved: true })));
      const ack = await emitAck(s, 'message', 'write "fast" to /workspace/fast.txt');
      const result = await nextEvent(s, 'tool:result', (r) => r.requestId === ack.requestId, 10_000);
      assert.deepEqual(await Promise.all(decisions), [{ ok: true }]);
      assert.equal(result.ok, true, result.content);
      assert.equal(result.approval, 'approved');
    } finally {
      await app.stop();
    }
  });
});

describe('shared state failures', () => {
  it('never runs a request whose sender was refused, and survives a slot that cannot be freed', async () => {
    const state = createMemoryState({ maxRequestsPerUser: 5, maxSocketsPerUser: 10 });
    let failConversationId = false;
    let failRelease = false;
    const conversationId = state.conversations.conversationId.bind(state.conversations);
    state.conversations.conversationId = async (userId) => {
      if (failConversationId) throw new Error('Connection is closed.');
      return conversationId(userId);
    };
    const release = state.limiter.release.bind(state.limiter);
    state.limiter.release = async (userId, requestId) => {
      await release(userId, requestId);
      if (failRelease) throw new Error('Connection is closed.');
    };
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '1' }), { warmTimeoutMs: 30_000, state });
    try {
      const s = await user(app, 'flaky-state');
      await nextEvent(s, 'session');
      const seen: string[] = [];
      s.onAny((event: string) => seen.push(event));
      failConversationId = true;
      const refused = await emitAck(s, 'message', 'list files in /workspace');
      assert.equal(refused.ok, false);
      assert.equal(refused.error?.code, 'INTERNAL');
      assert.match(refused.error?.message ?? '', /shared state/);
      await sleep(500);
      assert.deepEqual(seen, [], 'a refused message produces no request events');
      assert.equal(app.chat.inFlight(), 0);
      failConversationId = false;
      // A slot that cannot be freed (Redis down at that moment) is logged, not an unhandled rejection.
      failRelease = true;
      assert.match((await converse(s, 'help')).done.text, /list files in/);
      failRelease = false;
      assert.equal((await converse(s, 'list files in /workspace')).results[0]?.ok, true);
    } finally {
      await app.stop();
    }
  });
});

describe('identity', () => {
  const secret = 'test-secret-that-is-long-enough';
  let app: Sandpool;
  before(async () => {
    app = await createSandpool(testConfig({ POOL_MIN_SIZE: '0', AUTH_SECRET: secret }));
  });
  after(() => app.stop());

  const token = (claims: { sub?: string; exp?: number }, key = secret): Promise<string> => {
    let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
    if (claims.sub) jwt = jwt.setSubject(claims.sub);
    jwt = jwt.setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 600);
    return jwt.sign(new TextEncoder().encode(key));
  };

  async function refusal(auth: Record<string, unknown>): Promise<{ message: string; data: { code: string; message: string } }> {
    try {
      const s = await connectUser(app.url, auth);
      s.close();
    } catch (err) {
      return err as { message: string; data: { code: string; message: string } };
    }
    assert.fail('connection was accepted');
  }

  it('accepts a valid HS256 token; the user is its sub, whatever uid says', async () => {
    const s = await connectUser(app.url, { token: await token({ sub: 'jwt-user' }) }, { uid: 'someone-else' });
    sockets.push(s);
    const info = await nextEvent(s, 'session');
    assert.equal(info.userId, 'jwt-user');
    assert.equal((await emitAck(s, 'message', 'help')).ok, true);
  });

  it('refuses a wrong signature, an expired token, a token without sub, and a bare userId', async () => {
    for (const [auth, pattern] of [
      [{ token: await token({ sub: 'x' }, 'another-secret-of-enough-length') }, /signature/i],
      [{ token: await token({ sub: 'x', exp: Math.floor(Date.now() / 1000) - 60 }) }, /exp/i],
      [{ token: await token({}) }, /sub/],
      [{ userId: 'mallory' }, /token/],
      [{ token: 'not-a-jwt' }, /invalid token/],
    ] as const) {
      const err = await refusal(auth);
      assert.equal(err.message, 'UNAUTHORIZED');
      assert.equal(err.data.code, 'UNAUTHORIZED');
      assert.match(err.data.message, pattern);
    }
  });
});
