import { randomUUID } from 'node:crypto';
import type { CallToolResult } from '../protocol/mcp-types.js';
import { cancellationOf } from '../errors.js';
import type { ApprovalVerdict, MessageText, ToolLog, ToolNotice, ToolProgress, ToolRequest, ToolResult, ToolRun } from '../protocol/events.js';

export type { ToolRun };
import type { ChatMessage, LlmProvider, ToolSpec } from './types.js';

/** What the agent tells the user while a request runs (the contract's payloads). */
export interface RequestEvents {
  toolRequest(p: ToolRequest): void;
  toolResult(p: ToolResult): void;
  /** What the sandbox's server says while an approved call runs. */
  toolProgress(p: ToolProgress): void;
  toolLog(p: ToolLog): void;
  delta(p: MessageText): void;
}

/** Options of one tool run. */
export interface ToolRunOptions {
  timeoutMs: number;
  /** What the sandbox's server says while the call runs (progress, log messages); best effort. */
  onNotice?: (notice: ToolNotice) => void;
}

/**
 * The user's sandbox as the agent sees it: a place to run tools. The chat
 * layer decides where that sandbox lives (this replica or another one) and
 * takes it on first use. It rejects only for what ends the request: no
 * sandbox to be had (POOL_EXHAUSTED, SANDBOX_FAILED), a sandbox that died
 * (SandboxGoneError), a cancellation (CancelledError).
 */
export interface ToolRunner {
  run(name: string, args: Record<string, unknown>, options: ToolRunOptions): Promise<ToolRun>;
}

/**
 * Waits for the user's decision on a call. It must call `announce` (which
 * emits tool:request) only once the call can be decided: a client answers
 * within a millisecond, so announcing first loses that race. Throws
 * CancelledError when the request is cancelled while waiting.
 */
export type Approver = (call: { callId: string; tool: string; arguments: Record<string, unknown> }, announce: () => void) => Promise<ApprovalVerdict>;

/** What one request needs from its surroundings. */
export interface AgentRequest {
  requestId: string;
  text: string;
  /** The conversation's completed history (not modified here). */
  history: readonly ChatMessage[];
  provider: LlmProvider;
  /** The sandbox image's tools. */
  tools: readonly ToolSpec[];
  runner: ToolRunner;
  approve: Approver;
  events: RequestEvents;
  maxSteps: number;
  toolCallTimeoutMs: number;
  approvalTimeoutMs: number;
  /** Aborted with a CancelledError as its reason. */
  signal: AbortSignal;
}

export interface AgentOutcome {
  text: string;
  /** The exchange to append to the conversation's history. */
  messages: ChatMessage[];
  toolCalls: number;
}

const SYSTEM_PROMPT = [
  "You are an assistant whose tools run in the user's private sandbox (an MCP filesystem server).",
  "The user's files live under /workspace. Use the tools to answer; every call waits for the user's approval.",
  'If a call is denied or not approved in time, do not retry it unless the user asks; say what you could not do.',
  'Answer concisely.',
].join(' ');

/** Tool output given back to the model and the user is capped: a huge file must not blow up the history. */
const MAX_TOOL_CONTENT_CHARS = 32_768;

export function toolText(result: CallToolResult): string {
  const text = result.content
    .map((c) => {
      if (c.type === 'text') return c.text;
      if (c.type === 'resource' && 'text' in c.resource) return String(c.resource.text);
      return `[${c.type} content]`;
    })
    .join('\n');
  return text.length > MAX_TOOL_CONTENT_CHARS ? `${text.slice(0, MAX_TOOL_CONTENT_CHARS)}\n… (truncated, ${text.length} characters in all)` : text;
}

const NOTICE = {
  'after-loss': '(Your previous sandbox stopped — its replica or container went away — so this ran in a fresh one; earlier files are gone.)',
  'after-release': '(Your earlier sandbox was removed — after inactivity or after you left — so this ran in a fresh one; files from before are gone.)',
  restoredAfterLoss: '(Your previous sandbox stopped — its replica or container went away — so this ran in a fresh one, with your files restored from your last snapshot.)',
} as const;

