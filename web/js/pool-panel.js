// The pool panel: the public, coarse GET /status of the replica that serves
// this user (behind nginx, ?uid= routes it like the user's sockets), polled.
import { els, h } from './dom.js';
import { timeNow } from './format.js';

const POLL_MS = 2_000;
/** One square per tenth of the replica's sandbox capacity. */
const SLOTS = 10;
const BADGE = { ready: 'ready', busy: 'busy', warming: 'warming', draining: 'draining', unavailable: 'unavailable' };
const WAITING = { none: 'none', few: 'a few', many: 'many' };

function percent(value) {
  return typeof value === 'number' && Number.isFinite(value) ? `${value}%` : '–';
}

function renderSlots(sandboxes) {
  const kinds = [
    ['active', sandboxes.inUse],
    ['idle', sandboxes.warm],
    ['creating', sandboxes.starting],
    ['free', sandboxes.free],
  ];
  const slots = kinds.flatMap(([kind, share]) => Array.from({ length: Math.round((Number(share) || 0) / (100 / SLOTS)) }, () => h('span', { class: `slot ${kind}`, title: kind })));
  els.poolSlots.replaceChildren(...slots.slice(0, SLOTS));
  els.poolSlots.hidden = slots.length === 0;
}

function renderStatus(s) {
  const sandboxes = s.sandboxes && typeof s.sandboxes === 'object' ? s.sandboxes : {};
  els.poolInUse.textContent = percent(sandboxes.inUse);
  els.poolWarm.textContent = percent(sandboxes.warm);
  els.poolStarting.textContent = percent(sandboxes.starting);
  els.poolFree.textContent = percent(sandboxes.free);
  els.poolWaiting.textContent = WAITING[s.waiting] ?? '–';
  els.poolInstant.textContent = sandboxes.warmAvailable === true ? 'yes' : sandboxes.warmAvailable === false ? 'no' : '–';
  const badge = BADGE[s.status] ?? 'unavailable';
  els.poolReady.textContent = badge;
  els.poolReady.dataset.state = badge;
  renderSlots(sandboxes);
  els.poolUpdated.textContent = `updated ${timeNow()}`;
  els.poolUpdated.classList.remove('stale');
}

/** Polls GET /status every 2 s; routingId() is the user id the status should come from (may be empty). */
export function startPoolPanel(routingId) {
  async function poll() {
    try {
      const uid = routingId();
      const res = await fetch(uid ? `/status?${new URLSearchParams({ uid })}` : '/status', { cache: 'no-store', headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      renderStatus(await res.json());
    } catch (err) {
      els.poolUpdated.textContent = `status unavailable (${err instanceof Error ? err.message : String(err)}) — ${timeNow()}`;
      els.poolUpdated.classList.add('stale');
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }
  void poll();
}
