import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SandpoolError } from '../../src/errors.js';
import { createAnthropicProvider } from '../../src/agent/providers/anthropic-provider.js';
import { createGeminiProvider } from '../../src/agent/providers/gemini-provider.js';
import { DEFAULT_MODELS, createLlmProvider } from '../../src/agent/providers/index.js';
import { createOpenAiProvider } from '../../src/agent/providers/openai-provider.js';
import type { ChatMessage, CompletionRequest, LlmProvider, ToolSpec } from '../../src/agent/types.js';
import { FakeServer, openAiChunk, sendJson, sendSse } from '../support/fake-llm-server.js';

const API_KEY = 'test-key-0123456789abcdef';
const SYSTEM = 'You are a sandbox assistant.';
const LIST_DIRECTORY: ToolSpec = {
  name: 'list_directory',
  description: 'List a directory',
  inputSchema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
};
/** user → assistant (two calls) → two results, one failed: covers each provider's history mapping. */
const HISTORY: ChatMessage[] = [
  { role: 'user', text: 'What is in /workspace?' },
  {
    role: 'assistant',
    text: 'Let me look.',
    toolCalls: [
      { id: 'call_1', name: 'list_directory', arguments: { path: '/workspace' } },
      { id: 'call_2', name: 'list_directory', arguments: { path: '/secret' } },
    ],
  },
  { role: 'tool', callId: 'call_1', name: 'list_directory', ok: true, content: '[FILE] a.txt' },
  { role: 'tool', callId: 'call_2', name: 'list_directory', ok: false, content: 'denied by the user' },
];

function request(overrides: Partial<CompletionRequest> = {}): CompletionRequest {
  return { system: SYSTEM, messages: [{ role: 'user', text: 'hi' }], tools: [LIST_DIRECTORY], ...overrides };
}

async function assertLlmFailed(promise: Promise<unknown>, pattern: RegExp): Promise<SandpoolError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SandpoolError, `expected a SandpoolError, got ${String(err)}`);
    assert.equal(err.code, 'LLM_FAILED');
    // The provider's own words go to the log; the client reads only the kind of failure.
    assert.match(err.detail ?? '', pattern);
    assert.match(err.message, /^the model \((openai|anthropic|gemini)\) failed: [^:]+; try again$/);
    for (const text of [err.message, err.detail ?? '']) assert.ok(!text.includes(API_KEY), `the API key leaked into: ${text}`);
    return err;
  }
  assert.fail('expected the provider to reject');
}

