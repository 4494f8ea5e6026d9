// One closed registry of error codes: each fixes its HTTP status and public type.
// Handlers never pick status numbers; they throw EngineError(code).

export type ErrorType =
  | 'invalid_request' | 'authentication' | 'forbidden' | 'not_found' | 'conflict'
  | 'sold_out' | 'rate_limited' | 'unavailable' | 'internal';

interface ErrorSpec { readonly status: number; readonly type: ErrorType; readonly message: string }

export const ERRORS = {
  invalid_json: { status: 400, type: 'invalid_request', message: 'Body is not valid JSON' },
  validation_failed: { status: 400, type: 'invalid_request', message: 'Request failed validation' },
  unknown_field: { status: 400, type: 'invalid_request', message: 'Unknown field' },
  invalid_id: { status: 404, type: 'not_found', message: 'No such resource' },
  invalid_cursor: { status: 400, type: 'invalid_request', message: 'Cursor is malformed' },
  body_too_large: { status: 413, type: 'invalid_request', message: 'Body too large' },
  request_timeout: { status: 408, type: 'invalid_request', message: 'Request body not received in time' },
  // Never sent (the client is gone): it ends a request whose client hung up, and metrics count it as 499.
  client_closed: { status: 499, type: 'invalid_request', message: 'The client closed the connection' },
  unsupported_media_type: { status: 415, type: 'invalid_request', message: 'Content-Type must be application/json' },
  idempotency_mismatch: { status: 422, type: 'invalid_request',
    message: 'Idempotency-Key was used with a different request' },
  not_found: { status: 404, type: 'not_found', message: 'No such resource' },
  route_not_found: { status: 404, type: 'not_found', message: 'No such route' },
  unauthenticated: { status: 401, type: 'authentication', message: 'Missing or invalid bearer token' },
  invalid_signature: { status: 401, type: 'authentication', message: 'Webhook signature is missing, stale or wrong' },
  invalid_credentials: { status: 401, type: 'authentication', message: 'Email or password is wrong' },
  forbidden: { status: 403, type: 'forbidden', message: 'Not allowed' },
  email_taken: { status: 409, type: 'conflict', message: 'Email is already registered' },
  conflict: { status: 409, type: 'conflict', message: 'Conflicting state' },
  stock_floor: { status: 409, type: 'conflict', message: 'Stock cannot go below what is held or sold' },
  stock_ceiling: { status: 409, type: 'conflict', message: 'Stock cannot exceed the largest countable amount' },
  invalid_state: { status: 409, type: 'conflict', message: 'Not allowed in the current state' },
  idempotency_in_progress: { status: 409, type: 'conflict',
    message: 'A request with this Idempotency-Key is in progress' },
  sold_out: { status: 409, type: 'sold_out', message: 'Sold out' },
  item_unavailable: { status: 409, type: 'conflict', message: 'Item is not for sale' },
  purchase_limit: { status: 409, type: 'conflict', message: 'Per-customer purchase limit reached' },
  cart_full: { status: 409, type: 'conflict', message: 'A cart holds at most 50 lines' },
  cart_quantity_limit: { status: 409, type: 'conflict', message: 'A cart line holds at most 1000 units' },
  cart_empty: { status: 409, type: 'conflict', message: 'The cart is empty' },
  feature_disabled: { status: 403, type: 'forbidden', message: 'This feature is switched off' },
  wrong_password: { status: 403, type: 'forbidden', message: 'The current password is wrong' },
  mixed_currency: { status: 400, type: 'invalid_request', message: 'Items of one shard must share a currency' },
  rate_limited: { status: 429, type: 'rate_limited', message: 'Too many requests' },
  shard_unavailable: { status: 503, type: 'unavailable', message: 'A database shard is unavailable' },
  dependency_unavailable: { status: 503, type: 'unavailable', message: 'A dependency is unavailable' },
  overloaded: { status: 503, type: 'unavailable', message: 'Server is overloaded' },
  internal: { status: 500, type: 'internal', message: 'Internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class EngineError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterS: number | undefined;
  /** The answer a request key got before, given again (an Idempotency-Key replay). */
  replayed = false;

  constructor(code: ErrorCode, message?: string, opts: { details?: Record<string,
    unknown>; retryAfterS?: number; cause?: unknown } = {}) {
    super(message ?? ERRORS[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.details = opts.details;
    this.retryAfterS = opts.retryAfterS;
  }

  get status(): number { return ERRORS[this.code].status; }
  get type(): ErrorType { return ERRORS[this.code].type; }
}

/** An assertion failure is a bug: crash loudly so the primary respawns the worker. */
export function invariant(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${what}`);
}
