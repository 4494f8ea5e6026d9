// JSON over HTTP to a third party: every call has a timeout, idempotent calls are
// retried with exponential backoff (bounded), and a breaker stops calling a party
// that keeps failing so requests answer 503 fast instead of queueing behind it.
import { EngineError } from '../errors.js';
import { Breaker } from './breaker.js';

export interface ClientOptions { baseUrl: string; apiKey: string; timeoutMs: number; retries: number; backoffMs: number;
  breaker: Breaker }

export interface CallResult<T> { status: number; body: T }

export class RemoteError extends Error {
  constructor(message: string, readonly status: number, readonly body: unknown) { super(message); }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class JsonClient {
  constructor(private readonly o: ClientOptions) {}

  get breakerState() { return this.o.breaker.state; }

  /**
   * 2xx and 4xx are answers (returned); 5xx, timeouts and socket errors are failures,
   * retried only when `idempotent` is true.
   */
  async call<T>(method: string, path: string, body?: unknown,
    opts: { idempotent: boolean; key?: string } = { idempotent: false }): Promise<CallResult<T>> {
    const attempts = opts.idempotent ? this.o.retries + 1 : 1;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await sleep(this.o.backoffMs * 2 ** (i - 1));
      if (!this.o.breaker.admit()) throw this.unavailable('circuit open');
      try {
        const res = await this.once<T>(method, path, body, opts.key);
        this.o.breaker.success();
        return res;
      } catch (err) {
        this.o.breaker.failure();
        last = err;
      }
    }
    throw this.unavailable(last instanceof Error ? last.message : String(last));
  }

  private async once<T>(method: string, path: string, body: unknown, key?: string): Promise<CallResult<T>> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.o.apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (key) headers['idempotency-key'] = key;
    const res = await fetch(`${this.o.baseUrl}${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.o.timeoutMs),
    });
    const text = await res.text();
    const parsed = text ? (JSON.parse(text) as T) : (null as T);
    if (res.status >= 500) throw new RemoteError(`${this.o.breaker.name} answered ${res.status}`, res.status, parsed);
    return { status: res.status, body: parsed };
  }

  private unavailable(why: string): EngineError {
    return new EngineError('dependency_unavailable', `${this.o.breaker.name} is unavailable (${why})`,
      { retryAfterS: 2, details: { dependency: this.o.breaker.name } });
  }
}
