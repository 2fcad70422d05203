// sandpool chat page: ES modules, no build step. Served with a strict CSP (no
// inline scripts or styles); server data only ever reaches the page as text.
// This module wires the others together and starts the page.
import { onToolRequest, toolEvents } from './approvals.js';
import { initComposer } from './composer.js';
import { createConnection, setConn } from './connection.js';
import { interruptOpenTurns, messageEvents, renderInflight, resetConversation } from './conversation.js';
import { els } from './dom.js';
import { initErrorLine } from './error-line.js';
import { startPoolPanel } from './pool-panel.js';
import { renderMcpPanel } from './mcp-panel.js';
import { renderSession } from './session-panel.js';
import { prefillUserId, readSignin } from './signin.js';
import { state } from './state.js';

const connection = createConnection({
  onSession(s) {
    renderSession(s);
    renderMcpPanel({ userId: s.userId, withToken: Boolean(els.token.value.trim()) });
    // Calls that were already waiting when this tab (re)connected.
    for (const p of Array.isArray(s.pending) ? s.pending : []) onToolRequest(p);
    renderInflight();
  },
  onLost: interruptOpenTurns,
  onNewUser: resetConversation,
  events: { ...toolEvents, ...messageEvents },
});

els.signin.addEventListener('submit', (event) => {
  event.preventDefault();
  const signin = readSignin();
  if (signin) void connection.connect(signin);
});
els.disconnect.addEventListener('click', () => {
  connection.close();
  setConn('disconnected', 'Disconnected');
});
initErrorLine();
initComposer();

prefillUserId();
renderMcpPanel({ userId: els.userId.value.trim(), withToken: false });
setConn('disconnected', 'Not connected');
renderInflight();
// The status of the replica this user's sockets reach (or would reach).
startPoolPanel(() => (state.socket ? state.userId : els.userId.value.trim()) ?? '');
