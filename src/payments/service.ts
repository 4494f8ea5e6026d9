// Payments: one live payment per order, created at the gateway outside any
// transaction; outcomes arrive as signed webhooks (or by polling) and are applied
// once per event id, by conditional updates; money moves through the ledger.
import type { Principal } from '../accounts/service.js';
import type { Deps } from '../deps.js';
import { EngineError } from '../errors.js';
import { enabled } from '../flags/index.js';
import { log } from '../log.js';
import { paymentsByOutcome, refundsByOutcome } from '../metrics/index.js';
import { getOrderRow, onCancelPaid } from '../orders/service.js';
import { announce, type StockChange } from '../orders/holds.js';
import { decodeRow, encodeRow } from '../router/ids.js';
import { GatewayRefused, type GatewaySession } from './gateway.js';
import { postTransfer, refundLegs } from './ledger.js';
import { toPayment, type Payment } from './model.js';
import { SQL } from './sql.js';

export type Method = 'card' | 'qr';

export async function createPayment(deps: Deps, p: Principal, orderId: string, method: Method): Promise<{ created: boolean; payment: Payment }> {
  const { shard, local } = decodeRow('order', orderId, deps.shards.count);
  if (method === 'qr' && !enabled('qr_payments')) {
    throw new EngineError('feature_disabled', 'QR payments are switched off; pay by card', { details: { flag: 'qr_payments' } });
  }
  const s = deps.shards.get(shard);
  // The common case in one statement: the buyer's own order, awaiting payment, gets one.
  const ins = (await s.query(SQL.insertPayment, [local, method, p.uuid])).rows[0];
  if (ins) return { created: true, payment: await openSession(deps, shard, ins) };
  const { row } = await getOrderRow(deps, p, orderId);
  if (row.customer_id !== p.uuid) throw new EngineError('not_found', 'No such order');
  const pending = (await s.query(SQL.pendingForOrder, [local])).rows[0];
  if (pending?.gateway_session_id) return { created: false, payment: toPayment(shard, pending) };
  if (!pending) throw new EngineError('invalid_state', `Order is ${row.status as string} and cannot be paid`, { details: { status: row.status } });
  return { created: false, payment: await openSession(deps, shard, pending) };
}

/** The network call happens after the payment row committed; its outcome is recorded after. */
async function openSession(deps: Deps, shard: number, row: Record<string, unknown>): Promise<Payment> {
  const id = encodeRow('payment', shard, row.id as number);
  const s = deps.shards.get(shard);
  let session: GatewaySession;
  try {
    session = await deps.gateway.createSession({
      merchant_ref: id, amount_cents: row.amount_cents as number, currency: row.currency as string, method: row.method as Method,
      webhook_url: `${deps.cfg.publicUrl}/v1/webhooks/gateway`, expires_at: new Date(row.expires_at as Date).toISOString(),
    }, id);
  } catch (err) {
    paymentsByOutcome.inc({ outcome: 'open_failed' });
    await s.query(SQL.fail, [row.id, err instanceof GatewayRefused ? 'gateway_refused' : 'gateway_unavailable']);
    await deps.hooks.orderTouched(shard, row.order_id as number);
    if (err instanceof EngineError) throw err;
    throw new EngineError('dependency_unavailable', 'The payment gateway refused the session', { retryAfterS: 2, cause: err });
  }
  paymentsByOutcome.inc({ outcome: 'opened' });
  const attached = (await s.query(SQL.attachSession, [row.id, session.id, session.redirect_url ?? null, session.qr_payload ?? null])).rows[0];
  await deps.hooks.orderTouched(shard, row.order_id as number);
  return toPayment(shard, attached ?? row);
}

export async function getPayment(deps: Deps, p: Principal, id: string): Promise<Payment> {
  const { shard, local } = decodeRow('payment', id, deps.shards.count);
  const row = (await deps.shards.get(shard).query(SQL.byId, [local])).rows[0];
  if (!row || (row.customer_id !== p.uuid && p.role !== 'admin')) throw new EngineError('not_found', 'No such payment');
  return toPayment(shard, row);
}

export async function paymentsOfOrder(deps: Deps, shard: number, orderLocal: number): Promise<Payment[]> {
  return (await deps.shards.get(shard).query(SQL.forOrder, [orderLocal])).rows.map((r) => toPayment(shard, r));
}

