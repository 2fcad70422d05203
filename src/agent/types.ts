/**
 * Provider-neutral conversation model. Every LLM provider translates these to
 * and from its own wire format; the agent loop only ever sees these.
 */

/** A tool the model may call: straight from the sandbox's MCP tools/list. */
export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments object (MCP inputSchema). */
  inputSchema: Record<string, unknown>;
}

export interface ToolCall {
  /** Unique within the conversation; provider ids are kept when the provider has them. */
  id: string;
  name: string;
  arguments: Record<string, unknown>;
}

export type ChatMessage =
  | { role: 'user'; text: string }
  | { role: 'assistant'; text: string; toolCalls: ToolCall[] }
  | {
      role: 'tool';
      callId: string;
      name: string;
      /** false when the tool failed, or the user denied / did not approve it in time. */
      ok: boolean;
      /** Text result (or the refusal) given back to the model. */
      content: string;
    };

/** One model turn: text for the user and/or tool calls to run before the next turn. */
export interface AssistantTurn {
  text: string;
  toolCalls: ToolCall[];
}

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
