// Payments: one live payment per order, created at the gateway outside any
// transaction; outcomes arrive as signed webhooks (or by polling) and are applied
// once per event id, by conditional updates; money moves through the ledger.
import type { Principal } from '../accounts/principal.js';
import type { Core, Remote } from '../deps.js';
import { EngineError } from '../errors.js';
import { log } from '../log.js';
import { paymentsByOutcome, refundsByOutcome } from '../metrics/index.js';
import { recordPaymentEvent, refunded } from '../orders/lifecycle.js';
import { getOrderRow } from '../orders/read.js';
import { decodeRow, encodeRow } from '../router/ids.js';
import { GatewayRefused, type GatewayEvent, type GatewaySession } from './gateway.js';
import { postTransfer, refundLegs } from './ledger.js';
import { toPayment, type Payment } from './model.js';
import { SQL } from './sql.js';

export type Method = 'card' | 'qr';

export async function createPayment(deps: Core & Remote, p: Principal, orderId: string,
  method: Method): Promise<{ created: boolean; payment: Payment }> {
  const { shard, local } = decodeRow('order', orderId, deps.shards.count);
  if (method === 'qr' && !deps.flags.enabled('qr_payments')) {
    throw new EngineError('feature_disabled', 'QR payments are switched off; pay by card',
      { details: { flag: 'qr_payments' } });
  }
  const s = deps.shards.get(shard);
  // The common case in one statement: the buyer's own order, awaiting payment, gets one.
  const ins = (await s.query(SQL.insertPayment, [local, method, p.uuid])).rows[0];
  if (ins) return { created: true, payment: await openSession(deps, shard, ins) };
  const { row } = await getOrderRow(deps, p, orderId);
  if (row.customer_id !== p.uuid) throw new EngineError('not_found', 'No such order');
  const pending = (await s.query(SQL.pendingForOrder, [local])).rows[0];
  if (pending?.gateway_session_id) return { created: false, payment: toPayment(shard, pending) };
  if (!pending) throw new EngineError('invalid_state', `Order is ${row.status as string} and cannot be paid`,
    { details: { status: row.status } });
  return { created: false, payment: await openSession(deps, shard, pending) };
}

/** The network call happens after the payment row committed; its outcome is recorded after. */
async function openSession(deps: Core & Remote, shard: number, row: Record<string, unknown>): Promise<Payment> {
  const id = encodeRow('payment', shard, row.id as number);
  const s = deps.shards.get(shard);
  let session: GatewaySession;
  try {
    session = await deps.gateway.createSession({
      merchant_ref: id, amount_cents: row.amount_cents as number, currency: row.currency as string,
      method: row.method as Method,
      webhook_url: `${deps.cfg.publicUrl}/v1/webhooks/gateway`,
      expires_at: new Date(row.expires_at as Date).toISOString(),
    }, id);
  } catch (err) {
    paymentsByOutcome.inc({ outcome: 'open_failed' });
    await s.query(SQL.fail, [row.id, err instanceof GatewayRefused ? 'gateway_refused' : 'gateway_unavailable']);
    await deps.hooks.orderTouched(shard, row.order_id as number);
    if (err instanceof EngineError) throw err;
    throw new EngineError('dependency_unavailable', 'The payment gateway refused the session',
      { retryAfterS: 2, cause: err });
  }
  paymentsByOutcome.inc({ outcome: 'opened' });
  const attached = (await s.query(SQL.attachSession,
    [row.id, session.id, session.redirect_url ?? null, session.qr_payload ?? null])).rows[0];
  await deps.hooks.orderTouched(shard, row.order_id as number);
  return toPayment(shard, attached ?? row);
}

export async function getPayment(deps: Core & Remote, p: Principal, id: string): Promise<Payment> {
  const { shard, local } = decodeRow('payment', id, deps.shards.count);
  const row = (await deps.shards.get(shard).query(SQL.byId, [local])).rows[0];
  if (!row || (row.customer_id !== p.uuid && p.role !== 'admin')) throw new EngineError('not_found', 'No such payment');
  return toPayment(shard, row);
}

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
 * Applies one gateway event exactly once (the order lifecycle's one statement, which
 * places the order on a success): checked against the payment (nothing is written on a
 * mismatch), its id claimed, and applied.
 */
