import { randomBytes } from 'node:crypto';
import type { Logger } from './logger.js';
import type { ErrorBody, ErrorCode, ErrorFields, QuotaRefusal } from './protocol/errors.js';

export type { ErrorCode, ErrorFields };

/**
 * The one error base of sandpool. Everything thrown across a module boundary
 * that a client may see is (or is wrapped into) a SandpoolError, so the HTTP
 * and Socket.IO layers map it to `{ code, message }` without guessing, as
 * Hono's HTTPException carries its status.
 */
export class SandpoolError extends Error {
  readonly code: ErrorCode;
  /**
   * What happened inside (an engine's reason, a sandbox's stderr, a library's
   * message): written to the log with a log id, never sent to a client. The
   * message is what the client reads: what happened and what to do.
   */
  readonly detail: string | undefined;
  /** What the client gets besides code and message (a quota refusal's plan, window, limit, retryAfterSeconds). */
  readonly fields: ErrorFields | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; detail?: string; fields?: ErrorFields }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SandpoolError';
    this.code = code;
    this.detail = options?.detail;
    this.fields = options?.fields;
  }
}

/** A full quota window: QUOTA_EXCEEDED with what the client needs to wait and retry. */
export function quotaExceeded(refusal: QuotaRefusal): SandpoolError {
  const { plan, window, limit, retryAfterSeconds } = refusal;
  return new SandpoolError(
    'QUOTA_EXCEEDED',
    `your ${plan} plan allows ${limit} tool calls per ${window}, and you have used them; one more is allowed in ${retryAfterSeconds} s`,
    { fields: { plan, window, limit, retryAfterSeconds } },
  );
}

/** An error body received from another replica, back as the SandpoolError it was (fields included). */
export function fromErrorBody(body: ErrorBody): SandpoolError {
  const { code, message, logId: _logId, ...fields } = body;
  void _logId;
  return new SandpoolError(code, message, Object.keys(fields).length > 0 ? { fields } : undefined);
}

/**
 * A sandbox that is gone (its process exited, its MCP connection closed):
 * whoever holds it must stop using it. Typed, so holders never match messages.
 */
export class SandboxGoneError extends SandpoolError {
  constructor(message: string, options?: { cause?: unknown; detail?: string }) {
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

/**
 * Why an aborted signal ended its work, as the CancelledError to throw: the
 * signal's own reason (sandpool aborts only with a CancelledError), or
 * `user-left` for a signal someone else aborted. The one place that decides it.
 */
export function cancellationOf(signal: AbortSignal): CancelledError {
  return signal.reason instanceof CancelledError ? signal.reason : new CancelledError('user-left');
}

/** Wraps anything thrown into a SandpoolError; unknown faults become INTERNAL, their text kept for the log only. */
export function toSandpoolError(err: unknown): SandpoolError {
  if (err instanceof SandpoolError) return err;
  if (err instanceof CancelledError) return new SandpoolError(err.reason === 'shutdown' ? 'SHUTTING_DOWN' : 'CANCELLED', err.message, { cause: err });
  return new SandpoolError('INTERNAL', 'something went wrong on our side; try again', { cause: err, detail: errorMessage(err) || 'unknown error' });
}

/**
 * The wire form of an error, without logging: for errors that carry nothing
 * internal (refusals of bad input, limits) and for passing a body on as is.
 */
export function toErrorBody(err: unknown): ErrorBody {
  const e = toSandpoolError(err);
  return { code: e.code, message: e.message, ...e.fields };
}

/**
 * The wire form of an error for a client (acks, request:error,
 * connect_error.data, HTTP and JSON-RPC bodies). What happened inside goes to
 * the log under a log id; the client gets the message and the log id to
 * quote, never the internals.
 */
export function toClientError(err: unknown, logger: Logger): ErrorBody {
  const e = toSandpoolError(err);
  if (e.detail === undefined && e.code !== 'INTERNAL') return { code: e.code, message: e.message, ...e.fields };
  const logId = randomBytes(4).toString('hex');
  const cause = e.cause instanceof Error && e.cause !== e ? e.cause : undefined;
  const entry = { logId, code: e.code, err: e.message, detail: e.detail, cause: cause ? errorMessage(cause) : undefined, stack: cause?.stack };
  if (e.code === 'INTERNAL') logger.error(entry, 'request failed');
  else logger.warn(entry, 'request failed');
  return { code: e.code, message: `${e.message} (log id ${logId})`, logId, ...e.fields };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
