// DOM helpers. Everything the page shows is built from nodes and textContent:
// server data never goes through innerHTML.

/** The element with this id; a missing one is a bug in index.html, so it throws. */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id}`);
  return node;
}

/** Small DOM builder: classes, data-* and plain attributes; children are nodes or text. */
export function h(tag, props, ...children) {
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

/** The page's fixed elements (index.html), looked up once. */
export const els = {
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
  poolInUse: byId('pool-in-use'),
  poolWarm: byId('pool-warm'),
  poolStarting: byId('pool-starting'),
  poolFree: byId('pool-free'),
  poolWaiting: byId('pool-waiting'),
  poolInstant: byId('pool-instant'),
  poolUpdated: byId('pool-updated'),
  sessionReplica: byId('session-replica'),
  sessionModel: byId('session-model'),
  sessionId: byId('session-id'),
  sessionLimits: byId('session-limits'),
  toolList: byId('tool-list'),
  mcpUrl: byId('mcp-url'),
  mcpHeader: byId('mcp-header'),
  mcpConfig: byId('mcp-config'),
  examples: byId('examples'),
};

/** A coded error as a block: `<code> <message>` (on a turn or a tool card). */
export function errorBox({ code, message }) {
  return h('div', { class: 'request-error', role: 'alert', dataset: { code } }, h('span', { class: 'error-code', text: code }), h('span', { class: 'error-message', text: message }));
}

/** The element that scrolls the conversation: wide screens scroll it by itself, narrow ones scroll the page. */
function scroller() {
  return getComputedStyle(els.conversation).overflowY === 'auto' ? els.conversation : document.scrollingElement || document.documentElement;
}

/** Runs fn (which adds content) and keeps the newest content in view, unless the reader scrolled up. */
export function withScroll(fn) {
  const box = scroller();
  const stick = box.scrollHeight - (box.scrollTop + box.clientHeight) < 160;
  const result = fn();
  if (stick) box.scrollTop = box.scrollHeight;
  return result;
}
