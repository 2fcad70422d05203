/**
 * Error codes on the wire (../shared/protocol.md), plus sandpool's extensions:
 * NOT_FOUND (HTTP), SHUTTING_DOWN (the replica is stopping: send again) and
 * CANCELLED (a request ended because its user left: every tab disconnected),
 * FORBIDDEN (HTTP 403: a request addressed to a host not in ALLOWED_HOSTS).
 */
export const ERROR_CODES = [
  'UNAUTHORIZED',
  'BAD_REQUEST',
  'PAYLOAD_TOO_LARGE',
  'TOO_MANY_REQUESTS',
  'QUOTA_EXCEEDED',
  'UNKNOWN_CALL',
  'POOL_EXHAUSTED',
  'SANDBOX_FAILED',
  'LLM_FAILED',
  'NOT_FOUND',
  'SHUTTING_DOWN',
  'CANCELLED',
  'FORBIDDEN',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** The sliding windows a plan limits tool calls over (docs/plans-and-quotas.md). */
export const QUOTA_WINDOWS = ['hour', 'day', 'month'] as const;
export type QuotaWindow = (typeof QUOTA_WINDOWS)[number];

/**
 * What a QUOTA_EXCEEDED refusal adds to its body (the contract's "Plans and
 * quotas"): the user's plan, the full window, its limit, and when one more
 * call will be admitted.
 */
export interface QuotaRefusal {
  plan: string;
  window: QuotaWindow;
  limit: number;
  retryAfterSeconds: number;
}

/** Fields an error may carry to the client besides its code and message. */
export type ErrorFields = Partial<QuotaRefusal>;

/** An error as clients receive it: in acks, `request:error`, `connect_error.data` and HTTP bodies. */
export interface ErrorBody extends ErrorFields {
  code: ErrorCode;
  /** What happened and what to do; never internals. */
  message: string;
  /** Extension: quote it to an operator; the server's log has the details under it. */
  logId?: string;
}
