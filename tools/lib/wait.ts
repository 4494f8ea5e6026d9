// Waiting, bounded: every loop here has a deadline, so a tool, the bench or a test that
// waits for something that never comes fails with what it saw last instead of hanging.
import { request } from './http.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Calls fn every `everyMs` until it returns a truthy value or `timeoutMs` passed;
 * returns the last value (falsy when the time ran out: the caller judges it).
 */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await fn();
  while (!last && Date.now() < deadline) {
    await sleep(everyMs);
    last = await fn();
  }
  return last;
}

/** Polls a URL until ok(status) or the deadline; throws naming the last answer. */
export async function waitForUrl(url: string, timeoutMs: number, ok = (s: number) => s === 200, everyMs = 100): Promise<void> {
  const { origin, pathname, search } = new URL(url);
  let last = '';
  const ready = await eventually(async () => {
    const a = await request(origin, 'GET', `${pathname}${search}`, { timeoutMs: Math.min(2000, timeoutMs) });
    last = a.status === 0 ? String(a.error) : `HTTP ${a.status}`;
    return a.status !== 0 && ok(a.status);
  }, timeoutMs, everyMs);
  if (!ready) throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}
