/**
 * The provider-neutral conversation model. Every LLM provider translates these
 * to and from its own wire format; the agent loop, the chat service and the
 * conversation store only ever see these.
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

/** Trims a history to at most `max` messages, cutting at a user turn so no tool result loses its call. */
export function trimHistory(history: ChatMessage[], max: number): ChatMessage[] {
  if (history.length <= max) return history;
  let cut = history.length - max;
  while (cut < history.length && history[cut]?.role !== 'user') cut++;
  return history.slice(cut);
}
