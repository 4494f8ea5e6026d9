// Helpers of the storefront and payment tests: buying, paying an order through the
// gateway simulator, reading an order's ledger, and requests on fresh connections (so SO_REUSEPORT
// spreads them over every worker instead of one kept-alive socket).
import { createHmac } from 'node:crypto';
import { request } from '../../tools/lib/http.js';
import { admin, api, customer, eventually, item, localId, onShard, order, shardOf, sim, uniq, world, type Res } from './api.js';

export async function orderOf(token: string, id: string, base?: string): Promise<any> {
  return (await api('GET', `/v1/orders/${id}`, { token, base })).body;
}

export async function statusBecomes(token: string, id: string, status: string, base?: string): Promise<any> {
  return eventually(async () => {
    const o = await orderOf(token, id, base);
    return o.status === status ? o : null;
  });
}

/** Opens a payment (201 or throws) with a fresh Idempotency-Key. */
export async function pay(token: string, orderId: string, method: 'card' | 'qr' = 'card', base?: string): Promise<any> {
  const res = await api('POST', `/v1/orders/${orderId}/payments`, { token, base, body: { method }, headers: { 'idempotency-key': uniq('pay') } });
  if (res.status !== 201) throw new Error(`payment failed ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** The buyer's answer at the gateway simulator. */
export function complete(sessionId: string, outcome: 'succeeded' | 'declined'): Promise<Res> {
  return sim(world.gateway, 'POST', `/v1/sessions/${sessionId}/complete`, { outcome });
}

/** Opens a card payment and pays it at the simulator; resolves once the order left awaiting_payment. */
export async function payOrder(token: string, orderId: string, base?: string): Promise<any> {
  const p = await pay(token, orderId, 'card', base);
  const done = await complete(p.gateway_session_id, 'succeeded');
  if (done.status >= 300) throw new Error(`gateway complete failed ${done.status} ${JSON.stringify(done.body)}`);
  return eventually(async () => {
    const o = await orderOf(token, orderId, base);
    return o.status !== 'awaiting_payment' ? o : null;
  });
}

export async function ledgerOf(orderId: string): Promise<{ account: string; amount: number; kind: string }[]> {
  return onShard(shardOf(orderId), 'SELECT account, amount_cents::int AS amount, kind FROM ledger_entries WHERE order_id = $1 ORDER BY id', [localId(orderId)]);
}

export async function ledgerBalanced(t: Tap.Test): Promise<void> {
  const res = await api('GET', '/v1/admin/ledger', { token: await admin() });
  t.equal(res.body.balanced, true, 'ledger sums to zero and no finished order keeps escrow');
}

/** A new item (10 in stock, 12.50 unless told), a new customer, and their order of it. */
export async function buy(fields: Record<string, unknown> = {}, quantity = 1): Promise<{ it: any; c: Awaited<ReturnType<typeof customer>>; o: any }> {
  const it = await item({ stock: 10, price_cents: 1250, ...fields });
  const c = await customer();
  const o = (await order(c.token, [{ item_id: it.id, quantity }])).body.orders[0];
  return { it, c, o };
}

/** A Gateway-Signature header as the gateway makes it (secret and time overridable, to forge). */
export function sign(body: string, t = Math.floor(Date.now() / 1000), secret = 'whsec_test'): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** Posts a gateway event to the engine's webhook, signed unless told otherwise. */
export async function postEvent(ev: unknown, signature?: string): Promise<Res> {
  const raw = JSON.stringify(ev);
  return api('POST', '/v1/webhooks/gateway', { raw, headers: { 'content-type': 'application/json', 'gateway-signature': signature ?? sign(raw) } });
}

export interface Fresh extends Res { worker: string }

/** One request on a new TCP connection; `worker` is the answering process (x-request-id prefix). */
export async function fresh(method: string, url: string, token?: string, body?: unknown): Promise<Fresh> {
  const { origin, pathname, search } = new URL(url);
  const a = await request(origin, method, `${pathname}${search}`, { token, body, newConnection: true, timeoutMs: 60_000 });
  if (a.status === 0) throw new Error(`${method} ${url}: no answer (${a.error})`);
  return { status: a.status, body: a.body, headers: a.headers, worker: (a.headers.get('x-request-id') ?? '').split('-')[0]! };
}
