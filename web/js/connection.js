// The Socket.IO connection: connect, reconnect, sign out, and the status line.
import { els } from './dom.js';
import { clearError, showError } from './error-line.js';
import { state } from './state.js';

/** The ES module build of the client, served by the Socket.IO server itself (no CDN). */
const CLIENT_URL = '/socket.io/socket.io.esm.min.js';
/** Back-off after the server closed the connection itself (Socket.IO does not retry that on its own). */
const SERVER_CLOSE_RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

let client = null;
/** The client's io(), or null when it did not load (tried again on the next connect). */
function loadClient() {
  client ??= import(CLIENT_URL).then(
    (module) => module.io,
    () => {
      client = null;
      return null;
    },
  );
  return client;
}

/** The status line and the buttons that depend on it. */
export function setConn(stateName, text) {
  els.connStatus.dataset.state = stateName;
  els.connText.textContent = text;
  els.disconnect.disabled = state.socket === null;
  els.send.disabled = stateName !== 'connected';
  els.connect.textContent = state.socket ? 'Reconnect' : 'Connect';
}

/**
 * The connection's life cycle; what it means for the rest of the page comes in as hooks:
 * - onSession(info): the server's `session` event (on every (re)connect);
 * - onLost(): the socket went away; events sent meanwhile are lost;
 * - onNewUser(): a different user signs in (the conversation on screen is someone else's);
 * - events: { name: handler } for the server's chat events.
 */
export function createConnection({ onSession, onLost, onNewUser, events }) {
  // Fetched while the page loads, so Connect does not wait for it.
  void loadClient();

  function close() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    state.retries = 0;
    const socket = state.socket;
    if (!socket) return;
    state.socket = null;
    socket.removeAllListeners();
    socket.io.removeAllListeners();
    socket.disconnect();
    onLost();
  }

  /** After the server closed this connection (e.g. its replica is shutting down): come back after a pause, most likely to another replica. */
  function retryLater(socket, reason) {
    const delay = SERVER_CLOSE_RETRY_MS[Math.min(state.retries, SERVER_CLOSE_RETRY_MS.length - 1)];
    state.retries++;
    setConn('reconnecting', `Disconnected by the server (${reason}) — reconnecting in ${Math.round(delay / 1000)} s…`);
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(() => {
      if (state.socket === socket && !socket.connected) {
        setConn('connecting', 'Reconnecting…');
        socket.connect();
      }
    }, delay);
  }

  async function connect({ userId, token }) {
    const io = await loadClient();
    if (!io) {
      showError({ code: 'INTERNAL', message: `the Socket.IO client (${CLIENT_URL}) did not load` });
      return;
    }
    close();
    clearError();
    if (state.userId !== userId) onNewUser();
    state.userId = userId;

    const socket = io({
      // The server decides: with AUTH_SECRET it uses the token's user, without it the userId.
      auth: token ? { token, userId } : { userId },
      query: { uid: userId },
      forceNew: true,
      // WebSocket first (no long-poll left dangling when a connection is refused),
      // HTTP long-polling only where a proxy blocks WebSockets.
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
      reconnectionDelayMax: 5_000,
    });
    state.socket = socket;
    setConn('connecting', `Connecting as ${userId}…`);

    // Every listener ignores a socket that is no longer the page's.
    const on = (target, name, handler) => target.on(name, (...args) => state.socket === socket && handler(...args));

    on(socket, 'connect', () => setConn('connecting', 'Connected, opening session…'));
    on(socket, 'session', (info) => {
      state.session = info && typeof info === 'object' ? info : null;
      state.retries = 0;
      const s = state.session || {};
      setConn('connected', `Connected to replica ${s.replica ?? '?'} as ${s.userId ?? state.userId}`);
      onSession(s);
    });
    on(socket, 'disconnect', (reason) => {
      onLost();
      if (reason === 'io client disconnect') setConn('disconnected', 'Disconnected');
      else if (socket.active) setConn('reconnecting', `Disconnected (${reason}) — reconnecting…`);
      else retryLater(socket, reason);
    });
    on(socket, 'connect_error', (err) => {
      const data = err && typeof err.data === 'object' && err.data ? err.data : {};
      const code = typeof data.code === 'string' ? data.code : (err && err.message) || 'CONNECT_ERROR';
      const message = typeof data.message === 'string' ? data.message : (err && err.message) || 'connection failed';
      if (socket.active) {
        setConn('reconnecting', `Cannot reach the server (${code}) — retrying…`);
      } else {
        setConn('error', `Refused: ${code}`);
        showError({ code, message }, 'connection refused');
      }
    });
    on(socket.io, 'reconnect_attempt', (attempt) => setConn('reconnecting', `Reconnecting (attempt ${attempt})…`));

    // Chat events: the handlers check their payloads themselves.
    for (const [name, handler] of Object.entries(events)) socket.on(name, handler);
  }

  return { connect, close };
}
