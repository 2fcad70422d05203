import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runAgentLoop, type AgentRequest, type ToolRunner } from '../../src/agent/agent-loop.js';
import type { AssistantTurn, CompletionRequest, LlmProvider } from '../../src/agent/types.js';
import { CancelledError, SandboxGoneError, SandpoolError } from '../../src/errors.js';
import type { ApprovalVerdict, StartedFresh } from '../../src/protocol/events.js';

/** A provider that plays back turns and records what it was asked. */
function scripted(turns: AssistantTurn[]): LlmProvider & { seen: CompletionRequest[] } {
  const seen: CompletionRequest[] = [];
  return {
    name: 'local',
    model: 'scripted',
    seen,
    async complete(request) {
      seen.push({ ...request, messages: [...request.messages] });
      request.onTextDelta?.(`step ${seen.length}`);
      return turns.shift() ?? { text: 'done', toolCalls: [] };
    },
  };
}

const call = (name: string, args: Record<string, unknown> = {}, id = `p-${name}`) => ({ id, name, arguments: args });

function runner(startedFresh: StartedFresh = 'no', calls: string[] = []): ToolRunner {
  return {
    async run(name) {
      calls.push(name);
      return { result: { content: [{ type: 'text', text: `${name} ok` }] }, startedFresh };
    },
  };
}

function request(overrides: Partial<AgentRequest>): AgentRequest & { emitted: Array<[string, Record<string, unknown>]> } {
  const emitted: Array<[string, Record<string, unknown>]> = [];
  return {
    requestId: 'r1',
    text: 'do it',
    history: [],
    provider: scripted([]),
    tools: [{ name: 'list_directory', description: '', inputSchema: {} }],
    runner: runner(),
    approve: async (_call, announce) => {
      announce();
      return 'approved';
    },
    events: {
      toolRequest: (p) => emitted.push(['tool:request', { ...p }]),
      toolResult: (p) => emitted.push(['tool:result', { ...p }]),
      toolProgress: (p) => emitted.push(['tool:progress', { ...p }]),
      toolLog: (p) => emitted.push(['tool:log', { ...p }]),
      delta: (p) => emitted.push(['message:delta', { ...p }]),
    },
    maxSteps: 8,
    toolCallTimeoutMs: 1000,
    approvalTimeoutMs: 2000,
    signal: new AbortController().signal,
    emitted,
    ...overrides,
  };
}

