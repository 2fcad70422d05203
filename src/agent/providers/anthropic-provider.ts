import { createStallWatchdog, failureFactory } from './provider-support.js';
import Anthropic, { APIConnectionError, APIError, APIUserAbortError } from '@anthropic-ai/sdk';
import type {
  ContentBlockParam,
  Message,
  MessageCreateParamsNonStreaming,
  MessageParam,
  Tool,
} from '@anthropic-ai/sdk/resources/messages';
import { SandpoolError, errorMessage } from '../../errors.js';
import type { AssistantTurn, ChatMessage, CompletionRequest, LlmProvider, ToolCall, ToolSpec } from '../types.js';

export interface AnthropicProviderOptions {
  apiKey: string;
  /** Default: the SDK's (ANTHROPIC_BASE_URL or https://api.anthropic.com). */
  baseUrl?: string;
  model: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
  /** Retries on connection errors, 408/409/429 and 5xx. Default: 2. */
  maxRetries?: number;
  /** Output token cap per turn (the Messages API requires one). Default: 8192. */
  maxTokens?: number;
}

const DEFAULT_MAX_TOKENS = 8192;

export function createAnthropicProvider(options: AnthropicProviderOptions): LlmProvider {
  const client = new Anthropic({
    apiKey: options.apiKey,
    baseURL: options.baseUrl,
    timeout: options.timeoutMs,
    maxRetries: options.maxRetries ?? 2,
  });
  const fail = failureFactory('anthropic', options.apiKey);

  return {
    name: 'anthropic',
    model: options.model,
    async complete(request: CompletionRequest): Promise<AssistantTurn> {
      const body: MessageCreateParamsNonStreaming = {
        model: options.model,
        max_tokens: options.maxTokens ?? DEFAULT_MAX_TOKENS,
        messages: toAnthropicMessages(request.messages),
      };
      if (request.system) body.system = request.system;
      if (request.tools.length > 0) body.tools = request.tools.map(toAnthropicTool);

      let message: Message;
      const watchdog = createStallWatchdog(options.timeoutMs);
      try {
        const stream = client.messages.stream(body, { signal: request.signal });
        const armIdleTimer = (): void => watchdog.arm(() => stream.abort());
        stream.on('connect', armIdleTimer);
        stream.on('streamEvent', armIdleTimer);
        const onTextDelta = request.onTextDelta;
        if (onTextDelta) stream.on('text', (delta) => onTextDelta(delta));
        message = await stream.finalMessage();
      } catch (err) {
        throw fail(watchdog.stalled ? `stream stalled: no data for ${options.timeoutMs} ms` : describeError(err), err);
      } finally {
        watchdog.clear();
      }
      return toAssistantTurn(message, fail);
    },
  };
}

function toAssistantTurn(message: Message, fail: (message: string) => SandpoolError): AssistantTurn {
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text') {
      text += block.text;
    } else if (block.type === 'tool_use') {
      // Cut off mid-call, the input JSON is incomplete; running it would act on a guess.
      if (message.stop_reason === 'max_tokens') throw fail(`response hit max_tokens inside tool call ${block.name}`);
      const input = block.input;
      if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        throw fail(`tool_use ${block.name} input is not a JSON object`);
      }
      toolCalls.push({ id: block.id, name: block.name, arguments: input as Record<string, unknown> });
    }
    // Thinking and server-tool blocks are not part of the provider-neutral turn.
  }
  return { text, toolCalls };
}

function toAnthropicTool(tool: ToolSpec): Tool {
  // MCP inputSchema is always an object schema; the spread keeps every other keyword as-is.
  return { name: tool.name, description: tool.description, input_schema: { ...tool.inputSchema, type: 'object' } };
}

function toAnthropicMessages(history: readonly ChatMessage[]): MessageParam[] {
  const messages: { role: 'user' | 'assistant'; content: ContentBlockParam[] }[] = [];
  // The API wants alternating roles: a turn with the same role as the previous one
  // (e.g. several tool results, or tool results then the user's next text) joins it.
  const push = (role: 'user' | 'assistant', blocks: ContentBlockParam[]): void => {
    if (blocks.length === 0) return;
    const last = messages.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  for (const message of history) {
    switch (message.role) {
      case 'user':
        push('user', message.text ? [{ type: 'text', text: message.text }] : []);
        break;
      case 'assistant': {
        const blocks: ContentBlockParam[] = message.text ? [{ type: 'text', text: message.text }] : [];
        for (const call of message.toolCalls) blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: call.arguments });
        push('assistant', blocks);
        break;
      }
      case 'tool':
        push('user', [
          {
            type: 'tool_result',
            tool_use_id: message.callId,
            // An error result with empty content is rejected by the API.
            content: message.content || (message.ok ? '(no output)' : '(tool failed)'),
            ...(message.ok ? {} : { is_error: true }),
          },
        ]);
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
    // Mid-stream `error` events have no HTTP status but still carry the API's type and message.
    const type = err.type ? `${err.type}: ` : '';
    const detail = err.apiMessage ?? err.message;
    return err.status === undefined ? `${type}${detail}` : `HTTP ${err.status} ${type}${detail}`;
  }
  return errorMessage(err);
}