/** What the user should read before a tool's result: where their files are. */
function noticesFor(run: ToolRun, usedToolsBefore: boolean): string[] {
  const notes: string[] = [];
  // A failed restore says so itself; otherwise, restored files are no loss to report.
  if (run.notice === undefined || !run.notice.startsWith('(Your saved files could not be restored')) {
    if (run.startedFresh === 'after-loss') notes.push(run.restored ? NOTICE.restoredAfterLoss : NOTICE['after-loss']);
    else if (run.startedFresh === 'after-release' && usedToolsBefore && !run.restored) notes.push(NOTICE['after-release']);
  }
  if (run.notice) notes.push(run.notice);
  return notes;
}

function withoutKind<T extends { kind: string }>(notice: T): Omit<T, 'kind'> {
  const { kind: _kind, ...rest } = notice;
  return rest;
}

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw cancellationOf(signal);
}

/**
 * Runs one request: model turn, approved tool calls in the user's sandbox,
 * results back to the model, until it answers (or maxSteps).
 */
export async function runAgentLoop(req: AgentRequest): Promise<AgentOutcome> {
  const own: ChatMessage[] = [{ role: 'user', text: req.text }];
  // Earlier tool results in the history refer to files of a sandbox that may be gone by now.
  const usedToolsBefore = req.history.some((m) => m.role === 'tool');
  let toolCalls = 0;

  for (let step = 0; step < req.maxSteps; step++) {
    throwIfCancelled(req.signal);
    const turn = await req.provider.complete({
      system: SYSTEM_PROMPT,
      messages: [...req.history, ...own],
      tools: req.tools,
      onTextDelta: (text) => req.events.delta({ requestId: req.requestId, text }),
      signal: req.signal,
    });
    own.push({ role: 'assistant', text: turn.text, toolCalls: turn.toolCalls });
    if (turn.toolCalls.length === 0) return { text: turn.text, messages: own, toolCalls };

    for (const call of turn.toolCalls) {
      toolCalls++;
      // Our own unguessable id on the wire; the provider's id stays in the history.
      const callId = randomUUID();
      const approval = await req.approve({ callId, tool: call.name, arguments: call.arguments }, () =>
        req.events.toolRequest({ requestId: req.requestId, callId, tool: call.name, arguments: call.arguments }),
      );
      const started = performance.now();
      let ok = false;
      let content: string;
      if (approval === 'approved') {
        const about = { requestId: req.requestId, callId, tool: call.name };
        const run = await req.runner.run(call.name, call.arguments, {
          timeoutMs: req.toolCallTimeoutMs,
          onNotice: (n) => (n.kind === 'progress' ? req.events.toolProgress({ ...about, ...withoutKind(n) }) : req.events.toolLog({ ...about, ...withoutKind(n) })),
        });
        ok = run.result.isError !== true;
        content = toolText(run.result);
        const notes = noticesFor(run, usedToolsBefore);
        if (notes.length > 0) content = `${notes.join('\n')}\n${content}`;
      } else if (approval === 'denied') {
        content = 'The user denied this tool call, so it was not run.';
      } else {
        content = `The user did not approve this tool call within ${Math.round(req.approvalTimeoutMs / 1000)} s, so it was not run.`;
      }
      const durationMs = Math.round(performance.now() - started);
      req.events.toolResult({ requestId: req.requestId, callId, tool: call.name, ok, content, durationMs, approval });
      own.push({ role: 'tool', callId: call.id, name: call.name, ok, content });
    }
  }
  const text = `I stopped after ${req.maxSteps} steps without a final answer. Try a more specific request.`;
  own.push({ role: 'assistant', text, toolCalls: [] });
  return { text, messages: own, toolCalls };
}
