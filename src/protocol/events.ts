/**
 * The Socket.IO wire contract (../shared/protocol.md), declared once and used
 * by both ends: the gateway types its server with these maps, the tests and
 * scripts type their socket.io-client sockets with them.
 */
import type { ErrorBody } from './errors.js';

/** An ack: `{ ok: true, ...fields }` or `{ ok: false, error }`. Never silence. */
export type AckResponse<T extends object = object> = ({ ok: true } & T) | { ok: false; error: ErrorBody };

/** `message` payload: the text, or `{ text, sessionId? }`. */
export type MessagePayload = string | { text: string; sessionId?: string };

export interface MessageAccepted {
  requestId: string;
  sessionId: string;
}

export interface ToolApproval {
  callId: string;
  approved: boolean;
}

/** How a tool call was decided. */
export type ApprovalVerdict = 'approved' | 'denied' | 'timeout';

export interface ToolRequest {
  requestId: string;
  callId: string;
  tool: string;
  arguments: Record<string, unknown>;
}

/** A tool call still waiting for its user's decision (the `session` event lists them). */
export interface PendingToolCall extends ToolRequest {
  expiresAtMs: number;
}

export interface ToolResult {
  requestId: string;
  callId: string;
  tool: string;
  ok: boolean;
  content: string;
  durationMs: number;
  /** Extension: how the call was decided. */
  approval: ApprovalVerdict;
}

export interface MessageText {
  requestId: string;
  text: string;
}

export interface ToolDecided {
  requestId: string;
  callId: string;
  approved: boolean;
}

export interface RequestError {
  /** null for the refusal of a message sent without an ack callback. */
  requestId: string | null;
  error: ErrorBody;
}

/** Extension: sent to a socket when it connects. */
export interface SessionInfo {
  sessionId: string;
  userId: string;
  replica: string;
  provider: string;
  model: string;
  tools: string[];
  limits: { maxRequestsPerUser: number; maxMessageBytes: number; toolApprovalTimeoutMs: number };
  /** This user's requests in flight right now (all tabs). */
  inFlight: number;
  /** Tool calls waiting for this user's decision, so a tab that connects late can show them. */
  pending: PendingToolCall[];
}

/** Client -> server. Servers validate every payload: these are the shapes clients must send. */
export interface ClientToServerEvents {
  message: (payload: MessagePayload, ack?: (response: AckResponse<MessageAccepted>) => void) => void;
  'tool:approval': (payload: ToolApproval, ack?: (response: AckResponse) => void) => void;
}

/** Server -> client: sent to every socket of the user, on any replica. */
export interface ServerToClientEvents {
  session: (info: SessionInfo) => void;
  'tool:request': (p: ToolRequest) => void;
  'tool:result': (p: ToolResult) => void;
  'message:delta': (p: MessageText) => void;
  'message:done': (p: MessageText) => void;
  /** Extension: a message of this user was accepted (other tabs show it). */
  'message:accepted': (p: MessageText) => void;
  /** Extension: a tool call was decided (other tabs lock their buttons before the result). */
  'tool:decided': (p: ToolDecided) => void;
  'request:error': (p: RequestError) => void;
}

/** A forwarded message's answer: null from every replica but its target. */
export type ForwardedMessageAck = AckResponse<MessageAccepted> | null;

/** Replica to replica, over the Socket.IO Redis adapter (serverSideEmitWithAck). */
export interface InterServerEvents {
  'sandpool:message': (msg: { target: string; userId: string; payload: unknown }, ack: (res: ForwardedMessageAck) => void) => void;
  'sandpool:approval': (msg: { userId: string } & ToolApproval, ack: (decided: boolean) => void) => void;
}

/** What a connected socket carries (set by the authentication middleware). */
export interface SocketData {
  userId: string;
}
