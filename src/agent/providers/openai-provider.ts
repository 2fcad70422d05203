import { createStallWatchdog, failureFactory } from './provider-support.js';
import { randomUUID } from 'node:crypto';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import { SandpoolError, errorMessage } from '../../errors.js';
import type { AssistantTurn, ChatMessage, CompletionRequest, LlmProvider, ToolCall, ToolSpec } from '../types.js';

export interface OpenAiProviderOptions {
  apiKey: string;
  /** Any OpenAI-compatible endpoint, e.g. `http://127.0.0.1:8000/v1`. Default: the SDK's (OPENAI_BASE_URL or api.openai.com/v1). */
  baseUrl?: string;
  model: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
  /** Retries on connection errors, 408/409/429 and 5xx. Default: 2. */
  maxRetries?: number;
}

/** Streamed tool calls arrive in fragments keyed by index; this is one being assembled. */
interface PartialToolCall {
  id: string;
  name: string;
  args: string;
}

export function createOpenAiProvider(options: OpenAiProviderOptions): LlmProvider {
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseUrl,
    timeout: options.timeoutMs,
    maxRetries: options.maxRetries ?? 2,
  });
  const fail = failureFactory('openai', options.apiKey);

  return {
    name: 'openai',
    model: options.model,
    async complete(request: CompletionRequest): Promise<AssistantTurn> {
      const body: ChatCompletionCreateParamsStreaming = {
        model: options.model,
        messages: toOpenAiMessages(request.system, request.messages),
        stream: true,
      };
      // OpenAI rejects an empty `tools` array, so leave the key out instead.
      if (request.tools.length > 0) body.tools = request.tools.map(toOpenAiTool);

      let text = '';
      const partials = new Map<number, PartialToolCall>();
      const watchdog = createStallWatchdog(options.timeoutMs);
      try {
        const stream = await client.chat.completions.create(body, { signal: request.signal });
        const abort = (): void => stream.controller.abort();
        watchdog.arm(abort);
        for await (const chunk of stream) {
          watchdog.arm(abort);
          // Only one choice is ever requested; later chunks may carry none (usage-only).
          const delta = chunk.choices[0]?.delta;
          if (!delta) continue;
          const piece = (delta.content ?? '') + (delta.refusal ?? '');
          if (piece) {
            text += piece;
            request.onTextDelta?.(piece);
          }
          delta.tool_calls?.forEach((fragment, position) => mergeFragment(partials, fragment, position));
        }
        // An aborted stream just stops iterating; a cut-off turn must not pass for a whole one.
        if (watchdog.stalled || request.signal?.aborted) throw new APIUserAbortError();
      } catch (err) {
        throw fail(watchdog.stalled ? `stream stalled: no data for ${options.timeoutMs} ms` : describeError(err), err);
      } finally {
        watchdog.clear();
      }

      const toolCalls: ToolCall[] = [];
      for (const [, partial] of [...partials].sort(([a], [b]) => a - b)) {
        if (!partial.name) throw fail('streamed tool call has no function name');
        toolCalls.push({
          // Some OpenAI-compatible servers omit ids; the agent loop still needs one to pair results.
          id: partial.id || `call_${randomUUID()}`,
          name: partial.name,
          arguments: parseArguments(partial, fail),
        });
      }
      return { text, toolCalls };
    },
  };
}

function mergeFragment(
  partials: Map<number, PartialToolCall>,
  fragment: ChatCompletionChunk.Choice.Delta.ToolCall,
  position: number,
): void {
  // `index` is required by the spec, but not every compatible server sends it.
  const index = typeof fragment.index === 'number' ? fragment.index : position;
  const partial = partials.get(index) ?? { id: '', name: '', args: '' };
  if (fragment.id) partial.id = fragment.id;
  // The name normally arrives whole in the first fragment; only the arguments are split.
  if (fragment.function?.name && !partial.name) partial.name = fragment.function.name;
  if (fragment.function?.arguments) partial.args += fragment.function.arguments;
  partials.set(index, partial);
}

function parseArguments(partial: PartialToolCall, fail: (message: string, cause?: unknown) => SandpoolError): Record<string, unknown> {
  // A call to a tool without parameters may come with no argument text at all.
  if (partial.args.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(partial.args);
  } catch (err) {
    throw fail(`tool call ${partial.name} has invalid JSON arguments: ${errorMessage(err)}`, err);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw fail(`tool call ${partial.name} arguments are not a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function toOpenAiTool(tool: ToolSpec): ChatCompletionTool {
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.inputSchema } };
}

function toOpenAiMessages(system: string, history: readonly ChatMessage[]): ChatCompletionMessageParam[] {
  const messages: ChatCompletionMessageParam[] = [];
  if (system) messages.push({ role: 'system', content: system });
  for (const message of history) {
    switch (message.role) {
      case 'user':
        messages.push({ role: 'user', content: message.text });
        break;
      case 'assistant':
        if (message.toolCalls.length === 0) {
          messages.push({ role: 'assistant', content: message.text });
        } else {
          messages.push({
            role: 'assistant',
            // A tool-calling turn without prose must say null, not '', for some compatible servers.
            content: message.text || null,
            tool_calls: message.toolCalls.map((call) => ({
              id: call.id,
              type: 'function',
              function: { name: call.name, arguments: JSON.stringify(call.arguments) },
            })),
          });
        }
        break;
      case 'tool':
        // Chat Completions has no error flag for tool results, so a failure is marked in the text.
        messages.push({ role: 'tool', tool_call_id: message.callId, content: message.ok ? message.content : `Error: ${message.content}` });
        break;
    }
  }
  return messages;
}

function describeError(err: unknown): string {
  if (err instanceof APIUserAbortError) return 'request aborted';
  if (err instanceof APIConnectionError) {
    // The SDK's own text ("Connection error.") hides the actual reason, which sits in `cause`.
    const cause = err.cause === undefined ? '' : `: ${errorMessage(err.cause)}`;
    return `${err.message}${cause}`;
  }
  if (err instanceof APIError) {
    if (err.status === undefined) return err.message;
    // The SDK prefixes its message with the status already; keep one copy.
    const detail = err.message.startsWith(`${err.status} `) ? err.message.slice(String(err.status).length + 1) : err.message;
    return `HTTP ${err.status}: ${detail}`;
  }
  return errorMessage(err);
}

