// Tool cards: a call waiting for approval (Approve / Deny, countdown), its
// decision (here, in another tab, or by the timeout) and its result.
import { renderMeta, turnFor } from './conversation.js';
import { errorBox, h, withScroll } from './dom.js';
import { showError } from './error-line.js';
import { formatMs, normalizeError, prettyJson } from './format.js';
import { ACK_TIMEOUT_MS, connectedSocket, state } from './state.js';

/** What the card says for a decision it did not make itself. */
function decidedElsewhereText(approval) {
  if (approval === 'timeout') return 'Not approved in time';
  if (approval === 'approved') return 'Approved in another tab';
  if (approval === 'denied') return 'Denied in another tab';
  return 'Decided elsewhere';
}

/** The card's final state from a tool:result: [data-state, status text]. */
function resultState(approval, ok) {
  if (approval === 'denied') return ['denied', 'denied — not run'];
  if (approval === 'timeout') return ['timeout', 'timed out — not run'];
  return ok ? ['ok', 'completed'] : ['failed', 'failed'];
}

function makeCard(turn, p) {
  const callId = String(p.callId);
  const status = h('span', { class: 'tool-status', text: 'waiting for approval' });
  const approve = h('button', { type: 'button', class: 'btn btn-approve', dataset: { action: 'approve' }, text: 'Approve' });
  const deny = h('button', { type: 'button', class: 'btn btn-deny', dataset: { action: 'deny' }, text: 'Deny' });
  const decision = h('span', { class: 'tool-decision', 'data-testid': 'tool-decision' });
  const countdown = h('span', { class: 'tool-countdown muted small' });
  const args =
    p.arguments === undefined
      ? h('div', { class: 'tool-args-missing muted small', text: '(not shown: the call was requested before this tab connected)' })
      : h('pre', { class: 'tool-args', text: prettyJson(p.arguments) });
  const actions = h('div', { class: 'tool-actions' }, approve, deny, decision, countdown);
  const result = h('div', { class: 'tool-result', hidden: true });
  const root = h(
    'section',
    { class: 'tool-card', dataset: { callId, state: 'pending', tool: String(p.tool) } },
    h('header', { class: 'tool-head' }, h('span', { class: 'tool-icon', 'aria-hidden': 'true', text: '⚙' }), h('span', { class: 'tool-label', text: 'Tool call' }), h('code', { class: 'tool-name', text: String(p.tool) }), status),
    h('div', { class: 'tool-section-label', text: 'Arguments' }),
    args,
    actions,
    result,
  );
  const deadline = state.session && state.session.limits ? Date.now() + state.session.limits.toolApprovalTimeoutMs : null;

  const card = {
    root,
    callId,
    settled: false,
    /** true / false once decided in this tab (until the server refuses the decision), else null. */
    decidedHere: null,
    timer: null,
    stopTimer() {
      if (card.timer) clearInterval(card.timer);
      card.timer = null;
      countdown.textContent = '';
    },
    setState(name, statusText) {
      root.dataset.state = name;
      status.textContent = statusText;
    },
    lock(locked = true) {
      approve.disabled = locked;
      deny.disabled = locked;
    },
    decidedElsewhere(approved) {
      decision.textContent = approved ? 'Approved in another tab' : 'Denied in another tab';
      card.setState(approved ? 'approved' : 'denying', approved ? 'approved — running…' : 'denied');
    },
    /** Final state without a result (the request ended first). */
    settle({ state: name, decision: text }) {
      card.settled = true;
      card.stopTimer();
      card.lock();
      card.setState(name, text);
      decision.textContent = text;
    },
    showResult(r) {
      card.settled = true;
      card.stopTimer();
      card.lock();
      const approval = typeof r.approval === 'string' ? r.approval : r.ok ? 'approved' : undefined;
      if (card.decidedHere !== null && approval !== 'timeout') decision.textContent = card.decidedHere ? 'Approved' : 'Denied';
      else decision.textContent = decidedElsewhereText(approval); // another tab of this user, or the timeout
      card.setState(...resultState(approval, r.ok));
      // Denied or timed out: nothing ran, so no "failed" and no duration.
      const ran = approval !== 'denied' && approval !== 'timeout';
      const badge = h('span', { class: `result-badge ${r.ok ? 'ok' : 'failed'}`, 'data-testid': 'result-status', text: r.ok ? 'ok' : ran ? 'failed' : 'not run' });
      const head = h('div', { class: 'tool-result-head' }, badge, h('span', { class: 'tool-section-label', text: 'Result' }), ran ? h('span', { class: 'duration muted small', text: formatMs(r.durationMs) }) : null);
      const content = typeof r.content === 'string' ? r.content : prettyJson(r.content);
      const body = content === '' ? h('div', { class: 'muted small', text: '(no output)' }) : h('pre', { class: 'tool-content', text: content });
      result.replaceChildren(head, body);
      withScroll(() => {
        result.hidden = false;
      });
    },
  };

  function decide(approved) {
    const socket = connectedSocket();
    if (!socket) {
      showError({ code: 'NOT_CONNECTED', message: 'reconnect to approve or deny this call' });
      return;
    }
    card.lock();
    card.decidedHere = approved;
    decision.textContent = approved ? 'Approving…' : 'Denying…';
    socket.timeout(ACK_TIMEOUT_MS).emit('tool:approval', { callId, approved }, (err, res) => {
      if (card.settled) return;
      if (!err && res && res.ok === true) {
        decision.textContent = approved ? 'Approved' : 'Denied';
        card.setState(approved ? 'approved' : 'denying', approved ? 'approved — running…' : 'denied');
        card.stopTimer();
        return;
      }
      const e = err ? { code: 'TIMEOUT', message: 'the server did not answer the decision in time' } : normalizeError(res && res.error);
      card.decidedHere = null;
      if (e.code === 'UNKNOWN_CALL') {
        // Already decided in another tab, timed out, or the request ended: the result will tell.
        decision.textContent = 'This call is no longer waiting (decided elsewhere or timed out)';
      } else {
        decision.textContent = '';
        card.lock(false);
      }
      root.append(errorBox(e));
      showError(e, `decision on ${p.tool}`);
    });
  }
  approve.addEventListener('click', () => decide(true));
  deny.addEventListener('click', () => decide(false));

  if (deadline) {
    const tick = () => {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      countdown.textContent = card.decidedHere === null ? `expires in ${left} s` : '';
    };
    tick();
    card.timer = setInterval(tick, 1000);
  }

  turn.cards.push(card);
  state.cards.set(callId, card);
  withScroll(() => turn.root.append(root));
  turn.current = null;
  return card;
}

