// Everything that goes back over the wire: status lines, the error shape, and the
// one place an error of any kind becomes an HTTP answer.
import { EngineError, type ErrorCode } from '../errors.js';
import { log } from '../log.js';
import type { HttpResponse } from './uws.js';

export interface Reply {
  status: number; body?: unknown; headers?: Record<string, string>;
  /** Close the connection after this answer (a body left unread must not be parsed as the next request). */
  close?: boolean;
  /** The stored answer of an earlier request with the same Idempotency-Key (sent as `Idempotent-Replayed: true`). */
  replayed?: boolean;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 204: 'No Content', 303: 'See Other', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 429: 'Too Many Requests', 500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function statusLine(status: number): string { return `${status} ${STATUS_TEXT[status] ?? ''}`.trim(); }

/** Refusals that stop reading a body half-way: the rest of it is still on the wire. */
const BODY_LEFT_UNREAD = new Set<ErrorCode>(['body_too_large', 'request_timeout']);

/** The error shape every refusal has on the wire (and in a stored Idempotency-Key answer). */
export function errorBody(e: EngineError): { error: Record<string, unknown> } {
  return { error: { type: e.type, code: e.code, message: e.message, ...e.details } };
}

export function errorReply(err: unknown, requestId: string): Reply {
  if (!(err instanceof EngineError)) {
    log.error('unhandled error', { request_id: requestId, err });
    err = new EngineError('internal');
  }
  const e = err as EngineError;
  if (e.status >= 500 && e.code !== 'shard_unavailable' && e.code !== 'overloaded') {
    log.error('request failed', { request_id: requestId, code: e.code, err: e.cause ?? e });
  }
  const headers: Record<string, string> = {};
  if (e.retryAfterS !== undefined) headers['retry-after'] = String(e.retryAfterS);
  const close = BODY_LEFT_UNREAD.has(e.code);
  return { status: e.status, headers, close, replayed: e.replayed, body: errorBody(e) };
}

/**
 * How one worker writes its answers: the request ids it makes, and whether an answer
 * closes its connection. Once the worker drains, every answer does (`Connection: close`):
 * keep-alive clients reconnect to a live worker instead of feeding one about to exit.
 * The worker builds one and hands it to everything that answers.
 */
export class Replies {
  private closing = false;
  private seq = 0;
  private readonly tag = process.pid.toString(36);

  nextRequestId(): string { return `${this.tag}-${(++this.seq).toString(36)}`; }

  /** From now on every answer closes its connection (the worker drains). */
  closeConnections(): void { this.closing = true; }

  /** Writes a reply in one corked batch. Never called after the client aborted. */
  send(res: HttpResponse, requestId: string, reply: Reply): void {
    write(res, requestId, reply, this.closing || reply.close === true);
  }
}

function write(res: HttpResponse, requestId: string, reply: Reply, close: boolean): void {
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    res.writeHeader('x-request-id', requestId);
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
    if (reply.replayed) res.writeHeader('idempotent-replayed', 'true');
    if (reply.status === 204) {
      // No argument: a 204 then carries no Content-Length. An explicit `undefined` makes
      // uWS write `Content-Length: 9223372036854775808`, and keep-alive clients hang on it.
      if (close) res.endWithoutBody(0, true);
      else res.endWithoutBody();
      return;
    }
    if (reply.body === undefined) {
      res.end(undefined, close);
      return;
    }
    if (typeof reply.body === 'string') {
      if (!reply.headers?.['content-type']) res.writeHeader('content-type', 'text/plain; charset=utf-8');
      res.end(reply.body, close);
      return;
    }
    res.writeHeader('content-type', 'application/json');
    res.end(JSON.stringify(reply.body), close);
  });
}
