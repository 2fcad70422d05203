import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSandpool, type Sandpool } from '../../src/app/create-sandpool.js';
import { FakeServer, openAiChunk, sendJson, sendSse } from '../support/fake-llm-server.js';
import { connectUser, emitAck, nextEvent, testConfig, type ClientSocket } from '../support/helpers.js';

const chunk = (delta: Record<string, unknown>, finish: string | null = null): Record<string, unknown> => openAiChunk(delta, finish, 'fake-model');

const toolCallTurn = (id: string, name: string, args: Record<string, unknown>): ReturnType<typeof sendSse> =>
  sendSse([
    { data: chunk({ role: 'assistant', tool_calls: [{ index: 0, id, type: 'function', function: { name, arguments: JSON.stringify(args) } }] }) },
    { data: chunk({}, 'tool_calls') },
    { data: '[DONE]' },
  ]);

const textTurn = (...pieces: string[]): ReturnType<typeof sendSse> =>
  sendSse([...pieces.map((content) => ({ data: chunk({ content }) })), { data: chunk({}, 'stop') }, { data: '[DONE]' }]);

interface OpenAiMessage {
  role: string;
  content?: string | null;
  tool_call_id?: string;
  tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
}

describe('agent loop with a remote provider (OpenAI wire format on loopback)', () => {
  const fake = new FakeServer();
  let app: Sandpool;
  let socket: ClientSocket;
  before(async () => {
    const url = await fake.start();
    app = await createSandpool(
      testConfig({ POOL_MIN_SIZE: '1', LLM_PROVIDER: 'openai', OPENAI_BASE_URL: `${url}/v1`, OPENAI_API_KEY: 'sk-test', LLM_MODEL: 'fake-model' }),
      { warmTimeoutMs: 30_000 },
    );
    socket = await connectUser(app.url, { userId: 'remote-user' });
  });
  after(async () => {
    socket.close();
    await app.stop();
    await fake.close();
  });

  it('feeds approved tool results back to the model over several steps until it answers', async () => {
    const first = fake.next(toolCallTurn('call_w', 'write_file', { path: '/workspace/plan.txt', content: 'step one' }));
    const second = fake.next(toolCallTurn('call_r', 'read_text_file', { path: '/workspace/plan.txt' }));
    const third = fake.next(textTurn('The file says ', '"step one".'));

    const ack = await emitAck(socket, 'message', 'Save "step one" in plan.txt and read it back');
    assert.equal(ack.ok, true);
    const mine = (p: { requestId: string }): boolean => p.requestId === ack.requestId;
    for (const tool of ['write_file', 'read_text_file']) {
      const req = await nextEvent(socket, 'tool:request', mine);
      assert.equal(req.tool, tool);
      await emitAck(socket, 'tool:approval', { callId: req.callId, approved: true });
      assert.equal((await nextEvent(socket, 'tool:result', (r) => r.callId === req.callId)).ok, true);
    }
    const deltas: string[] = [];
    const done = await nextEvent(socket, 'message:done', mine);
    for (;;) {
      const d = await nextEvent(socket, 'message:delta', mine, 50).catch(() => undefined);
      if (!d) break;
      deltas.push(d.text);
    }
    assert.equal(done.text, 'The file says "step one".');
    assert.deepEqual(deltas, ['The file says ', '"step one".']);

    // Request 1: the sandbox's tools, declared from its tools/list.
    const body1 = first().body as { model: string; tools: Array<{ function: { name: string; parameters: unknown } }>; messages: OpenAiMessage[] };
    assert.equal(body1.model, 'fake-model');
    const names = body1.tools.map((t) => t.function.name);
    for (const n of ['list_directory', 'write_file', 'read_text_file']) assert.ok(names.includes(n), names.join(','));
    assert.equal(first().headers.authorization, 'Bearer sk-test');
    // Request 2 carries the write's result, request 3 the read's (the file content from the real sandbox).
    const msgs2 = (second().body as { messages: OpenAiMessage[] }).messages;
    const toolMsg2 = msgs2.find((m) => m.role === 'tool' && m.tool_call_id === 'call_w');
    assert.match(String(toolMsg2?.content), /Successfully wrote to \/workspace\/plan\.txt/);
    const msgs3 = (third().body as { messages: OpenAiMessage[] }).messages;
    assert.equal(msgs3.find((m) => m.tool_call_id === 'call_r')?.content, 'step one');
    assert.deepEqual(
      msgs3.map((m) => m.role),
      ['system', 'user', 'assistant', 'tool', 'assistant', 'tool'],
    );
  });

  it('sends a denial back to the model as a refusal, and the next message carries the history', async () => {
    fake.next(toolCallTurn('call_x', 'write_file', { path: '/workspace/nope.txt', content: 'x' }));
    const afterDenial = fake.next(textTurn('Understood, I did not write it.'));
    const ack = await emitAck(socket, 'message', 'write nope.txt');
    const mine = (p: { requestId: string }): boolean => p.requestId === ack.requestId;
    const req = await nextEvent(socket, 'tool:request', mine);
    await emitAck(socket, 'tool:approval', { callId: req.callId, approved: false });
    await nextEvent(socket, 'message:done', mine);
    const refusal = (afterDenial().body as { messages: OpenAiMessage[] }).messages.find((m) => m.tool_call_id === 'call_x');
    assert.match(String(refusal?.content), /denied/);

    const followUp = fake.next(textTurn('Still here.'));
    const ack2 = await emitAck(socket, 'message', 'are you there?');
    await nextEvent(socket, 'message:done', (p) => p.requestId === ack2.requestId);
    const history = (followUp().body as { messages: OpenAiMessage[] }).messages;
    // Both earlier exchanges, in order, then the new question.
    assert.equal(history.filter((m) => m.role === 'user').length, 3);
    assert.equal(history[history.length - 1]?.content, 'are you there?');
  });

  it('reports a provider failure as request:error LLM_FAILED and frees the slot', async () => {
    fake.next((res) => sendJson(res, 500, { error: { message: 'upstream exploded', type: 'server_error' } }));
    // The SDK retries a 500 (twice by default): give it the same answer each time.
    fake.next((res) => sendJson(res, 500, { error: { message: 'upstream exploded', type: 'server_error' } }));
    fake.next((res) => sendJson(res, 500, { error: { message: 'upstream exploded', type: 'server_error' } }));
    const ack = await emitAck(socket, 'message', 'hello');
    const err = await nextEvent(socket, 'request:error', (p) => p.requestId === ack.requestId);
    assert.equal(err.error.code, 'LLM_FAILED');
    assert.match(err.error.message, /500|upstream exploded/);
    assert.doesNotMatch(err.error.message, /sk-test/);
    // The failed request's slot is free: a new tab of the user sees nothing in flight.
    const tab = await connectUser(app.url, { userId: 'remote-user' });
    try {
      assert.equal((await nextEvent(tab, 'session')).inFlight, 0);
    } finally {
      tab.close();
    }
  });
});