export interface GatewayEvent { id: string; type: string; data: { session_id: string; merchant_ref: string; status: string; amount_cents: number; currency: string } }

const ECHOES = new Set(['payment.released', 'payment.refunded']);

/**
 * The order a payment just placed, as the placing statement answered it (id, status,
 * customer_id, payment_id, lines): fulfilment starts from it without reading it again.
 */
export type PlacedOrder = Record<string, unknown>;

export interface Applied {
  duplicate: boolean; shard: number; orderLocal: number; paymentLocal: number; placed: boolean; captured: boolean;
  order?: PlacedOrder;
}

/**
 * Applies one gateway event exactly once, in one statement (SQL.applyEvent): checked
 * against the payment (nothing is written on a mismatch), its id claimed, and applied.
 */
export async function applyGatewayEvent(deps: Deps, ev: GatewayEvent): Promise<Applied> {
  const { shard, local } = decodeRow('payment', ev.data.merchant_ref, deps.shards.count);
  // Echoes of calls this engine made (a release, a refund): their effects were recorded
  // when the call answered, so the echo costs no database work at all.
  if (ECHOES.has(ev.type)) return { duplicate: false, shard, orderLocal: 0, paymentLocal: local, placed: false, captured: false };
  const r = (await deps.shards.get(shard).statement(SQL.applyEvent, [
    local, ev.id, ev.type, ev.data.session_id, ev.data.amount_cents, ev.data.currency, `gateway:${ev.id}`,
  ])).rows[0]!;
  refuseMismatch(ev, r);
  if (r.outcome === 'applied') countOutcome(ev.type, r.captured as boolean);
  const applied: Applied = {
    duplicate: r.outcome === 'duplicate', shard, orderLocal: r.order_id as number, paymentLocal: local,
    placed: r.placed as boolean, captured: r.captured as boolean,
    order: r.placed ? { id: r.order_id, status: r.order_status, customer_id: r.customer_id, payment_id: r.payment_id, lines: r.lines } : undefined,
  };
  if (applied.placed) await deps.hooks.orderChanged({ id: encodeRow('order', shard, applied.orderLocal), shard, status: 'paid', customer_id: '' });
  else if (!applied.duplicate) await deps.hooks.orderTouched(shard, applied.orderLocal);
  if (applied.captured && !applied.placed) void refundPayment(deps, shard, local, 'unclaimed').catch((err: unknown) => log.warn('unclaimed refund deferred to cron', { err }));
  return applied;
}

const OUTCOME_OF_EVENT: Record<string, 'declined' | 'expired'> = { 'payment.declined': 'declined', 'payment.expired': 'expired' };

/** An event applied for the first time; a success counts when it captured money (not when the payment was settled already). */
function countOutcome(type: string, captured: boolean): void {
  if (captured) paymentsByOutcome.inc({ outcome: 'captured' });
  const outcome = OUTCOME_OF_EVENT[type];
  if (outcome) paymentsByOutcome.inc({ outcome });
}

/** An event that does not match its payment was refused by the statement, which wrote nothing. */
function refuseMismatch(ev: GatewayEvent, r: Record<string, unknown>): void {
  if (r.outcome === 'missing') throw new EngineError('not_found', 'No such payment');
  if (r.outcome === 'amount_mismatch') {
    log.error('gateway event amount mismatch', { event: ev.id, payment: ev.data.merchant_ref, got: ev.data.amount_cents, want: r.amount_cents });
    throw new EngineError('validation_failed', 'Amount or currency does not match the payment', { details: { field: 'data.amount_cents' } });
  }
  if (r.outcome === 'session_mismatch') {
    throw new EngineError('validation_failed', 'Session does not match the payment', { details: { field: 'data.session_id' } });
  }
}

/**
 * Refunds a captured payment exactly once: claim (efficiency), idempotent gateway
 * refund, then the conditional fence that moves escrow back in the ledger. The
 * order, if this payment placed it and it is still open, ends `refunded`.
 */
export async function refundPayment(deps: Deps, shard: number, paymentLocal: number, reason: string): Promise<boolean> {
  try {
    const done = await refundOnce(deps, shard, paymentLocal, reason);
    if (done) refundsByOutcome.inc({ reason, outcome: 'succeeded' });
    return done;
  } catch (err) {
    refundsByOutcome.inc({ reason, outcome: 'failed' });
    throw err;
  }
}