/** A call waiting for approval (live, or from the session's pending list when this tab connected). */
export function onToolRequest(p) {
  if (!p || typeof p !== 'object') return;
  const turn = turnFor(p.requestId);
  if (!turn || state.cards.has(String(p.callId))) return;
  makeCard(turn, p);
  renderMeta(turn, 'waiting for your approval');
}

/** A decision made in another tab: lock this tab's buttons before the result arrives. */
function onToolDecided(p) {
  if (!p || typeof p !== 'object') return;
  const card = state.cards.get(String(p.callId));
  if (!card || card.settled || card.decidedHere !== null) return;
  card.lock();
  card.stopTimer();
  card.decidedElsewhere(p.approved === true);
}

function onToolResult(p) {
  if (!p || typeof p !== 'object') return;
  const turn = turnFor(p.requestId);
  if (!turn) return;
  // A call requested before this tab connected: show it from its result.
  const card = state.cards.get(String(p.callId)) ?? makeCard(turn, { callId: p.callId, tool: p.tool, arguments: undefined });
  card.showResult(p);
  if (!turn.finished) renderMeta(turn, 'running');
}

/** Socket.IO events this module handles. */
export const toolEvents = {
  'tool:request': onToolRequest,
  'tool:decided': onToolDecided,
  'tool:result': onToolResult,
};
