// The harness's plain client for setup, probes and checks (not for load: that is
// autocannon). Every call has a timeout; helpers run bounded-concurrency batches.

export interface Res<T = any> { status: number; body: T }

export class ApiError extends Error {
  constructor(readonly what: string, readonly res: Res) {
    super(`${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  }
}

export interface CallOpts { token?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number }

const NETWORK_ATTEMPTS = 3;

/**
 * One request. A network failure (a keep-alive socket the server closed, a worker
 * respawning) is retried twice; a POST retried that way may have been applied once
 * already, which the fixture tolerates (an extra item; email_taken means registered).
 */
export async function call<T = any>(base: string, method: string, path: string, opts: CallOpts = {}): Promise<Res<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = `${method} ${base}${path}: ${(err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`;
      if (attempt >= NETWORK_ATTEMPTS || (err as Error).name === 'TimeoutError') throw new Error(why);
      await sleep(200 * attempt);
      continue;
    }
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: res.status, body: parsed as T };
  }
}

/** Expects one status; anything else throws with the answer in the message. */
export async function expect<T = any>(base: string, what: string, status: number, method: string, path: string, opts: CallOpts = {}): Promise<T> {
  const res = await call<T>(base, method, path, opts);
  if (res.status !== status) throw new ApiError(what, res);
  return res.body;
}

/** Runs fn over inputs with at most `concurrency` in flight; results keep input order. */
export async function pool<I, O>(inputs: readonly I[], concurrency: number, fn: (input: I, index: number) => Promise<O>): Promise<O[]> {
  const out = new Array<O>(inputs.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(concurrency, inputs.length)) }, async () => {
    while (next < inputs.length) {
      const i = next++;
      out[i] = await fn(inputs[i]!, i);
    }
  });
  await Promise.all(lanes);
  return out;
}

/** Polls url until ok(status) or the deadline; throws naming the last answer. */
export async function waitFor(url: string, timeoutMs: number, ok = (s: number) => s === 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (ok(res.status)) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = String((err as Error).cause ?? err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
