import { randomUUID } from 'node:crypto';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { SandpoolError, errorMessage } from '../errors.js';
import type { Lease } from '../pool/container-pool.js';
import type { ApprovalOutcome } from '../chat/approvals.js';
import type { ChatMessage, LlmProvider, ToolSpec } from './types.js';

/** Server -> client events of one request (the contract's payloads). */
export interface RequestEvents {
  toolRequest(p: { requestId: string; callId: string; tool: string; arguments: Record<string, unknown> }): void;
  toolResult(p: {
    requestId: string;
    callId: string;
    tool: string;
    ok: boolean;
    content: string;
    durationMs: number;
    approval: ApprovalOutcome;
  }): void;
  delta(p: { requestId: string; text: string }): void;
}

/** What one request needs from its surroundings. */
export interface AgentRequest {
  requestId: string;
  text: string;
  /** The session's completed history (not modified here). */
  history: readonly ChatMessage[];
  provider: LlmProvider;
  /** Tools of the sandbox image, if known without a lease. */
  knownTools: readonly ToolSpec[] | undefined;
  /**
   * The user's sandbox, acquired on first need: `fresh` when this call
   * acquired it, `replacedDead` when the previous one had died.
   */
  lease(): Promise<{ lease: Lease; replacedDead: boolean; fresh: boolean }>;
  /** The sandbox's tools when `knownTools` is undefined (no sandbox of this image has started yet), without taking the user's lease. */
  discoverTools(): Promise<readonly ToolSpec[]>;
  /**
   * Waits for the user's decision on a call. It must call `announce` (which
   * emits tool:request) only once the call can be decided: a client answers
   * within a millisecond, so announcing first loses that race.
   */
  approve(args: { callId: string; tool: string; arguments: Record<string, unknown> }, announce: () => void): Promise<ApprovalOutcome>;
  events: RequestEvents;
  maxSteps: number;
  toolCallTimeoutMs: number;
  approvalTimeoutMs: number;
  signal: AbortSignal;
}

export interface AgentOutcome {
  text: string;
  /** The exchange to append to the session history. */
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

/**
 * The process runtime roots a sandbox at a temp dir, not /workspace: translate
 * paths both ways so the user and the model always see /workspace.
 */
function mapPaths(workspaceDir: string): { args(a: Record<string, unknown>): Record<string, unknown>; text(t: string): string } {
  if (workspaceDir === '/workspace') return { args: (a) => a, text: (t) => t };
  const toSandbox = (v: unknown): unknown => {
    if (typeof v === 'string') return v === '/workspace' || v.startsWith('/workspace/') ? workspaceDir + v.slice('/workspace'.length) : v;
    if (Array.isArray(v)) return v.map(toSandbox);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toSandbox(x)]));
    return v;
  };
  return { args: (a) => toSandbox(a) as Record<string, unknown>, text: (t) => t.split(workspaceDir).join('/workspace') };
}

/**
 * Runs one request: model turn, approved tool calls in the user's sandbox,
 * results back to the model, until it answers (or maxSteps).
 */
export async function runAgent(req: AgentRequest): Promise<AgentOutcome> {
  const own: ChatMessage[] = [{ role: 'user', text: req.text }];
  const tools = req.knownTools ?? (await req.discoverTools());
  // Earlier tool results in the history refer to files of a sandbox that may be gone by now.
  const usedToolsBefore = req.history.some((m) => m.role === 'tool');
  let toolCalls = 0;

  for (let step = 0; step < req.maxSteps; step++) {
    if (req.signal.aborted) throw new SandpoolError('INTERNAL', 'the request was cancelled');
    const turn = await req.provider.complete({
      system: SYSTEM_PROMPT,
      messages: [...req.history, ...own],
      tools,
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
      if (approval === 'cancelled') throw new SandpoolError('INTERNAL', 'the request was cancelled');
      const started = performance.now();
      let ok = false;
      let content: string;
      if (approval === 'approved') {
        const { lease, replacedDead, fresh } = await req.lease();
        const paths = mapPaths(lease.sandbox.workspaceDir);
        try {
          const result = await lease.callTool(call.name, paths.args(call.arguments), { timeoutMs: req.toolCallTimeoutMs });
          ok = result.isError !== true;
          content = paths.text(toolText(result));
        } catch (err) {
          // A failed tool is a result the model can react to; a dead sandbox ends the request.
          if (err instanceof SandpoolError && !lease.sandbox.isUsable()) throw err;
          content = `Tool call failed: ${errorMessage(err)}`;
        }
        if (replacedDead) content = `(Your previous sandbox stopped — its replica or container went away — so this ran in a fresh one; earlier files are gone.)\n${content}`;
        else if (fresh && usedToolsBefore) {
          content = `(Your earlier sandbox was removed — after inactivity or after you left — so this ran in a fresh one; files from before are gone.)\n${content}`;
        }
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