export async function applyGatewayEvent(deps: Core & Remote, ev: GatewayEvent): Promise<Applied> {
  const { shard, local } = decodeRow('payment', ev.data.merchant_ref, deps.shards.count);
  // Echoes of calls this engine made (a release, a refund): their effects were recorded
  // when the call answered, so the echo costs no database work at all.
  if (ECHOES.has(ev.type)) return { duplicate: false, shard, orderLocal: 0, paymentLocal: local, placed: false,
    captured: false };
  const r = await recordPaymentEvent(deps, shard, local, ev);
  refuseMismatch(ev, r);
  if (r.outcome === 'applied') countOutcome(ev.type, r.captured as boolean);
  const applied: Applied = {
    duplicate: r.outcome === 'duplicate', shard, orderLocal: r.order_id as number, paymentLocal: local,
    placed: r.placed as boolean, captured: r.captured as boolean,
    order: r.placed ? { id: r.order_id, status: r.order_status, customer_id: r.customer_id, payment_id: r.payment_id,
      lines: r.lines } : undefined,
  };
  if (!applied.placed && !applied.duplicate) await deps.hooks.orderTouched(shard, applied.orderLocal);
  if (applied.captured && !applied.placed) {
    void refundPayment(deps, shard, local, 'unclaimed').catch((err: unknown) =>
      log.warn('unclaimed refund deferred to cron', { err }));
  }
  return applied;
}

const OUTCOME_OF_EVENT: Record<string, 'declined' | 'expired'> = { 'payment.declined': 'declined',
  'payment.expired': 'expired' };

/**
 * An event applied for the first time; a success counts when it captured money (not when the
 * payment was settled already).
 */
function countOutcome(type: string, captured: boolean): void {
  if (captured) paymentsByOutcome.inc({ outcome: 'captured' });
  const outcome = OUTCOME_OF_EVENT[type];
  if (outcome) paymentsByOutcome.inc({ outcome });
}

/** An event that does not match its payment was refused by the statement, which wrote nothing. */
function refuseMismatch(ev: GatewayEvent, r: Record<string, unknown>): void {
  if (r.outcome === 'missing') throw new EngineError('not_found', 'No such payment');
  if (r.outcome === 'amount_mismatch') {
    log.error('gateway event amount mismatch', { event: ev.id, payment: ev.data.merchant_ref, got: ev.data.amount_cents,
      want: r.amount_cents });
    throw new EngineError('validation_failed', 'Amount or currency does not match the payment',
      { details: { field: 'data.amount_cents' } });
  }
  if (r.outcome === 'session_mismatch') {
    throw new EngineError('validation_failed', 'Session does not match the payment',
      { details: { field: 'data.session_id' } });
  }
}

/**
 * Refunds a captured payment exactly once: claim (efficiency), idempotent gateway
 * refund, then the conditional fence that moves escrow back in the ledger. The
 * order, if this payment placed it and it is still open, ends `refunded`.
 */
export async function refundPayment(deps: Core & Remote, shard: number, paymentLocal: number,
  reason: string): Promise<boolean> {
  try {
    const done = await refundOnce(deps, shard, paymentLocal, reason);
    if (done) refundsByOutcome.inc({ reason, outcome: 'succeeded' });
    return done;
  } catch (err) {
    refundsByOutcome.inc({ reason, outcome: 'failed' });
    throw err;
  }
}

async function refundOnce(deps: Core & Remote, shard: number, paymentLocal: number, reason: string): Promise<boolean> {
  const s = deps.shards.get(shard);
  const claimed = (await s.query(SQL.claimRefund, [paymentLocal, reason])).rows[0];
  if (!claimed) return false;
  await deps.gateway.refund(claimed.gateway_session_id as string, reason);
  const orderLocal = claimed.order_id as number;
  const done = await refunded(deps, shard, orderLocal, paymentLocal, reason, async (q) => {
    const row = (await q.query(SQL.markRefunded, [paymentLocal])).rows[0];
    if (!row) return false;
    await postTransfer(q, { orderLocal, paymentLocal, currency: row.currency as string, kind: 'refund',
      legs: refundLegs(row.amount_cents as number) });
    return true;
  });
  if (done) log.info('payment refunded', { payment: encodeRow('payment', shard, paymentLocal), reason });
  return done;
}
