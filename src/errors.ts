import type { ErrorBody, ErrorCode } from './protocol/errors.js';

export type { ErrorCode };

/**
 * The one error base of sandpool. Everything thrown across a module boundary
 * that a client may see is (or is wrapped into) a SandpoolError, so the HTTP
 * and Socket.IO layers map it to `{ code, message }` without guessing, as
 * Hono's HTTPException carries its status.
 */
export class SandpoolError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SandpoolError';
    this.code = code;
  }
}

/**
 * A sandbox that is gone (its process exited, its MCP connection closed):
 * whoever holds it must stop using it. Typed, so holders never match messages.
 */
export class SandboxGoneError extends SandpoolError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SANDBOX_FAILED', message, options);
    this.name = 'SandboxGoneError';
  }
}

/** Why a request was cancelled: the replica stops, or its user left (every tab disconnected). */
export type CancelReason = 'shutdown' | 'user-left';

/**
 * Internal control flow, not a fault: an AbortSignal's reason when a request
 * is cancelled. It is never logged as an error; at the edge it becomes
 * SHUTTING_DOWN or CANCELLED (toErrorBody).
 */
export class CancelledError extends Error {
  constructor(readonly reason: CancelReason) {
    super(reason === 'shutdown' ? 'this replica is shutting down; please send the message again' : 'the request was cancelled because you left');
    this.name = 'CancelledError';
  }
}

/** Wraps anything thrown into a SandpoolError; unknown faults become INTERNAL. */
export function toSandpoolError(err: unknown): SandpoolError {
  if (err instanceof SandpoolError) return err;
  if (err instanceof CancelledError) return new SandpoolError(err.reason === 'shutdown' ? 'SHUTTING_DOWN' : 'CANCELLED', err.message, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new SandpoolError('INTERNAL', message || 'internal error', { cause: err });
}

/** The wire form of any error (acks, request:error, connect_error.data, HTTP bodies). */
export function toErrorBody(err: unknown): ErrorBody {
  const e = toSandpoolError(err);
  return { code: e.code, message: e.message };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
