// The sign-in form: the user id (remembered in localStorage, a random one the
// first time) and an optional token.
import { els } from './dom.js';
import { showError } from './error-line.js';

const USER_ID = /^[A-Za-z0-9_.@:+-]{1,128}$/;
const STORAGE_KEY = 'sandpool.userId';

function randomUserId() {
  const bytes = new Uint8Array(3);
  crypto.getRandomValues(bytes);
  return `user-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Fills the user id field: the remembered one, else a random one. */
export function prefillUserId() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    stored = null;
  }
  els.userId.value = stored && USER_ID.test(stored) ? stored : randomUserId();
}

/**
 * The form's { userId, token }, the user id remembered; null (with the reason
 * in the error line) when there is nothing to sign in with. The server judges
 * the id itself: a malformed one is refused there, with its code.
 */
export function readSignin() {
  const userId = els.userId.value.trim();
  const token = els.token.value.trim();
  if (!token && userId === '') {
    showError({ code: 'BAD_REQUEST', message: 'enter a user id (or a token)' }, 'sign-in');
    els.userId.focus();
    return null;
  }
  try {
    localStorage.setItem(STORAGE_KEY, userId);
  } catch {
    // storage may be unavailable (private mode); the page works without it
  }
  return { userId, token };
}
