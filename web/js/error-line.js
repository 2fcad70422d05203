// The error line under the conversation: the latest coded error, until dismissed.
import { els } from './dom.js';
import { normalizeError } from './format.js';

export function showError(error, context) {
  const { code, message } = normalizeError(error);
  els.errorCode.textContent = code;
  els.errorMessage.textContent = context ? `${context}: ${message}` : message;
  els.errorLine.hidden = false;
}

export function clearError() {
  els.errorLine.hidden = true;
  els.errorCode.textContent = '';
  els.errorMessage.textContent = '';
}

export function initErrorLine() {
  els.errorDismiss.addEventListener('click', clearError);
}
