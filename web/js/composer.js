// The composer: typing and sending a message, and the example buttons.
import { bindTurn, failTurn, newTurn, renderInflight } from './conversation.js';
import { els } from './dom.js';
import { showError } from './error-line.js';
import { normalizeError } from './format.js';
import { ACK_TIMEOUT_MS, connectedSocket, state } from './state.js';

function send() {
  const text = els.message.value;
  if (text.trim() === '') return;
  const socket = connectedSocket();
  if (!socket) {
    showError({ code: 'NOT_CONNECTED', message: 'connect first, then send your message' });
    return;
  }
  els.message.value = '';
  const turn = newTurn(text, false);
  state.awaitingAck++;
  renderInflight();
  const payload = state.session && state.session.sessionId ? { text, sessionId: state.session.sessionId } : { text };
  socket.timeout(ACK_TIMEOUT_MS).emit('message', payload, (err, res) => {
    state.awaitingAck--;
    if (err) {
      const e = { code: 'TIMEOUT', message: `the server did not acknowledge the message within ${ACK_TIMEOUT_MS / 1000} s` };
      failTurn(turn, 'failed', 'not acknowledged', e);
      showError(e, 'message');
    } else if (res && res.ok === true && typeof res.requestId === 'string') {
      bindTurn(turn, res.requestId);
    } else {
      const e = normalizeError(res && res.error);
      failTurn(turn, 'refused', 'refused', e);
      showError(e, 'message refused');
    }
    renderInflight();
  });
}

export function initComposer() {
  els.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  els.message.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  els.examples.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target.closest('[data-example]') : null;
    if (!target) return;
    els.message.value = target.getAttribute('data-example') ?? '';
    els.message.focus();
  });
}