describe('replica limits', () => {
  // Twin in the fast tier: presence "refuses presences beyond MAX_SESSIONS" and chat-service "refuses a user beyond MAX_SESSIONS". Here: the handshake's connect_error a client sees.
  it('refuses a connection beyond MAX_SESSIONS with connect_error TOO_MANY_REQUESTS', async () => {
    const app = await createSandpool(testConfig({ POOL_MIN_SIZE: '0', MAX_SESSIONS: '2' }));
    const open: ClientSocket[] = [];
    try {
      open.push(await connectUser(app.url, { userId: 'cap-1' }), await connectUser(app.url, { userId: 'cap-2' }));
      // A second tab of an existing user is fine.
      open.push(await connectUser(app.url, { userId: 'cap-1' }));
      const err = (await connectUser(app.url, { userId: 'cap-3' }).then(
        () => assert.fail('accepted beyond MAX_SESSIONS'),
        (e: unknown) => e,
      )) as { message: string; data: { code: string; message: string } };
      assert.equal(err.message, 'TOO_MANY_REQUESTS');
      assert.match(err.data.message, /maximum of 2 sessions/);
      // One refusal, counted once.
      const metrics = await (await fetch(`${app.url}/metrics`)).text();
      assert.match(metrics, /^sandpool_rejections_total\{[^}]*code="TOO_MANY_REQUESTS"[^}]*\} 1$/m);
    } finally {
      for (const s of open) s.close();
      await app.stop();
    }
  });
});
