// Pure formatting helpers (no DOM, no state).

/** `{ code, message }` from whatever an ack or event carried as its error. */
export function normalizeError(error, fallbackCode = 'INTERNAL') {
  if (error && typeof error === 'object') {
    const code = typeof error.code === 'string' ? error.code : fallbackCode;
    const message = typeof error.message === 'string' ? error.message : JSON.stringify(error);
    return { code, message };
  }
  return { code: fallbackCode, message: String(error) };
}

export function formatMs(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function shortId(id) {
  return typeof id === 'string' ? id.slice(0, 8) : '';
}

export function timeNow() {
  return new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function prettyJson(value) {
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}
