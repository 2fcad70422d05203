import { SandpoolError } from '../../errors.js';

/**
 * Builds a provider's LLM_FAILED errors. The client reads the kind of failure
 * ("HTTP 429", "stream stalled", "request aborted"): what comes after the
 * first ": " (the provider's own words, which may name accounts or quotas)
 * goes to the log only. Neither ever carries the API key.
 */
export function failureFactory(provider: string, apiKey: string): (message: string, cause?: unknown) => SandpoolError {
  return (message, cause) => {
    const text = redact(message, apiKey);
    const cut = text.indexOf(': ');
    const kind = cut === -1 ? text : text.slice(0, cut);
    return new SandpoolError('LLM_FAILED', `the model (${provider}) failed: ${kind}; try again`, { cause, detail: `${provider}: ${text}` });
  };
}

/** Belt and braces: an SDK or proxy error text must never carry the key into logs or clients. */
export function redact(message: string, apiKey: string): string {
  return apiKey.length >= 8 ? message.split(apiKey).join('[redacted]') : message;
}

/**
 * The SDKs' timeouts stop at the response headers; a stream that then goes
 * quiet would hang the agent forever. `arm()` on every sign of life; silence
 * longer than timeoutMs calls `abort` and marks the watchdog stalled.
 */
export function createStallWatchdog(timeoutMs: number): { arm(abort: () => void): void; clear(): void; readonly stalled: boolean } {
  let timer: NodeJS.Timeout | undefined;
  let stalled = false;
  return {
    arm(abort) {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        abort();
      }, timeoutMs);
    },
    clear() {
      clearTimeout(timer);
    },
    get stalled() {
      return stalled;
    },
  };
}
