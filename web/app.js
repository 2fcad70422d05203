// sandpool chat page. Vanilla JS, no build step; served with a strict CSP
// (no inline scripts or styles), so everything here builds DOM nodes and sets
// textContent — server data never goes through innerHTML.
'use strict';

(() => {
  const ACK_TIMEOUT_MS = 15_000;
  const POOL_POLL_MS = 2_000;
  const MAX_SLOTS = 48;
  const USER_ID = /^[A-Za-z0-9_.@:+-]{1,128}$/;
  const STORAGE_KEY = 'sandpool.userId';
  /** Back-off after the server closed the connection itself (Socket.IO does not retry that on its own). */
  const SERVER_CLOSE_RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

  const byId = (id) => {
    const node = document.getElementById(id);
    if (!node) throw new Error(`missing #${id}`);
    return node;
  };

  const els = {
    signin: byId('signin'),
    userId: byId('user-id'),
    token: byId('token'),
    connect: byId('connect'),
    disconnect: byId('disconnect'),
    connStatus: byId('conn-status'),
    connText: byId('conn-text'),
    conversation: byId('conversation'),
    emptyHint: byId('empty-hint'),
    errorLine: byId('error-line'),
    errorCode: byId('error-code'),
    errorMessage: byId('error-message'),
    errorDismiss: byId('error-dismiss'),
    composer: byId('composer'),
    message: byId('message'),
    send: byId('send'),
    inflight: byId('inflight'),
    poolReady: byId('pool-ready'),
    poolSlots: byId('pool-slots'),
    poolIdle: byId('pool-idle'),
    poolActive: byId('pool-active'),
    poolTotal: byId('pool-total'),
    poolMax: byId('pool-max'),
    poolCreating: byId('pool-creating'),
    poolPending: byId('pool-pending'),
    poolUpdated: byId('pool-updated'),
    sessionReplica: byId('session-replica'),
    sessionModel: byId('session-model'),
    sessionId: byId('session-id'),
    sessionLimits: byId('session-limits'),
    toolList: byId('tool-list'),
    examples: byId('examples'),
  };

  /** Small DOM builder: classes, data-* and plain attributes; children are nodes or text. */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'class') node.className = value;
        else if (key === 'text') node.textContent = value;
        else if (key === 'dataset') Object.assign(node.dataset, value);
        else node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const state = {
    socket: null,
    retryTimer: null,
    retries: 0,
    /** The user the conversation on screen belongs to. */
    userId: null,
    session: null,
    /** requestIds accepted by the server and not yet done or failed. */
    inFlight: new Set(),
    /** messages sent and waiting for their ack. */
    awaitingAck: 0,
    /** requestId -> turn */
    turns: new Map(),
    /** callId -> card */
    cards: new Map(),
  };

  // ---------------------------------------------------------------- helpers

  function normalizeError(error, fallbackCode = 'INTERNAL') {
    if (error && typeof error === 'object') {
      const code = typeof error.code === 'string' ? error.code : fallbackCode;
      const message = typeof error.message === 'string' ? error.message : JSON.stringify(error);
      return { code, message };
    }
    return { code: fallbackCode, message: String(error) };
  }

  function formatMs(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  }

  function shortId(id) {
    return typeof id === 'string' ? id.slice(0, 8) : '';
  }

  function timeNow() {
    return new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function prettyJson(value) {
    try {
      return JSON.stringify(value, null, 2) ?? String(value);
    } catch {
      return String(value);
    }
  }

  function randomUserId() {
    const bytes = new Uint8Array(3);
    crypto.getRandomValues(bytes);
    return `user-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  }

  /** Keeps the newest content in view, unless the reader scrolled up. */
  function scroller() {
    // Wide screens: the conversation scrolls by itself; narrow ones: the page does.
    return getComputedStyle(els.conversation).overflowY === 'auto' ? els.conversation : document.scrollingElement || document.documentElement;
  }
  function withScroll(fn) {
    const box = scroller();
    const stick = box.scrollHeight - (box.scrollTop + box.clientHeight) < 160;
    const result = fn();
    if (stick) box.scrollTop = box.scrollHeight;
    return result;
  }

  // ------------------------------------------------------------ error line

  function showError(error, context) {
    const { code, message } = normalizeError(error);
    els.errorCode.textContent = code;
    els.errorMessage.textContent = context ? `${context}: ${message}` : message;
    els.errorLine.hidden = false;
  }
  function clearError() {
    els.errorLine.hidden = true;
    els.errorCode.textContent = '';
    els.errorMessage.textContent = '';
  }
  els.errorDismiss.addEventListener('click', clearError);

  // ------------------------------------------------------ connection state

  function setConn(stateName, text) {
    els.connStatus.dataset.state = stateName;
    els.connText.textContent = text;
    const connected = stateName === 'connected';
    els.disconnect.disabled = state.socket === null;
    els.send.disabled = !connected;
    els.connect.textContent = state.socket ? 'Reconnect' : 'Connect';
  }

  function connect() {
    const userId = els.userId.value.trim();
    const token = els.token.value.trim();
    if (!token && userId === '') {
      showError({ code: 'BAD_REQUEST', message: 'enter a user id (or a token)' }, 'sign-in');
      els.userId.focus();
      return;
    }
    try {
      localStorage.setItem(STORAGE_KEY, userId);
    } catch {
      // storage may be unavailable (private mode); the page works without it
    }
    if (typeof window.io !== 'function') {
      showError({ code: 'INTERNAL', message: 'the Socket.IO client (/socket.io/socket.io.min.js) did not load' });
      return;
    }
    closeSocket();
    clearError();
    if (state.userId !== userId) resetConversation();
    state.userId = userId;

    const socket = window.io({
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

    socket.on('connect', () => {
      if (state.socket !== socket) return;
      setConn('connecting', 'Connected, opening session…');
    });
    socket.on('session', (info) => {
      if (state.socket !== socket) return;
      onSession(info);
    });
    socket.on('disconnect', (reason) => {
      if (state.socket !== socket) return;
      onDisconnected();
      if (reason === 'io client disconnect') setConn('disconnected', 'Disconnected');
      else if (socket.active) setConn('reconnecting', `Disconnected (${reason}) — reconnecting…`);
      else {
        // The server closed this connection (e.g. the replica is shutting down): come back
        // after a pause, through the balancer, most likely to another replica.
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
    });
    socket.on('connect_error', (err) => {
      if (state.socket !== socket) return;
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
    socket.io.on('reconnect_attempt', (attempt) => {
      if (state.socket !== socket) return;
      setConn('reconnecting', `Reconnecting (attempt ${attempt})…`);
    });

    socket.on('tool:request', onToolRequest);
    socket.on('tool:decided', onToolDecided);
    socket.on('message:accepted', onMessageAccepted);
    socket.on('tool:result', onToolResult);
    socket.on('message:delta', onDelta);
    socket.on('message:done', onDone);
    socket.on('request:error', onRequestError);
  }

  function closeSocket() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    state.retries = 0;
    const socket = state.socket;
    if (!socket) return;
    state.socket = null;
    socket.removeAllListeners();
    socket.io.removeAllListeners();
    socket.disconnect();
    onDisconnected();
  }

  function onSession(info) {
    state.session = info && typeof info === 'object' ? info : null;
    state.retries = 0;
    const s = state.session || {};
    setConn('connected', `Connected to replica ${s.replica ?? '?'} as ${s.userId ?? state.userId}`);
    els.sessionReplica.textContent = s.replica ?? '–';
    els.sessionModel.textContent = s.provider ? `${s.provider} · ${s.model ?? ''}` : '–';
    els.sessionId.textContent = shortId(s.sessionId) || '–';
    els.sessionId.title = s.sessionId ?? '';
    const limits = s.limits || {};
    const parts = [];
    if (limits.maxRequestsPerUser) parts.push(`${limits.maxRequestsPerUser} requests in flight`);
    if (limits.toolApprovalTimeoutMs) parts.push(`${Math.round(limits.toolApprovalTimeoutMs / 1000)} s to approve`);
    if (limits.maxMessageBytes) parts.push(`${limits.maxMessageBytes.toLocaleString()} bytes a message`);
    els.sessionLimits.textContent = parts.join('\n') || '–';
    const tools = Array.isArray(s.tools) ? s.tools : [];
    els.toolList.replaceChildren(
      ...(tools.length > 0
        ? tools.map((t) => h('li', { class: 'chip', text: String(t) }))
        : [h('li', { class: 'muted small', text: 'not reported yet (known once a sandbox has started)' })]),
    );
    // Calls that were already waiting when this tab (re)connected.
    for (const p of Array.isArray(s.pending) ? s.pending : []) onToolRequest(p);
    renderInflight();
  }

  /** Events sent while disconnected are lost; open requests may never finish on screen. */
  function onDisconnected() {
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

  els.signin.addEventListener('submit', (event) => {
    event.preventDefault();
    connect();
  });
  els.disconnect.addEventListener('click', () => {
    closeSocket();
    setConn('disconnected', 'Disconnected');
  });

  // ------------------------------------------------------------ conversation

  function resetConversation() {
    for (const card of state.cards.values()) card.stopTimer();
    state.turns.clear();
    state.cards.clear();
    state.inFlight.clear();
    els.conversation.replaceChildren(els.emptyHint);
    els.emptyHint.hidden = false;
    renderInflight();
  }

  function newTurn(text, fromOtherTab) {
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

  function renderMeta(turn, status) {
    const label = turn.requestId ? `request ${shortId(turn.requestId)}` : 'request';
    turn.meta.replaceChildren(h('span', { class: 'turn-id', title: turn.requestId ?? '', text: label }), h('span', { class: 'turn-status', text: status }), h('span', { class: 'turn-time', text: timeNow() }));
  }

  function bindTurn(turn, requestId) {
    turn.requestId = requestId;
    turn.root.dataset.requestId = requestId;
    turn.root.dataset.state = 'running';
    state.turns.set(requestId, turn);
    renderMeta(turn, 'running');
  }

  /** The turn of a request; one made elsewhere (another tab) gets a turn when its first event arrives. */
  function turnFor(requestId) {
    if (typeof requestId !== 'string') return null;
    let turn = state.turns.get(requestId);
    if (!turn) {
      turn = newTurn(null, true);
      bindTurn(turn, requestId);
      state.inFlight.add(requestId);
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
    const { code, message } = normalizeError(error);
    withScroll(() =>
      turn.root.append(h('div', { class: 'request-error', role: 'alert', dataset: { code } }, h('span', { class: 'error-code', text: code }), h('span', { class: 'error-message', text: message }))),
    );
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

  // --------------------------------------------------------------- sending

  function send() {
    const text = els.message.value;
    if (text.trim() === '') return;
    const socket = state.socket;
    if (!socket || !socket.connected) {
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
        turn.finished = true;
        turn.root.dataset.state = 'failed';
        renderMeta(turn, 'not acknowledged');
        const e = { code: 'TIMEOUT', message: `the server did not acknowledge the message within ${ACK_TIMEOUT_MS / 1000} s` };
        addTurnError(turn, e);
        showError(e, 'message');
      } else if (res && res.ok === true && typeof res.requestId === 'string') {
        bindTurn(turn, res.requestId);
        state.inFlight.add(res.requestId);
      } else {
        turn.finished = true;
        turn.root.dataset.state = 'refused';
        renderMeta(turn, 'refused');
        const e = normalizeError(res && res.error);
        addTurnError(turn, e);
        showError(e, 'message refused');
      }
      renderInflight();
    });
  }

  function renderInflight() {
    const n = state.inFlight.size + state.awaitingAck;
    const max = state.session && state.session.limits ? state.session.limits.maxRequestsPerUser : undefined;
    els.inflight.textContent = typeof max === 'number' ? `${n} / ${max} in flight` : `${n} in flight`;
    els.inflight.dataset.full = String(typeof max === 'number' && n >= max);
  }

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

  // ------------------------------------------------------------ tool cards

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
      lock() {
        approve.disabled = true;
        deny.disabled = true;
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
        if (card.decidedHere !== null && approval !== 'timeout') {
          decision.textContent = card.decidedHere ? 'Approved' : 'Denied';
        } else {
          // Decided elsewhere (another tab of this user) or by the timeout.
          decision.textContent =
            approval === 'timeout' ? 'Not approved in time' : approval === 'approved' ? 'Approved in another tab' : approval === 'denied' ? 'Denied in another tab' : 'Decided elsewhere';
        }
        let name;
        if (approval === 'denied') name = 'denied';
        else if (approval === 'timeout') name = 'timeout';
        else name = r.ok ? 'ok' : 'failed';
        card.setState(name, name === 'ok' ? 'completed' : name === 'failed' ? 'failed' : name === 'denied' ? 'denied — not run' : 'timed out — not run');
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
      const socket = state.socket;
      if (!socket || !socket.connected) {
        showError({ code: 'NOT_CONNECTED', message: 'reconnect to approve or deny this call' });
        return;
      }
      card.lock();
      card.decidedHere = approved;
      decision.textContent = approved ? 'Approving…' : 'Denying…';
      socket.timeout(ACK_TIMEOUT_MS).emit('tool:approval', { callId, approved }, (err, res) => {
        if (!err && res && res.ok === true) {
          if (card.settled) return;
          decision.textContent = approved ? 'Approved' : 'Denied';
          card.setState(approved ? 'approved' : 'denying', approved ? 'approved — running…' : 'denied');
          card.stopTimer();
          return;
        }
        const e = err ? { code: 'TIMEOUT', message: 'the server did not answer the decision in time' } : normalizeError(res && res.error);
        if (card.settled) return;
        card.decidedHere = null;
        if (e.code === 'UNKNOWN_CALL') {
          // Already decided in another tab, timed out, or the request ended: the result will tell.
          decision.textContent = 'This call is no longer waiting (decided elsewhere or timed out)';
        } else {
          decision.textContent = '';
          approve.disabled = false;
          deny.disabled = false;
        }
        root.append(h('div', { class: 'request-error', role: 'alert', dataset: { code: e.code } }, h('span', { class: 'error-code', text: e.code }), h('span', { class: 'error-message', text: e.message })));
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

  function onToolRequest(p) {
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

  /** A message of this user sent from another tab: show its text on the turn. */
  function onMessageAccepted(p) {
    if (!p || typeof p !== 'object' || typeof p.requestId !== 'string' || typeof p.text !== 'string') return;
    if (state.turns.has(p.requestId)) return;
    const turn = newTurn(p.text, false);
    bindTurn(turn, p.requestId);
    turn.root.classList.add('from-other-tab');
    state.inFlight.add(p.requestId);
    renderInflight();
  }

  function onToolResult(p) {
    if (!p || typeof p !== 'object') return;
    const turn = turnFor(p.requestId);
    if (!turn) return;
    let card = state.cards.get(String(p.callId));
    // A call requested before this tab connected: show it from its result.
    if (!card) card = makeCard(turn, { callId: p.callId, tool: p.tool, arguments: undefined });
    card.showResult(p);
    if (!turn.finished) renderMeta(turn, 'running');
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

  // ------------------------------------------------------------- pool panel

  function num(value) {
    return typeof value === 'number' && Number.isFinite(value) ? String(value) : '–';
  }

  function renderPool(s) {
    els.poolIdle.textContent = num(s.idle);
    els.poolActive.textContent = num(s.active);
    els.poolTotal.textContent = num(s.total);
    els.poolMax.textContent = num(s.maxPoolSize);
    els.poolCreating.textContent = num(s.creating);
    els.poolPending.textContent = num(s.pending);
    const ready = s.ready === true;
    els.poolReady.textContent = s.draining ? 'draining' : ready ? 'ready' : 'warming';
    els.poolReady.dataset.state = s.draining ? 'draining' : ready ? 'ready' : 'warming';
    els.poolReady.title = s.lastError ? `last error: ${s.lastError}` : '';

    // One square per slot up to maxPoolSize: active, idle, starting, free.
    const max = typeof s.maxPoolSize === 'number' ? s.maxPoolSize : 0;
    if (max > 0 && max <= MAX_SLOTS) {
      const active = Math.max(0, s.active | 0);
      const idle = Math.max(0, s.idle | 0);
      const creating = Math.max(0, s.creating | 0);
      const slots = [];
      for (let i = 0; i < max; i++) {
        const kind = i < active ? 'active' : i < active + idle ? 'idle' : i < active + idle + creating ? 'creating' : 'free';
        slots.push(h('span', { class: `slot ${kind}`, title: kind }));
      }
      els.poolSlots.replaceChildren(...slots);
      els.poolSlots.hidden = false;
    } else {
      els.poolSlots.replaceChildren();
      els.poolSlots.hidden = true;
    }
    const runtime = typeof s.runtime === 'string' ? `${s.runtime} runtime · ` : '';
    els.poolUpdated.textContent = `${runtime}updated ${timeNow()}`;
    els.poolUpdated.classList.remove('stale');
  }

  async function pollPool() {
    try {
      const res = await fetch('/stats/pool', { cache: 'no-store', headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      renderPool(await res.json());
    } catch (err) {
      els.poolUpdated.textContent = `stats unavailable (${err instanceof Error ? err.message : String(err)}) — ${timeNow()}`;
      els.poolUpdated.classList.add('stale');
    } finally {
      setTimeout(pollPool, POOL_POLL_MS);
    }
  }

  // ------------------------------------------------------------------ start

  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    stored = null;
  }
  els.userId.value = stored && USER_ID.test(stored) ? stored : randomUserId();
  setConn('disconnected', 'Not connected');
  renderInflight();
  void pollPool();
})();
