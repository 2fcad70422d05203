/** What the chat layer is told by configuration (config.chat). */
export interface ChatSettings {
  /** Requests in flight per user (accepted, not yet done or failed). */
  maxRequestsPerUser: number;
  /** A user's sandbox is released after this long without activity (SESSION_IDLE_TIMEOUT_MS). */
  sessionIdleTimeoutMs: number;
  /** After a user's last socket disconnects: cancel their requests and release the sandbox after this long. */
  disconnectGraceMs: number;
  /** A tool call not approved within this long is refused. */
  toolApprovalTimeoutMs: number;
  /** Bound on one tool call in the sandbox. */
  toolCallTimeoutMs: number;
  /** Largest accepted message text, in UTF-8 bytes. */
  maxMessageBytes: number;
  /** Users present at once per replica (MAX_SESSIONS); more are refused at connect. */
  maxSessions: number;
  /** Model turns per request before the agent gives up. */
  maxAgentSteps: number;
  /** Events one socket may send per second (burst twice that). */
  socketEventsPerSecond: number;
}
