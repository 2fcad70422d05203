// The session panel: replica, agent, session id, limits and the sandbox's tools, from the `session` event.
import { els, h } from './dom.js';
import { shortId } from './format.js';

function limitsText(limits) {
  const parts = [];
  if (limits.maxRequestsPerUser) parts.push(`${limits.maxRequestsPerUser} requests in flight`);
  if (limits.toolApprovalTimeoutMs) parts.push(`${Math.round(limits.toolApprovalTimeoutMs / 1000)} s to approve`);
  if (limits.maxMessageBytes) parts.push(`${limits.maxMessageBytes.toLocaleString()} bytes a message`);
  return parts.join('\n') || '–';
}

export function renderSession(s) {
  els.sessionReplica.textContent = s.replica ?? '–';
  els.sessionModel.textContent = s.provider ? `${s.provider} · ${s.model ?? ''}` : '–';
  els.sessionId.textContent = shortId(s.sessionId) || '–';
  els.sessionId.title = s.sessionId ?? '';
  els.sessionLimits.textContent = limitsText(s.limits || {});
  const tools = Array.isArray(s.tools) ? s.tools : [];
  els.toolList.replaceChildren(
    ...(tools.length > 0
      ? tools.map((t) => h('li', { class: 'chip', text: String(t) }))
      : [h('li', { class: 'muted small', text: 'not reported yet (known once a sandbox has started)' })]),
  );
}