/** A port that was just free: nothing listens there, so connecting fails at once. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('openai provider', () => {
  const fake = new FakeServer();
  let provider: LlmProvider;
  before(async () => {
    const url = await fake.start();
    provider = createOpenAiProvider({ apiKey: API_KEY, baseUrl: `${url}/v1`, model: 'gpt-test', timeoutMs: 5000, maxRetries: 0 });
  });
  after(() => fake.close());

  const chunk = (delta: Record<string, unknown>, finish: string | null = null): Record<string, unknown> => openAiChunk(delta, finish);

  it('sends the request in the chat.completions shape and returns streamed tool calls', async () => {
    const sent = fake.next(
      sendSse([
        { data: chunk({ role: 'assistant', content: null }) },
        { data: chunk({ tool_calls: [{ index: 0, id: 'call_abc', type: 'function', function: { name: 'list_directory', arguments: '' } }] }) },
        { data: chunk({ tool_calls: [{ index: 0, function: { arguments: '{"path":' } }] }) },
        { data: chunk({ tool_calls: [{ index: 0, function: { arguments: '"/workspace"}' } }] }) },
        { data: chunk({}, 'tool_calls') },
        { data: '[DONE]' },
      ]),
    );
    const turn = await provider.complete(request({ messages: HISTORY }));
    assert.deepEqual(turn, { text: '', toolCalls: [{ id: 'call_abc', name: 'list_directory', arguments: { path: '/workspace' } }] });

    const { method, url, headers, body } = sent();
    assert.equal(method, 'POST');
    assert.equal(url, '/v1/chat/completions');
    assert.equal(headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(body.model, 'gpt-test');
    assert.equal(body.stream, true);
    assert.deepEqual(body.tools, [
      { type: 'function', function: { name: 'list_directory', description: 'List a directory', parameters: LIST_DIRECTORY.inputSchema } },
    ]);
    assert.deepEqual(body.messages, [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'What is in /workspace?' },
      {
        role: 'assistant',
        content: 'Let me look.',
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'list_directory', arguments: '{"path":"/workspace"}' } },
          { id: 'call_2', type: 'function', function: { name: 'list_directory', arguments: '{"path":"/secret"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '[FILE] a.txt' },
      { role: 'tool', tool_call_id: 'call_2', content: 'Error: denied by the user' },
    ]);
  });

  it('streams text deltas and returns their concatenation', async () => {
    fake.next(sendSse([{ data: chunk({ role: 'assistant', content: 'Hello, ' }) }, { data: chunk({ content: 'world.' }) }, { data: chunk({}, 'stop') }, { data: '[DONE]' }]));
    const deltas: string[] = [];
    const turn = await provider.complete(request({ onTextDelta: (d) => deltas.push(d) }));
    assert.deepEqual(turn, { text: 'Hello, world.', toolCalls: [] });
    assert.deepEqual(deltas, ['Hello, ', 'world.']);
  });

  it('rejects tool call arguments that are not JSON', async () => {
    fake.next(
      sendSse([
        { data: chunk({ tool_calls: [{ index: 0, id: 'call_x', type: 'function', function: { name: 'list_directory', arguments: '{"path": /work' } }] }) },
        { data: '[DONE]' },
      ]),
    );
    await assertLlmFailed(provider.complete(request()), /^openai: .*list_directory.*invalid JSON/);
  });

  it('turns an HTTP error into LLM_FAILED with the status and message, without retrying or leaking the key', async () => {
    const before = fake.requests.length;
    fake.next((res) => sendJson(res, 401, { error: { message: `Incorrect API key provided: ${API_KEY}`, type: 'invalid_request_error', code: 'invalid_api_key' } }));
    await assertLlmFailed(provider.complete(request()), /^openai: HTTP 401: Incorrect API key provided/);
    assert.equal(fake.requests.length, before + 1);
  });
});

describe('anthropic provider', () => {
  const fake = new FakeServer();
  let provider: LlmProvider;
  before(async () => {
    const url = await fake.start();
    provider = createAnthropicProvider({ apiKey: API_KEY, baseUrl: url, model: 'claude-test', timeoutMs: 5000, maxRetries: 0, maxTokens: 1000 });
  });
  after(() => fake.close());

  const messageStart = {
    event: 'message_start',
    data: {
      type: 'message_start',
      message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-test', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 10, output_tokens: 1 } },
    },
  };
  const messageEnd = (stopReason: string): { event: string; data: unknown }[] => [
    { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 12 } } },
    { event: 'message_stop', data: { type: 'message_stop' } },
  ];

  it('sends the request in the Messages shape and returns tool_use blocks as tool calls', async () => {
    const sent = fake.next(
      sendSse([
        messageStart,
        { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_01', name: 'list_directory', input: {} } } },
        { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"path":' } } },
        { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: ' "/workspace"}' } } },
        { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
        ...messageEnd('tool_use'),
      ]),
    );
    const turn = await provider.complete(request({ messages: HISTORY }));
    assert.deepEqual(turn, { text: '', toolCalls: [{ id: 'toolu_01', name: 'list_directory', arguments: { path: '/workspace' } }] });

    const { method, url, headers, body } = sent();
    assert.equal(method, 'POST');
    assert.equal(url, '/v1/messages');
    // This SDK version sends the key as a bearer token; older ones used x-api-key.
    assert.ok(headers['x-api-key'] === API_KEY || headers.authorization === `Bearer ${API_KEY}`, 'no API key header');
    assert.ok(headers['anthropic-version'], 'no anthropic-version header');
    assert.equal(body.model, 'claude-test');
    assert.equal(body.max_tokens, 1000);
    assert.equal(body.stream, true);
    assert.equal(body.system, SYSTEM);
    assert.deepEqual(body.tools, [{ name: 'list_directory', description: 'List a directory', input_schema: LIST_DIRECTORY.inputSchema }]);
    assert.deepEqual(body.messages, [
      { role: 'user', content: [{ type: 'text', text: 'What is in /workspace?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me look.' },
          { type: 'tool_use', id: 'call_1', name: 'list_directory', input: { path: '/workspace' } },
          { type: 'tool_use', id: 'call_2', name: 'list_directory', input: { path: '/secret' } },
        ],
      },
      // Both results in ONE user turn: the API wants strictly alternating roles.
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '[FILE] a.txt' },
          { type: 'tool_result', tool_use_id: 'call_2', content: 'denied by the user', is_error: true },
        ],
      },
    ]);
  });

  it('streams text deltas and returns their concatenation', async () => {
    fake.next(
      sendSse([
        messageStart,
        { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
        { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello, ' } } },
        { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'world.' } } },
        { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
        ...messageEnd('end_turn'),
      ]),
    );
    const deltas: string[] = [];
    const turn = await provider.complete(request({ onTextDelta: (d) => deltas.push(d) }));
    assert.deepEqual(turn, { text: 'Hello, world.', toolCalls: [] });
    assert.deepEqual(deltas, ['Hello, ', 'world.']);
  });

  it('turns an HTTP error into LLM_FAILED with the status and message, without retrying', async () => {
    const before = fake.requests.length;
    fake.next((res) => sendJson(res, 500, { type: 'error', error: { type: 'api_error', message: 'Internal server error' } }));
    await assertLlmFailed(provider.complete(request()), /^anthropic: HTTP 500 api_error: Internal server error/);
    assert.equal(fake.requests.length, before + 1);
  });

  it('turns a mid-stream error event into LLM_FAILED', async () => {
    fake.next(sendSse([messageStart, { event: 'error', data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }]));
    await assertLlmFailed(provider.complete(request()), /^anthropic: .*Overloaded/);
  });
});

describe('gemini provider', () => {
  const fake = new FakeServer();
  let provider: LlmProvider;
  before(async () => {
    const url = await fake.start();
    provider = createGeminiProvider({ apiKey: API_KEY, baseUrl: url, model: 'gemini-test', timeoutMs: 5000, maxRetries: 0 });
  });
  after(() => fake.close());

  const candidate = (parts: unknown[], finishReason?: string): Record<string, unknown> => ({
    candidates: [{ content: { role: 'model', parts }, index: 0, ...(finishReason ? { finishReason } : {}) }],
    modelVersion: 'gemini-test',
  });

  it('sends the request in the generateContent shape and returns function calls', async () => {
    const sent = fake.next(sendSse([{ data: candidate([{ functionCall: { name: 'list_directory', args: { path: '/workspace' } } }], 'STOP') }]));
    const turn = await provider.complete(
      request({ messages: HISTORY, tools: [{ ...LIST_DIRECTORY, inputSchema: { $schema: 'http://json-schema.org/draft-07/schema#', ...LIST_DIRECTORY.inputSchema } }] }),
    );
    assert.equal(turn.text, '');
    assert.equal(turn.toolCalls.length, 1);
    const [call] = turn.toolCalls;
    assert.deepEqual({ name: call?.name, arguments: call?.arguments }, { name: 'list_directory', arguments: { path: '/workspace' } });
    assert.ok(call?.id, 'a generated id');

    const { method, url, headers, body } = sent();
    assert.equal(method, 'POST');
    assert.equal(url, '/v1beta/models/gemini-test:streamGenerateContent?alt=sse');
    assert.ok(headers['x-goog-api-key'] === API_KEY || new URL(url, 'http://x').searchParams.get('key') === API_KEY, 'no API key');
    assert.deepEqual(body.systemInstruction, { role: 'user', parts: [{ text: SYSTEM }] });
    // `$schema` is refused by Gemini, so it must have been dropped.
    assert.deepEqual(body.tools, [{ functionDeclarations: [{ name: 'list_directory', description: 'List a directory', parametersJsonSchema: LIST_DIRECTORY.inputSchema }] }]);
    assert.deepEqual(body.contents, [
      { role: 'user', parts: [{ text: 'What is in /workspace?' }] },
      {
        role: 'model',
        parts: [
          { text: 'Let me look.' },
          { functionCall: { name: 'list_directory', args: { path: '/workspace' }, id: 'call_1' } },
          { functionCall: { name: 'list_directory', args: { path: '/secret' }, id: 'call_2' } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'list_directory', response: { content: '[FILE] a.txt' }, id: 'call_1' } },
          { functionResponse: { name: 'list_directory', response: { error: 'denied by the user' }, id: 'call_2' } },
        ],
      },
    ]);
  });

  it('replays the thought signature of a call and never sends back an id it made up', async () => {
    fake.next(sendSse([{ data: candidate([{ functionCall: { name: 'list_directory', args: { path: '/workspace' } }, thoughtSignature: 'c2lnbmF0dXJl' }], 'STOP') }]));
    const first = await provider.complete(request());
    const call = first.toolCalls[0];
    assert.ok(call);
    const sent = fake.next(sendSse([{ data: candidate([{ text: 'Done.' }], 'STOP') }]));
    await provider.complete(
      request({
        messages: [
          { role: 'user', text: 'hi' },
          { role: 'assistant', text: '', toolCalls: [call] },
          { role: 'tool', callId: call.id, name: call.name, ok: true, content: 'ok' },
        ],
      }),
    );
    assert.deepEqual(sent().body.contents, [
      { role: 'user', parts: [{ text: 'hi' }] },
      { role: 'model', parts: [{ functionCall: { name: 'list_directory', args: { path: '/workspace' } }, thoughtSignature: 'c2lnbmF0dXJl' }] },
      { role: 'user', parts: [{ functionResponse: { name: 'list_directory', response: { content: 'ok' } } }] },
    ]);
  });

  it('streams text deltas and returns their concatenation', async () => {
    fake.next(sendSse([{ data: candidate([{ text: 'Hello, ' }]) }, { data: candidate([{ text: 'world.' }], 'STOP') }]));
    const deltas: string[] = [];
    const turn = await provider.complete(request({ onTextDelta: (d) => deltas.push(d) }));
    assert.deepEqual(turn, { text: 'Hello, world.', toolCalls: [] });
    assert.deepEqual(deltas, ['Hello, ', 'world.']);
  });

  it('turns an HTTP error into LLM_FAILED with the status and message, without retrying', async () => {
    const before = fake.requests.length;
    fake.next((res) => sendJson(res, 500, { error: { code: 500, message: 'An internal error has occurred.', status: 'INTERNAL' } }));
    await assertLlmFailed(provider.complete(request()), /^gemini: HTTP 500: INTERNAL: An internal error has occurred\./);
    assert.equal(fake.requests.length, before + 1);
  });

  it('reports an empty turn that was cut short, with the finish reason', async () => {
    fake.next(sendSse([{ data: candidate([], 'MALFORMED_FUNCTION_CALL') }]));
    await assertLlmFailed(provider.complete(request()), /^gemini: no content \(finishReason MALFORMED_FUNCTION_CALL\)/);
  });
});

describe('provider failures and selection', () => {
  it('turns a refused connection into LLM_FAILED for every provider', async () => {
    const baseUrl = await closedPortUrl();
    const common = { apiKey: API_KEY, model: 'm', timeoutMs: 2000, maxRetries: 0 };
    const providers = [
      createOpenAiProvider({ ...common, baseUrl: `${baseUrl}/v1` }),
      createAnthropicProvider({ ...common, baseUrl }),
      createGeminiProvider({ ...common, baseUrl }),
    ];
    for (const provider of providers) {
      await assertLlmFailed(provider.complete(request()), new RegExp(`^${provider.name}: .*(ECONNREFUSED|fetch failed|Connection error)`));
    }
  });

  /** Answers every provider with a first SSE event (some text) and then nothing, holding the connection open. */
  const stalling = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (req.url?.includes('chat/completions')) {
      res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: 'Hel' }, finish_reason: null }] })}\n\n`);
    } else if (req.url?.includes('messages')) {
      const message = { id: 'msg', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } };
      res.write(`event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message })}\n\n`);
      res.write(`event: content_block_start\ndata: ${JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })}\n\n`);
      res.write(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } })}\n\n`);
    } else {
      res.write(`data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [{ text: 'Hel' }] } }] })}\n\n`);
    }
  });
  let stallingUrl = '';
  before(async () => {
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    stallingUrl = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`;
  });
  after(async () => {
    stalling.closeAllConnections();
    await new Promise<void>((resolve) => stalling.close(() => resolve()));
  });
  const stallingProviders = (timeoutMs: number): LlmProvider[] => {
    const common = { apiKey: API_KEY, model: 'm', timeoutMs, maxRetries: 0 };
    return [
      createOpenAiProvider({ ...common, baseUrl: `${stallingUrl}/v1` }),
      createAnthropicProvider({ ...common, baseUrl: stallingUrl }),
      createGeminiProvider({ ...common, baseUrl: stallingUrl }),
    ];
  };

  it('gives up on a stream that goes quiet after the headers, for every provider', async () => {
    for (const provider of stallingProviders(300)) {
      const started = Date.now();
      await assertLlmFailed(provider.complete(request()), new RegExp(`^${provider.name}: (stream stalled|request aborted or timed out)`));
      assert.ok(Date.now() - started < 3000, `${provider.name} took ${Date.now() - started} ms to give up`);
    }
  });

  it('rejects on a caller abort mid-stream instead of returning the partial turn, for every provider', async () => {
    for (const provider of stallingProviders(10_000)) {
      const controller = new AbortController();
      const deltas: string[] = [];
      const turn = provider.complete(request({ signal: controller.signal, onTextDelta: (d) => { deltas.push(d); controller.abort(); } }));
      await assertLlmFailed(turn, new RegExp(`^${provider.name}: request aborted`));
      assert.deepEqual(deltas, ['Hel'], provider.name);
    }
  });

  it('picks the provider and its default model', () => {
    for (const name of ['gemini', 'openai', 'anthropic'] as const) {
      const provider = createLlmProvider({ provider: name, apiKey: API_KEY, baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000 });
      assert.equal(provider.name, name);
      assert.equal(provider.model, DEFAULT_MODELS[name]);
    }
    assert.deepEqual(DEFAULT_MODELS, { gemini: 'gemini-2.5-flash', openai: 'gpt-4o-mini', anthropic: 'claude-sonnet-4-5' });
    assert.equal(createLlmProvider({ provider: 'openai', apiKey: API_KEY, model: 'gpt-custom', timeoutMs: 1000 }).model, 'gpt-custom');
  });
});
