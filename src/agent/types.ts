import type { AssistantTurn, ChatMessage, ToolSpec } from '../model/conversation.js';

export type { AssistantTurn, ChatMessage, ToolCall, ToolSpec } from '../model/conversation.js';

export interface CompletionRequest {
  system: string;
  messages: readonly ChatMessage[];
  tools: readonly ToolSpec[];
  /** Streamed text as it arrives (optional for providers that cannot stream). */
  onTextDelta?: (delta: string) => void;
  signal?: AbortSignal;
}

/**
 * The boundary to a language model. Implementations throw SandpoolError with
 * code LLM_FAILED (message says what the provider answered) on any failure.
 */
export interface LlmProvider {
  readonly name: 'local' | 'gemini' | 'openai' | 'anthropic';
  readonly model: string;
  complete(request: CompletionRequest): Promise<AssistantTurn>;
}
