import { failureFactory } from './provider-support.js';
import { randomUUID } from 'node:crypto';
import { ApiError, GoogleGenAI } from '@google/genai';
import type { Content, FunctionDeclaration, GenerateContentConfig, HttpOptions, Part } from '@google/genai';
import { SandpoolError, errorMessage } from '../../errors.js';
import type { AssistantTurn, ChatMessage, CompletionRequest, LlmProvider, ToolCall, ToolSpec } from '../types.js';

export interface GeminiProviderOptions {
  apiKey: string;
  /** Default: the SDK's (GOOGLE_GEMINI_BASE_URL or https://generativelanguage.googleapis.com). */
  baseUrl?: string;
  model: string;
  /** Per-attempt timeout in milliseconds, covering the whole streamed response. */
  timeoutMs: number;
  /** Retries on 408, 429 and 5xx (the SDK itself does none unless asked). Default: 2. */
  maxRetries?: number;
}

/** Ids we make up start with this, so they are never sent to Gemini as if it had issued them. */
const LOCAL_ID_PREFIX = 'gemini-';
/** Bound on remembered thought signatures: one per tool call of recent turns is plenty. */
const MAX_SIGNATURES = 1000;

export function createGeminiProvider(options: GeminiProviderOptions): LlmProvider {
  const maxRetries = options.maxRetries ?? 2;
  const httpOptions: HttpOptions = { timeout: options.timeoutMs };
  if (options.baseUrl) httpOptions.baseUrl = options.baseUrl;
  if (maxRetries > 0) httpOptions.retryOptions = { attempts: maxRetries + 1 };
  // `vertexai: false` pins the Gemini API even if GOOGLE_GENAI_USE_VERTEXAI is set in the environment.
  const ai = new GoogleGenAI({ apiKey: options.apiKey, vertexai: false, httpOptions });
  const fail = failureFactory('gemini', options.apiKey);
  // Thinking models sign their function calls and (Gemini 3) reject a history that drops
  // the signature. ToolCall has no slot for it, so it is kept here by call id.
  const signatures = new Map<string, string>();
  const remember = (id: string, signature: string): void => {
    signatures.set(id, signature);
    if (signatures.size > MAX_SIGNATURES) {
      const oldest = signatures.keys().next().value;
      if (oldest !== undefined) signatures.delete(oldest);
    }
  };

  return {
    name: 'gemini',
    model: options.model,
    async complete(request: CompletionRequest): Promise<AssistantTurn> {
      const config: GenerateContentConfig = { abortSignal: request.signal };
      if (request.system) config.systemInstruction = request.system;
      if (request.tools.length > 0) config.tools = [{ functionDeclarations: request.tools.map(toDeclaration) }];

      let text = '';
      const toolCalls: ToolCall[] = [];
      let finishReason: string | undefined;
      let blockReason: string | undefined;
      try {
        const stream = await ai.models.generateContentStream({
          model: options.model,
          contents: toGeminiContents(request.messages, signatures),
          config,
        });
        for await (const chunk of stream) {
          blockReason ??= chunk.promptFeedback?.blockReason;
          const candidate = chunk.candidates?.[0];
          finishReason = candidate?.finishReason ?? finishReason;
          for (const part of candidate?.content?.parts ?? []) {
            if (part.functionCall) {
              const id = part.functionCall.id || `${LOCAL_ID_PREFIX}${randomUUID()}`;
              const { name, args = {} } = part.functionCall;
              if (!name) throw fail('function call without a name');
              if (typeof args !== 'object' || args === null || Array.isArray(args)) throw fail(`function call ${name} args are not an object`);
              if (part.thoughtSignature) remember(id, part.thoughtSignature);
              toolCalls.push({ id, name, arguments: args });
            } else if (part.text && !part.thought) {
              // Thought summaries are the model's scratchpad, not an answer for the user.
              text += part.text;
              request.onTextDelta?.(part.text);
            }
          }
        }
      } catch (err) {
        if (err instanceof SandpoolError) throw err;
        throw fail(describeError(err), err);
      }

      if (text === '' && toolCalls.length === 0) {
        // An empty turn is only an answer when the model stopped normally; otherwise say why.
        if (blockReason) throw fail(`prompt blocked (${blockReason})`);
        if (finishReason && finishReason !== 'STOP') throw fail(`no content (finishReason ${finishReason})`);
      }
      return { text, toolCalls };
    },
  };
}

function toDeclaration(tool: ToolSpec): FunctionDeclaration {
  // parametersJsonSchema takes plain JSON Schema, unlike `parameters` (an OpenAPI subset);
  // only the root `$schema` is refused by the API.
  const { $schema: _dialect, ...schema } = tool.inputSchema;
  return { name: tool.name, description: tool.description, parametersJsonSchema: { type: 'object', ...schema } };
}

function toGeminiContents(history: readonly ChatMessage[], signatures: ReadonlyMap<string, string>): Content[] {
  const contents: Content[] = [];
  // Gemini merges nothing itself: parallel function responses must share one user turn.
  const push = (role: 'user' | 'model', parts: Part[]): void => {
    if (parts.length === 0) return;
    const last = contents.at(-1);
    if (last?.role === role && last.parts) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const message of history) {
    switch (message.role) {
      case 'user':
        push('user', message.text ? [{ text: message.text }] : []);
        break;
      case 'assistant': {
        const parts: Part[] = message.text ? [{ text: message.text }] : [];
        for (const call of message.toolCalls) {
          const part: Part = { functionCall: { name: call.name, args: call.arguments, ...providerId(call.id) } };
          const signature = signatures.get(call.id);
          if (signature) part.thoughtSignature = signature;
          parts.push(part);
        }
        push('model', parts);
        break;
      }
      case 'tool':
        push('user', [
          {
            functionResponse: {
              name: message.name,
              response: message.ok ? { content: message.content } : { error: message.content },
              ...providerId(message.callId),
            },
          },
        ]);
        break;
    }
  }
  return contents;
}

function providerId(id: string): { id?: string } {
  return id.startsWith(LOCAL_ID_PREFIX) ? {} : { id };
}

function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    // The SDK's message is the raw JSON error body; pull out Google's status and text.
    return `HTTP ${err.status}: ${googleErrorText(err.message)}`;
  }
  if (err instanceof Error && err.name === 'AbortError') return 'request aborted or timed out';
  const cause = err instanceof Error && err.cause !== undefined ? `: ${errorMessage(err.cause)}` : '';
  return `${errorMessage(err)}${cause}`;
}

function googleErrorText(body: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return body;
  }
  const error = typeof parsed === 'object' && parsed !== null && 'error' in parsed ? parsed.error : undefined;
  if (typeof error !== 'object' || error === null) return body;
  const status = 'status' in error && typeof error.status === 'string' ? `${error.status}: ` : '';
  const message = 'message' in error && typeof error.message === 'string' ? error.message : body;
  return `${status}${message}`;
}

