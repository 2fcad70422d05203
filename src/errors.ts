/** Error codes of the wire contract (../shared/protocol.md), plus this replica's own. */
export const ERROR_CODES = [
  'UNAUTHORIZED',
  'BAD_REQUEST',
  'PAYLOAD_TOO_LARGE',
  'TOO_MANY_REQUESTS',
  'UNKNOWN_CALL',
  'POOL_EXHAUSTED',
  'SANDBOX_FAILED',
  'LLM_FAILED',
  'NOT_FOUND',
  'SHUTTING_DOWN',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The one error base of sandpool. Everything thrown across a module boundary
 * that a client may see is (or is wrapped into) a SandpoolError, so the HTTP
 * and Socket.IO layers can map it to `{ code, message }` without guessing.
 */
export class SandpoolError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SandpoolError';
    this.code = code;
    this.details = options?.details;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Wraps anything thrown into a SandpoolError; unknown faults become INTERNAL. */
export function toSandpoolError(err: unknown): SandpoolError {
  if (err instanceof SandpoolError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SandpoolError('INTERNAL', message || 'internal error', { cause: err });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
