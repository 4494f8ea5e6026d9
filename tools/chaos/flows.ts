// What a well-behaved client does while the engine is hurt: it retries a create with
// the same Idempotency-Key until it gets an answer it can trust (bounded in attempts
// and time), then pays at the gateway like a customer at the checkout page.
import { randomUUID } from 'node:crypto';
import type { Answer, HttpClient } from '../lib/http.js';
import { sleep } from '../lib/wait.js';
import type { Customer } from './fixture.js';
import type { Recorder } from './stats.js';

export interface Line { item_id: string; quantity: number }

/** Answers worth retrying with the same key: no answer, a 5xx, a 429, or "the first try still runs". */
export function retryable(r: Answer): boolean {
  return r.status === 0 || r.status >= 500 || r.status === 429 || (r.status === 409 && r.body?.error?.code === 'idempotency_in_progress');
}

export interface Attempted<T = any> { final: Answer<T>; attempts: number; retried: boolean }

/** Calls until the answer is not retryable, up to `windowMs` (backoff 50 ms x attempt, at most 500 ms). */
export async function withRetries<T = any>(windowMs: number, call: () => Promise<Answer<T>>, onAttempt?: (r: Answer<T>) => void): Promise<Attempted<T>> {
  const deadline = Date.now() + windowMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    const r = await call();
    onAttempt?.(r);
    if (!retryable(r) || Date.now() >= deadline || attempts >= 200) return { final: r, attempts, retried: attempts > 1 };
    await sleep(Math.min(500, 50 * attempts));
  }
}

export interface Placed { customer: Customer; key: string; body: { items: Line[] }; ids: string[] | null; res: Attempted }

export async function placeOrder(api: HttpClient, rec: Recorder, label: string, c: Customer, items: Line[], windowMs: number): Promise<Placed> {
  const key = randomUUID();
  const body = { items };
  const res = await withRetries(windowMs, () => api.call('POST', '/v1/orders', { token: c.token, body, headers: { 'idempotency-key': key } }),
    (r) => rec.record(label, r, r.status === 201 || r.status === 409));
  const ids = res.final.status === 201 ? (res.final.body.orders as { id: string }[]).map((o) => o.id) : null;
  return { customer: c, key, body, ids, res };
}

export interface Paid { orderId: string; paymentId: string; sessionId: string; amount: number }

/** Opens a payment for the order (same key on every retry); null when the order can no longer be paid. */
export async function openPayment(api: HttpClient, rec: Recorder, label: string, c: Customer, orderId: string, windowMs: number): Promise<Paid | null> {
  const key = randomUUID();
  const res = await withRetries(windowMs, () => api.call('POST', `/v1/orders/${orderId}/payments`, { token: c.token, body: { method: 'card' }, headers: { 'idempotency-key': key } }),
    (r) => rec.record(label, r, r.status === 201 || r.status === 200 || r.status === 409));
  const r = res.final;
  if ((r.status !== 201 && r.status !== 200) || !r.body?.gateway_session_id) return null;
  return { orderId, paymentId: r.body.id as string, sessionId: r.body.gateway_session_id as string, amount: r.body.amount_cents as number };
}

/** The customer clicks Pay (or Decline) at the gateway. True when the gateway took it. */
export async function completeAtGateway(gateway: HttpClient, sessionId: string, outcome: 'succeeded' | 'declined'): Promise<boolean> {
  for (let i = 0; i < 5; i++) {
    const r = await gateway.call('POST', `/v1/sessions/${sessionId}/complete`, { body: { outcome } });
    if (r.status === 200) return true;
    if (r.status !== 0 && r.status < 500) return false;
    await sleep(100);
  }
  return false;
}

export async function gatewaySession(gateway: HttpClient, sessionId: string): Promise<{ status: string; escrow: string } | null> {
  const r = await gateway.call('GET', `/v1/sessions/${sessionId}`, { headers: { authorization: 'Bearer gw_test_key' } });
  return r.status === 200 ? (r.body as { status: string; escrow: string }) : null;
}

export async function setKnobs(gateway: HttpClient, knobs: Record<string, unknown>): Promise<void> {
  const r = await gateway.call('PUT', '/_sim/knobs', { body: knobs });
  if (r.status !== 200) throw new Error(`gateway knobs refused: ${r.status} ${JSON.stringify(r.body)}`);
}

export async function resetKnobs(gateway: HttpClient): Promise<void> { await gateway.call('POST', '/_sim/reset'); }

/** One random line per wanted count, distinct items. */
export function randomLines(items: { id: string }[], count: number, quantityMax = 1): Line[] {
  const picked = new Set<string>();
  while (picked.size < Math.min(count, items.length)) picked.add(items[Math.floor(Math.random() * items.length)]!.id);
  return [...picked].map((item_id) => ({ item_id, quantity: 1 + Math.floor(Math.random() * quantityMax) }));
}
