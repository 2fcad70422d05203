// The page's mutable state, shared by the modules: one tab, one user at a time.

/** How long an ack (message, approval) may take before the page gives up on it. */
export const ACK_TIMEOUT_MS = 15_000;

export const state = {
  /** The Socket.IO socket, or null when signed out. */
  socket: null,
  /** Pending reconnect after the server closed the connection, and how many came before it. */
  retryTimer: null,
  retries: 0,
  /** The user the conversation on screen belongs to. */
  userId: null,
  /** The last `session` event (replica, limits, tools, ...). */
  session: null,
  /** requestIds accepted by the server and not yet done or failed. */
  inFlight: new Set(),
  /** Messages sent and waiting for their ack. */
  awaitingAck: 0,
  /** requestId -> turn (conversation.js) */
  turns: new Map(),
  /** callId -> tool card (approvals.js) */
  cards: new Map(),
};

/** The socket when it is connected, else null. */
export function connectedSocket() {
  const socket = state.socket;
  return socket && socket.connected ? socket : null;
}
