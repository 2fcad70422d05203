// The conversation: one turn per request (the user's message, tool cards, the
// answer), the in-flight counter, and the server's message events.
import { els, errorBox, h, withScroll } from './dom.js';
import { showError } from './error-line.js';
import { normalizeError, shortId, timeNow } from './format.js';
import { state } from './state.js';

export function renderInflight() {
  const n = state.inFlight.size + state.awaitingAck;
  const max = state.session && state.session.limits ? state.session.limits.maxRequestsPerUser : undefined;
  els.inflight.textContent = typeof max === 'number' ? `${n} / ${max} in flight` : `${n} in flight`;
  els.inflight.dataset.full = String(typeof max === 'number' && n >= max);
}

export function resetConversation() {
  for (const card of state.cards.values()) card.stopTimer();
  state.turns.clear();
  state.cards.clear();
  state.inFlight.clear();
  els.conversation.replaceChildren(els.emptyHint);
  els.emptyHint.hidden = false;
  renderInflight();
}

/** Events sent while disconnected are lost: open requests may never finish on screen. */
export function interruptOpenTurns() {
  for (const turn of state.turns.values()) {
    if (!turn.finished && !turn.interrupted) {
      turn.interrupted = true;
      turn.root.classList.add('interrupted');
      addNote(turn, 'Connection lost while this request was running — updates sent meanwhile may be missing.');
    }
  }
  state.inFlight.clear();
  renderInflight();
}

/** A new turn: with the user's text, or (text null) for a request made elsewhere. */
export function newTurn(text, fromOtherTab) {
  els.emptyHint.hidden = true;
  const meta = h('div', { class: 'turn-meta' });
  const root = h('article', { class: 'turn', dataset: { state: 'sending' } }, meta);
  if (text !== null) {
    root.append(h('div', { class: 'msg user' }, h('div', { class: 'bubble', text })));
  } else if (fromOtherTab) {
    root.append(h('div', { class: 'msg user other' }, h('div', { class: 'bubble muted', text: 'Sent from another tab or device' })));
  }
  const turn = { root, meta, requestId: null, current: null, finished: false, interrupted: false, cards: [] };
  renderMeta(turn, text === null ? 'running' : 'sending…');
  withScroll(() => els.conversation.append(root));
  return turn;
}

export function renderMeta(turn, status) {
  const label = turn.requestId ? `request ${shortId(turn.requestId)}` : 'request';
  turn.meta.replaceChildren(h('span', { class: 'turn-id', title: turn.requestId ?? '', text: label }), h('span', { class: 'turn-status', text: status }), h('span', { class: 'turn-time', text: timeNow() }));
}

/** The server accepted the turn's message as this request (counted in flight). */
export function bindTurn(turn, requestId) {
  turn.requestId = requestId;
  turn.root.dataset.requestId = requestId;
  turn.root.dataset.state = 'running';
  state.turns.set(requestId, turn);
  state.inFlight.add(requestId);
  renderMeta(turn, 'running');
}

/** A turn that ends without a request (not acknowledged, refused). */
export function failTurn(turn, dataState, status, error) {
  turn.finished = true;
  turn.root.dataset.state = dataState;
  renderMeta(turn, status);
  addTurnError(turn, error);
}

/** The turn of a request; one made elsewhere (another tab) gets a turn when its first event arrives. */
export function turnFor(requestId) {
  if (typeof requestId !== 'string') return null;
  let turn = state.turns.get(requestId);
  if (!turn) {
    turn = newTurn(null, true);
    bindTurn(turn, requestId);
    renderInflight();
  }
  return turn;
}

function finishTurn(turn, how) {
  turn.finished = true;
  turn.current = null;
  turn.root.dataset.state = how;
  if (turn.requestId) state.inFlight.delete(turn.requestId);
  renderMeta(turn, how === 'done' ? 'done' : 'failed');
  // A call still waiting can no longer be decided once its request ended.
  for (const card of turn.cards) if (!card.settled) card.settle({ state: 'cancelled', decision: 'Not decided — the request ended' });
  renderInflight();
}

function addNote(turn, text) {
  withScroll(() => turn.root.append(h('div', { class: 'note', text })));
}

function addTurnError(turn, error) {
  const box = errorBox(normalizeError(error));
  withScroll(() => turn.root.append(box));
}

/** The assistant bubble that streaming text goes to: the last element of the turn, or a new one. */
function assistantBubble(turn) {
  if (turn.current && turn.root.lastElementChild === turn.current.root) return turn.current;
  const bubble = h('div', { class: 'bubble' });
  const root = h('div', { class: 'msg assistant streaming' }, bubble);
  turn.current = { root, bubble, text: '' };
  withScroll(() => turn.root.append(root));
  return turn.current;
}

// ------------------------------------------------------------ server events

/** A message of this user sent from another tab: show its text on the turn. */
function onMessageAccepted(p) {
  if (!p || typeof p !== 'object' || typeof p.requestId !== 'string' || typeof p.text !== 'string') return;
  if (state.turns.has(p.requestId)) return;
  const turn = newTurn(p.text, false);
  bindTurn(turn, p.requestId);
  turn.root.classList.add('from-other-tab');
  renderInflight();
}

function onDelta(p) {
  if (!p || typeof p !== 'object' || typeof p.text !== 'string') return;
  const turn = turnFor(p.requestId);
  if (!turn || turn.finished) return;
  const a = assistantBubble(turn);
  a.text += p.text;
  withScroll(() => {
    a.bubble.textContent = a.text;
  });
}

function onDone(p) {
  if (!p || typeof p !== 'object') return;
  const turn = turnFor(p.requestId);
  if (!turn || turn.finished) return;
  const a = assistantBubble(turn);
  const text = typeof p.text === 'string' ? p.text : '';
  a.text = text;
  a.root.classList.remove('streaming');
  a.root.classList.add('final');
  a.root.dataset.testid = 'final-answer';
  withScroll(() => {
    if (text === '') {
      a.bubble.classList.add('muted');
      a.bubble.textContent = '(no answer)';
    } else {
      a.bubble.textContent = text;
    }
  });
  finishTurn(turn, 'done');
}

function onRequestError(p) {
  if (!p || typeof p !== 'object') return;
  const error = normalizeError(p.error);
  if (typeof p.requestId !== 'string') {
    showError(error);
    return;
  }
  const turn = turnFor(p.requestId);
  if (!turn) return;
  if (turn.current) turn.current.root.classList.remove('streaming');
  addTurnError(turn, error);
  showError(error, `request ${shortId(p.requestId)}`);
  if (!turn.finished) finishTurn(turn, 'failed');
}

/** Socket.IO events this module handles. */
export const messageEvents = {
  'message:accepted': onMessageAccepted,
  'message:delta': onDelta,
  'message:done': onDone,
  'request:error': onRequestError,
};