async function refundOnce(deps: Deps, shard: number, paymentLocal: number, reason: string): Promise<boolean> {
  const s = deps.shards.get(shard);
  const claimed = (await s.query(SQL.claimRefund, [paymentLocal, reason])).rows[0];
  if (!claimed) return false;
  await deps.gateway.refund(claimed.gateway_session_id as string, reason);
  const orderLocal = claimed.order_id as number;
  const done = await s.transaction(async (q) => {
    const row = (await q.query(SQL.markRefunded, [paymentLocal])).rows[0];
    if (!row) return false;
    await postTransfer(q, { orderLocal, paymentLocal, currency: row.currency as string, kind: 'refund', legs: refundLegs(row.amount_cents as number) });
    await q.query(TRANSITION_IF_PLACED_BY, [orderLocal, paymentLocal, reason]);
    return true;
  });
  if (done) {
    log.info('payment refunded', { payment: encodeRow('payment', shard, paymentLocal), reason });
    await deps.hooks.orderTouched(shard, orderLocal);
  }
  return done;
}

// An order placed by this payment and not yet finished ends refunded.
const TRANSITION_IF_PLACED_BY = {
  name: 'pay_order_refunded',
  text: `WITH prev AS (SELECT id, status FROM orders WHERE id = $1 AND payment_id = $2 AND status IN ('paid', 'fulfilling', 'shipped') FOR UPDATE),
         upd AS (UPDATE orders o SET status = 'refunded', updated_at = now() FROM prev WHERE o.id = prev.id RETURNING o.id, prev.status AS from_status)
         INSERT INTO order_events (order_id, from_status, to_status, actor, reason) SELECT id, from_status, 'refunded', 'system', $3 FROM upd`,
};

/**
 * Cancels a paid order that has not shipped: the sale is unwound (stock back) in one
 * transaction fenced on status, then the payment is refunded. If the refund call
 * fails, the unclaimed-payment cron finishes it (a canceled order's money is unclaimed).
 */
async function cancelPaidOrder(deps: Deps, p: Principal, shard: number, orderLocal: number): Promise<boolean> {
  const actor = p.role === 'admin' ? `admin:${p.id}` : `customer:${p.id}`;
  let items: StockChange[] = [];
  const paymentLocal = await deps.shards.get(shard).transaction(async (q) => {
    // The lock first, so CANCEL_PAID's snapshot is taken after it and sees fulfilment rows
    // an activation wrote under the same lock (src/fulfillment/sql.ts prepareMixed).
    if ((await q.query(LOCK_PAID, [orderLocal])).rowCount === 0) return null;
    const t = await q.query(CANCEL_PAID, [orderLocal, actor]);
    if (t.rowCount === 0) return null;
    items = (await q.query(SQL.unsell, [orderLocal])).rows[0]!.items as StockChange[];
    return t.rows[0]!.payment_id as number;
  });
  if (paymentLocal === null) return false;
  await announce(deps, shard, items, 'released');
  await deps.hooks.orderChanged({ id: encodeRow('order', shard, orderLocal), shard, status: 'canceled', customer_id: '' });
  await refundPayment(deps, shard, paymentLocal, 'canceled').catch((err: unknown) => log.warn('refund deferred to cron', { err }));
  return true;
}

const LOCK_PAID = { name: 'pay_lock_paid', text: `SELECT id FROM orders WHERE id = $1 AND status = 'paid' FOR UPDATE` };

const CANCEL_PAID = {
  name: 'pay_cancel_paid',
  // Credit whose activation has begun (an order of shipment and provider lines) is not
  // refunded by a cancel, nor is escrow whose release was claimed (fulfillment/release.ts).
  text: `WITH prev AS (SELECT id, payment_id FROM orders WHERE id = $1 AND status = 'paid'
                     AND NOT EXISTS (SELECT 1 FROM fulfillments f WHERE f.order_id = $1)
                     AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = $1 AND p.escrow = 'releasing') FOR UPDATE),
         upd AS (UPDATE orders o SET status = 'canceled', updated_at = now() FROM prev WHERE o.id = prev.id RETURNING o.id, prev.payment_id),
         ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                SELECT id, 'paid', 'canceled', $2, 'requested_refund' FROM upd RETURNING 1)
         SELECT payment_id FROM upd`,
};

onCancelPaid(cancelPaidOrder);

export { SQL as PAYMENT_SQL };
