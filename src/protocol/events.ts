/**
 * The Socket.IO wire contract (../shared/protocol.md), declared once and used
 * by both ends: the gateway types its server with these maps, the tests and
 * scripts type their socket.io-client sockets with them.
 */
import type { CallToolResult, LoggingLevel } from './mcp-types.js';
import type { ErrorBody } from './errors.js';

/** An ack: `{ ok: true, ...fields }` or `{ ok: false, error }`. Never silence. */
export type AckResponse<T extends object = object> = ({ ok: true } & T) | { ok: false; error: ErrorBody };

/** `message` payload: the text, or `{ text, sessionId? }`. */
export type MessagePayload = string | { text: string; sessionId?: string };

export interface MessageAccepted {
  requestId: string;
  sessionId: string;
  /** Extension: the tool calls the user's plan has left per sliding window when the message was accepted (null = unlimited); absent when usage cannot be read (QUOTA_FAIL_MODE=open). */
  quota?: { plan: string; remaining: { hour: number | null; day: number | null; month: number | null } };
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

/**
 * What a sandbox's MCP server said about a tool call while it ran: its
 * progress notifications for the call, and its logging notifications while
 * the call was in flight.
 */
export type ToolNotice =
  | { kind: 'progress'; progress: number; total?: number; message?: string }
  | { kind: 'log'; level: LoggingLevel; logger?: string; data: unknown };

/** Extension: a running tool call's progress, as the sandbox's server reports it (its MCP progress notifications). */
export interface ToolProgress {
  requestId: string;
  callId: string;
  tool: string;
  /** Grows with every notice of one call; the unit is the server's. */
  progress: number;
  /** The expected end of `progress`, when the server knows it. */
  total?: number;
  message?: string;
}

/** Extension: a log message the sandbox's server sent while the tool call ran (its MCP logging notifications). */
export interface ToolLog {
  requestId: string;
  callId: string;
  tool: string;
  level: LoggingLevel;
  logger?: string;
  data: unknown;
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
  /** The user's plan (the token's claim, or DEFAULT_PLAN); limits.maxRequestsPerUser is its maxInFlight. */
  plan: string;
  /** This user's requests in flight right now (all tabs). */
  inFlight: number;
  /** Tool calls waiting for this user's decision, so a tab that connects late can show them. */
  pending: PendingToolCall[];
}

/** Client -> server. Servers validate every payload: these are the shapes clients must send. */
export interface ClientToServerEvents {
  message: (payload: MessagePayload, ack?: (response: AckResponse<MessageAccepted>) => void) => void;
  'tool:approval': (payload: ToolApproval, ack?: (response: AckResponse) => void) => void;
  /** Extension: deletes the user's files: their saved snapshot and their sandbox (the next call starts empty). */
  'workspace:wipe': (payload: Record<string, never>, ack?: (response: AckResponse) => void) => void;
}

/**
 * Every client event name at run time (the gateway refuses any other), kept
 * from the map itself: a key missing here, or one the map does not have,
 * fails to compile.
 */
const CLIENT_EVENT_NAMES: Readonly<Record<keyof ClientToServerEvents, true>> = { message: true, 'tool:approval': true, 'workspace:wipe': true };
export const CLIENT_EVENTS = Object.keys(CLIENT_EVENT_NAMES) as ReadonlyArray<keyof ClientToServerEvents>;

/** Server -> client: sent to every socket of the user, on any replica. */
export interface ServerToClientEvents {
  session: (info: SessionInfo) => void;
  'tool:request': (p: ToolRequest) => void;
  'tool:result': (p: ToolResult) => void;
  /** Extension: between tool:request and tool:result, as often as the sandbox's server reports progress. */
  'tool:progress': (p: ToolProgress) => void;
  /** Extension: between tool:request and tool:result, for each log message of the sandbox's server. */
  'tool:log': (p: ToolLog) => void;
  'message:delta': (p: MessageText) => void;
  'message:done': (p: MessageText) => void;
  /** Extension: a message of this user was accepted (other tabs show it). */
  'message:accepted': (p: MessageText) => void;
  /** Extension: a tool call was decided (other tabs lock their buttons before the result). */
  'tool:decided': (p: ToolDecided) => void;
  'request:error': (p: RequestError) => void;
  /** The socket's token expired: the server disconnects it next; reconnect with a fresh token. */
  'auth:expired': (p: Record<string, never>) => void;
}

/** A forwarded message's answer: null from every replica but its target. */
export type ForwardedMessageAck = AckResponse<MessageAccepted> | null;

/** A tool call to run in the user's sandbox on the replica that holds it (what the sandbox says meanwhile comes back as `sandpool:tool-notice`). */
export interface RemoteToolCall {
  name: string;
  arguments: Record<string, unknown>;
  timeoutMs: number;
  /** The caller's plan (its workspaceMaxBytes bounds the snapshot after the call). Counted against the quota already, where the call came in. */
  plan?: string;
}

/**
 * Whether a tool call took a fresh sandbox: `after-loss` when the user's
 * previous one died (its container or replica went away), `after-release`
 * when this replica took one for the user for the first time (there may have
 * been one before an idle release).
 */
export type StartedFresh = 'no' | 'after-release' | 'after-loss';

/** A tool call's outcome in the user's sandbox; a failure inside the sandbox is an `isError` result. */
export interface ToolRun {
  result: CallToolResult;
  startedFresh: StartedFresh;
  /** The fresh sandbox got the user's files back from their last snapshot. */
  restored?: boolean;
  /** What the user should know about their saved files: a restore or a save that did not work. */
  notice?: string;
}

/**
 * Replica to replica, over the Socket.IO Redis adapter. Messages and
 * approvals use acks (serverSideEmitWithAck, answered at once by every
 * replica); a tool call may run for a minute, longer than the adapter's
 * request timeout should be, so it is a request (acked on receipt) and a
 * reply event.
 */
export interface InterServerEvents {
  'sandpool:message': (msg: { target: string; userId: string; payload: unknown; plan?: string }, ack: (res: ForwardedMessageAck) => void) => void;
  'sandpool:approval': (msg: { userId: string } & ToolApproval, ack: (decided: boolean) => void) => void;
  /** Acked at once by every replica, true by the target only: no true ack means the target is silent (dead or stalled); the result comes as `sandpool:tool-reply`. */
  'sandpool:tool': (msg: { target: string; origin: string; id: string; userId: string; call: RemoteToolCall }, ack: (taken: boolean) => void) => void;
  /** What the sandbox's server said while a routed call ran (its progress and logging), to the replica that routed it. */
  'sandpool:tool-notice': (msg: { origin: string; id: string; notice: ToolNotice }) => void;
  'sandpool:tool-reply': (msg: { origin: string; id: string; outcome: ({ ok: true } & ToolRun) | { ok: false; error: ErrorBody; gone: boolean } }) => void;
  /** The user's last MCP session elsewhere ended: release the sandbox if nothing here holds it. */
  'sandpool:release': (msg: { target: string; userId: string }) => void;
  /** The user wiped their workspace: the replica holding their sandbox drops it (acked when done). */
  'sandpool:wipe': (msg: { target: string; userId: string }, ack: (done: boolean) => void) => void;
}

/** What a connected socket carries (set by the authentication middleware). */
export interface SocketData {
  userId: string;
  /** The user's plan, from the token that opened the socket. */
  plan: string;
  /** When its token expires (undefined for the development identity). */
  expiresAtMs: number | undefined;
}