describe('agent loop', () => {
  it('feeds approved tool results back to the model, step after step, until it answers', async () => {
    const provider = scripted([
      { text: '', toolCalls: [call('list_directory', { path: '/workspace' })] },
      { text: '', toolCalls: [call('read_text_file', { path: '/workspace/a' })] },
      { text: 'all read', toolCalls: [] },
    ]);
    const ran: string[] = [];
    const req = request({ provider, runner: runner('no', ran) });
    const outcome = await runAgentLoop(req);
    assert.equal(outcome.text, 'all read');
    assert.equal(outcome.toolCalls, 2);
    assert.deepEqual(ran, ['list_directory', 'read_text_file']);
    // The model saw each result before its next turn; the history keeps the provider's call ids.
    const lastAsk = provider.seen[2]?.messages ?? [];
    assert.deepEqual(lastAsk.filter((m) => m.role === 'tool').map((m) => (m.role === 'tool' ? [m.callId, m.content] : [])), [
      ['p-list_directory', 'list_directory ok'],
      ['p-read_text_file', 'read_text_file ok'],
    ]);
    assert.deepEqual(req.emitted.map(([e]) => e), ['message:delta', 'tool:request', 'tool:result', 'message:delta', 'tool:request', 'tool:result', 'message:delta']);
    // Our own call ids on the wire, never the provider's.
    const wireIds = req.emitted.filter(([e]) => e === 'tool:request').map(([, p]) => String(p.callId));
    assert.ok(wireIds.every((id) => /^[0-9a-f-]{36}$/.test(id)));
  });

  it('tells the user what the sandbox says while an approved call runs (tool:progress, tool:log), between tool:request and tool:result', async () => {
    const reporting: ToolRunner = {
      async run(name, _args, { onNotice }) {
        onNotice?.({ kind: 'progress', progress: 1, total: 2, message: 'half' });
        onNotice?.({ kind: 'log', level: 'warning', logger: 'fs', data: { slow: true } });
        onNotice?.({ kind: 'progress', progress: 2 });
        return { result: { content: [{ type: 'text', text: `${name} ok` }] }, startedFresh: 'no' };
      },
    };
    const req = request({ provider: scripted([{ text: '', toolCalls: [call('read_text_file')] }, { text: 'ok', toolCalls: [] }]), runner: reporting });
    await runAgentLoop(req);
    const callId = req.emitted.find(([e]) => e === 'tool:request')?.[1].callId;
    const about = { requestId: 'r1', callId, tool: 'read_text_file' };
    assert.deepEqual(
      req.emitted.filter(([e]) => e.startsWith('tool:')),
      [
        ['tool:request', { ...about, arguments: {} }],
        ['tool:progress', { ...about, progress: 1, total: 2, message: 'half' }],
        ['tool:log', { ...about, level: 'warning', logger: 'fs', data: { slow: true } }],
        ['tool:progress', { ...about, progress: 2 }],
        ['tool:result', req.emitted.find(([e]) => e === 'tool:result')?.[1] ?? {}],
      ],
    );
  });

  it('runs nothing that was denied or not approved in time, and tells the model and the user', async () => {
    for (const [verdict, words] of [['denied', /denied/], ['timeout', /within 2 s/]] as Array<[ApprovalVerdict, RegExp]>) {
      const ran: string[] = [];
      const req = request({
        provider: scripted([{ text: '', toolCalls: [call('write_file')] }, { text: 'ok', toolCalls: [] }]),
        runner: runner('no', ran),
        approve: async (_c, announce) => (announce(), verdict),
      });
      const outcome = await runAgentLoop(req);
      assert.deepEqual(ran, []);
      const result = req.emitted.find(([e]) => e === 'tool:result')?.[1];
      assert.equal(result?.ok, false);
      assert.equal(result?.approval, verdict);
      assert.match(String(result?.content), words);
      assert.equal(outcome.messages.find((m) => m.role === 'tool')?.role, 'tool');
    }
  });

  it('says so when a call ran in a fresh sandbox after the previous one was lost, or released after earlier tool use', async () => {
    const run = async (startedFresh: StartedFresh, usedToolsBefore: boolean): Promise<string> => {
      const req = request({
        provider: scripted([{ text: '', toolCalls: [call('list_directory')] }]),
        runner: runner(startedFresh),
        history: usedToolsBefore ? [{ role: 'tool', callId: 'old', name: 'write_file', ok: true, content: 'written' }] : [],
      });
      await runAgentLoop(req);
      return String(req.emitted.find(([e]) => e === 'tool:result')?.[1].content);
    };
    assert.match(await run('after-loss', false), /previous sandbox stopped.*earlier files are gone/s);
    assert.match(await run('after-release', true), /earlier sandbox was removed/);
    assert.equal(await run('after-release', false), 'list_directory ok', 'a first sandbox is no news');
    assert.equal(await run('no', true), 'list_directory ok');
  });

  it('marks a tool\'s own error result as not ok, and gives it to the model', async () => {
    const req = request({
      provider: scripted([{ text: '', toolCalls: [call('read_text_file')] }, { text: 'no such file', toolCalls: [] }]),
      runner: { run: async () => ({ result: { content: [{ type: 'text', text: 'ENOENT' }], isError: true }, startedFresh: 'no' }) },
    });
    const outcome = await runAgentLoop(req);
    assert.equal(req.emitted.find(([e]) => e === 'tool:result')?.[1].ok, false);
    assert.equal(outcome.text, 'no such file');
  });

  it('ends the request when no sandbox can be had or the sandbox died', async () => {
    for (const failure of [new SandpoolError('POOL_EXHAUSTED', 'none free'), new SandboxGoneError('container exited with code 137')]) {
      const req = request({
        provider: scripted([{ text: '', toolCalls: [call('list_directory')] }]),
        runner: { run: () => Promise.reject(failure) },
      });
      await assert.rejects(runAgentLoop(req), (err) => err === failure);
    }
  });

  it('stops after maxSteps with an answer that says so', async () => {
    const looping: LlmProvider = { name: 'local', model: 'loop', complete: async () => ({ text: '', toolCalls: [call('list_directory')] }) };
    const outcome = await runAgentLoop(request({ provider: looping, maxSteps: 3 }));
    assert.equal(outcome.toolCalls, 3);
    assert.match(outcome.text, /stopped after 3 steps/);
  });

  it('caps huge tool output given back to the model and the user', async () => {
    const req = request({
      provider: scripted([{ text: '', toolCalls: [call('read_text_file')] }]),
      runner: { run: async () => ({ result: { content: [{ type: 'text', text: 'x'.repeat(100_000) }] }, startedFresh: 'no' }) },
    });
    await runAgentLoop(req);
    const content = String(req.emitted.find(([e]) => e === 'tool:result')?.[1].content);
    assert.ok(content.length < 33_000);
    assert.match(content, /truncated, 100000 characters in all/);
  });

  it('stops at once with the cancellation as the reason, and passes a cancelled approval on', async () => {
    const controller = new AbortController();
    controller.abort(new CancelledError('shutdown'));
    await assert.rejects(runAgentLoop(request({ signal: controller.signal })), (err) => err instanceof CancelledError && err.reason === 'shutdown');
    const left = new CancelledError('user-left');
    const req = request({
      provider: scripted([{ text: '', toolCalls: [call('write_file')] }]),
      approve: () => Promise.reject(left),
    });
    await assert.rejects(runAgentLoop(req), (err) => err === left);
  });
});
