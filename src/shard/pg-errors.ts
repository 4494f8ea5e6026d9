// SQLSTATE -> EngineError, in one place. Codes, never message text.
import { EngineError } from '../errors.js';

export interface PgLikeError { code?: string; severity?: string; constraint?: string }

/** Errors the server raised carry a severity; anything else came from the socket. */
export function isServerError(err: unknown): err is PgLikeError {
  return typeof err === 'object' && err !== null && typeof (err as PgLikeError).severity === 'string';
}

export function isRetryable(err: unknown): boolean {
  const code = (err as PgLikeError | null)?.code;
  return code === '40001' || code === '40P01';
}

/**
 * What a failover looks like from a connection that reached a server: read-only
 * (25006, a standby or a demoted primary), shut down (57P01-57P03) or a connection
 * exception (08). The connection is dropped and the shard re-resolves its primary.
 */
export function isFailoverCode(err: unknown): boolean {
  if (!isServerError(err)) return false;
  const code = err.code ?? '';
  return code === '25006' || code === '57P01' || code === '57P02' || code === '57P03' || code.startsWith('08');
}

export function toEngineError(err: unknown, shard: number): EngineError {
  if (err instanceof EngineError) return err;
  if (!isServerError(err)) {
    return new EngineError('shard_unavailable', `Shard ${shard} is unavailable`,
      { retryAfterS: 1, cause: err, details: { shard } });
  }
  const code = err.code ?? '';
  if (code === '23505') return new EngineError('conflict', 'Duplicate value', { cause: err });
  if (code === '57014' || code === '55P03') {
    return new EngineError('overloaded', 'The database did not answer in time',
      { retryAfterS: 1, cause: err, details: { shard } });
  }
  if (isRetryable(err)) return new EngineError('conflict', 'Concurrent update, retry', { retryAfterS: 1, cause: err });
  if (isFailoverCode(err) || code === '53300') {
    return new EngineError('shard_unavailable', `Shard ${shard} is unavailable`,
      { retryAfterS: 1, cause: err, details: { shard } });
  }
  return new EngineError('internal', undefined, { cause: err });
}
