// The order lifecycle: the one place an order's status changes. Each change is one
// statement of lifecycle-sql.ts, fenced on the status it leaves and writing its audit
// row (order_events) itself, and after it commits, the one announcement of it to the
// read side (hooks: the stream, the order's cached copy, the items whose stock moved).
// Checkout, payments, fulfilment and the cron ask it; it asks none of them.
//
//   place              (none)                    -> awaiting_payment
//   cancelUnpaid       awaiting_payment          -> canceled   (a cancel, a checkout's compensation)
//   expireDueBatch     awaiting_payment          -> expired    (the cron; place reclaims on its items)
//   recordPaymentEvent awaiting_payment          -> paid       (a gateway event, payments/)
//   cancelPaid         paid                      -> canceled   (the caller refunds the payment)
//   startFulfilling    paid                      -> fulfilling (provider lines)
//   ship               paid                      -> shipped    (an admin)
//   complete           paid, fulfilling, shipped -> completed  (escrow released, fulfillment/release.ts)
//   refunded           paid, fulfilling, shipped -> refunded   (in the refund's transaction, payments/)
import type { Principal } from '../accounts/principal.js';
import { publicUserId } from '../accounts/service.js';
import type { Core } from '../deps.js';
import { EngineError, invariant } from '../errors.js';
import { holdsExpired, ordersCreated } from '../metrics/index.js';
import type { GatewayEvent } from '../payments/gateway.js';
import type { Account } from '../payments/ledger.js';
import { encodeRow } from '../router/ids.js';
import { isRetryable } from '../shard/pg-errors.js';
import type { Queryable } from '../shard/pools.js';
import { placePart, type Part, type Placed } from './checkout.js';
import { announce, type StockChange } from './holds.js';
import { SQL } from './lifecycle-sql.js';
import { toOrder, type Order, type OrderStatus } from './model.js';

/** After commit: the stream and the order's cached copy learn the new status. */
function told(deps: Core, shard: number, local: number, status: OrderStatus, customerId = ''): Promise<void> {
  return deps.hooks.orderChanged({ id: encodeRow('order', shard, local), shard, status, customer_id: customerId });
}

export type Placement = { ok: true; order: Order; existing: boolean }
  | { ok: false; error: EngineError; replayed: boolean };

const ATTEMPTS_MAX = 3;

/**
 * (none) -> awaiting_payment: one shard's part of a checkout, in the next batch going
 * there (checkout.ts). Expired holds must not block sales while they wait for the
 * sweeper: a part refused while some wait on its items reclaims them and tries again;
 * a part that lost a deadlock tries again. An order found by its request key
 * (`existing`) was announced when it was made.
 */
export async function place(deps: Core, p: Principal, shard: number, part: Part): Promise<Placement> {
  let out = await placePart(deps, shard, part);
  for (let attempt = 1; !out.ok && attempt < ATTEMPTS_MAX; attempt++) {
    if (out.reclaimable) await reclaimExpired(deps, shard, part.lines.map((l) => l.local), 'hold_path');
    else if (!isRetryable(out.error.cause)) break;
    out = await placePart(deps, shard, part);
  }
  if (!out.ok) return { ok: false, error: out.error, replayed: out.replayed };
  return { ok: true, order: await placed(deps, p, shard, out.placed), existing: out.placed.existing };
}

/** The order a placed part made (or found), told to the cache and the stream when new. */
async function placed(deps: Core, p: Principal, shard: number, row: Placed): Promise<Order> {
  if (!row.existing) {
    ordersCreated.inc({ shard: String(shard) });
    await announce(deps, shard, row.items as StockChange[], 'held');
  }
  const order = toOrder(shard, row, publicUserId(deps, p.uuid));
  if (!row.existing) await deps.hooks.orderCreated(shard, row.id, order, p.uuid);
  return order;
}

/** awaiting_payment -> canceled: the fence on status makes a race return stock once. */
export async function cancelUnpaid(deps: Core, shard: number, local: number, actor: string,
  reason: string): Promise<boolean> {
  let items: StockChange[] = [];
  const moved = await deps.shards.get(shard).transaction(async (q) => {
    const t = await q.query(SQL.transition, [local, ['awaiting_payment'], 'canceled', actor, reason]);
    if (t.rowCount === 0) return false;
    items = (await q.query(SQL.releaseHolds, [local, 'released'])).rows[0]!.items as StockChange[];
    return true;
  });
  await announce(deps, shard, items, 'released');
  if (moved) await told(deps, shard, local, 'canceled');
  return moved;
}

// Subscribers of an expired order learn it by id; the customer id is not needed to route it.
function toldExpired(deps: Core, shard: number, orders: number[]): void {
  for (const local of orders) void told(deps, shard, local, 'expired');
}

/** awaiting_payment -> expired, zero-lag: expired holds on these items go back to stock; how many orders expired. */
async function reclaimExpired(deps: Core, shard: number, itemLocals: number[], actor: string): Promise<number> {
  const res = await deps.shards.get(shard).query(SQL.reclaimItems, [deps.cfg.expiryBatchSize, actor, itemLocals]);
  const row = res.rows[0]!;
  holdsExpired.inc({ shard: String(shard), via: 'reclaim' }, row.expired as number);
  void announce(deps, shard, row.items as StockChange[], 'expired');
  toldExpired(deps, shard, row.orders as number[]);
  return row.expired as number;
}

/**
 * awaiting_payment -> expired: one cron batch on one shard. Safe to run concurrently: rows are
 * locked SKIP LOCKED and fenced.
 */
export async function expireDueBatch(deps: Core, shard: number,
  actor: string): Promise<{ expired: number; orders: number[] }> {
  const res = await deps.shards.get(shard).query(SQL.expireDue, [deps.cfg.expiryBatchSize, actor]);
  const row = res.rows[0]!;
  holdsExpired.inc({ shard: String(shard), via: 'cron' }, row.expired as number);
  void announce(deps, shard, row.items as StockChange[], 'expired');
  toldExpired(deps, shard, row.orders as number[]);
  return { expired: row.expired as number, orders: row.orders as number[] };
}

/**
 * awaiting_payment -> paid: one gateway event, applied exactly once in one statement
 * (checked against its payment, nothing written on a mismatch; its id claimed; a
 * success captured and the order placed). The statement's row is the outcome
 * (payments/service.ts reads it); a placement is announced here.
 */
export async function recordPaymentEvent(deps: Core, shard: number, paymentLocal: number,
  ev: GatewayEvent): Promise<Record<string, unknown>> {
  const r = (await deps.shards.get(shard).statement(SQL.applyPaymentEvent, [
    paymentLocal, ev.id, ev.type, ev.data.session_id, ev.data.amount_cents, ev.data.currency, `gateway:${ev.id}`,
  ])).rows[0]!;
  if (r.placed) await told(deps, shard, r.order_id as number, 'paid');
  return r;
}

/**
 * paid -> canceled, for an order whose shipment, credit activation and escrow release
 * have not begun: the sale is unwound (stock back) in one transaction fenced on status.
 * Answers the payment the caller refunds, or null when the fence did not hold.
 */
export async function cancelPaid(deps: Core, shard: number, orderLocal: number, actor: string): Promise<number | null> {
  let items: StockChange[] = [];
  const paymentLocal = await deps.shards.get(shard).transaction(async (q) => {
    // The lock first, so cancelPaid's snapshot is taken after it and sees fulfilment rows
    // an activation wrote under the same lock (src/fulfillment/sql.ts prepareMixed).
    if ((await q.query(SQL.lockPaid, [orderLocal])).rowCount === 0) return null;
    const t = await q.query(SQL.cancelPaid, [orderLocal, actor]);
    if (t.rowCount === 0) return null;
    items = (await q.query(SQL.unsell, [orderLocal])).rows[0]!.items as StockChange[];
    return t.rows[0]!.payment_id as number;
  });
  if (paymentLocal === null) return null;
  await announce(deps, shard, items, 'released');
  await told(deps, shard, orderLocal, 'canceled');
  return paymentLocal;
}

/** A paid order whose fulfilment failed gives its sold units back; its refund then ends it refunded. */
export async function unsell(deps: Core, shard: number, orderLocal: number): Promise<void> {
  const items = (await deps.shards.get(shard).query(SQL.unsell, [orderLocal])).rows[0]!.items as StockChange[];
  await announce(deps, shard, items, 'released');
}

/**
 * paid, fulfilling or shipped -> refunded, in one transaction with the refund's own
 * writes (`money`, from payments/: the payment marked refunded, the ledger transfer;
 * false when there was nothing to refund): the order moves only when this payment placed
 * it and it is still open. True when the refund was recorded.
 */
export async function refunded(
  deps: Core, shard: number, orderLocal: number, paymentLocal: number, reason: string,
  money: (q: Queryable) => Promise<boolean>,
): Promise<boolean> {
  let moved = false;
  const done = await deps.shards.get(shard).transaction(async (q) => {
    if (!(await money(q))) return false;
    moved = ((await q.query(SQL.refundedIfPlacedBy, [orderLocal, paymentLocal, reason])).rowCount ?? 0) > 0;
    return true;
  });
  if (moved) await told(deps, shard, orderLocal, 'refunded');
  else if (done) await deps.hooks.orderTouched(shard, orderLocal);
  return done;
}

/** paid -> fulfilling, with the fulfilment rows of its provider lines. */
export async function startFulfilling(deps: Core, shard: number, orderLocal: number): Promise<void> {
  const started = (await deps.shards.get(shard).query(SQL.startFulfilling, [orderLocal])).rows[0]!.started === 1;
  if (started) void told(deps, shard, orderLocal, 'fulfilling');
}

/** paid -> shipped (an admin), with its shipment row; false when the fence did not hold. */
export async function ship(deps: Core, shard: number, orderLocal: number, input: { carrier: string; tracking: string },
  actor: string): Promise<boolean> {
  const row = (await deps.shards.get(shard).query(SQL.ship,
    [orderLocal, input.carrier, input.tracking, actor])).rows[0];
  if (!row) return false;
  await told(deps, shard, orderLocal, 'shipped', publicUserId(deps, row.customer_id as string));
  return true;
}

export interface Completion {
  /** The statuses the order may complete from: the fence. */
  from: string[];
  reason: string;
  actor: string;
  /** The completion is a shipment's delivery, by this actor: recorded in the same statement. */
  deliveredBy?: string;
}

/** The escrow a completion releases: the claimed payment and the release transfer's legs. */
export interface Release { paymentLocal: number; accounts: Account[]; amounts: number[] }

/**
 * paid, fulfilling or shipped -> completed, with escrow released and its transfer posted
 * (complete_paid_order); false when the fence did not hold. A broken invariant inside
 * the statement (BFIV1) rolled it back and is a bug.
 */
export async function complete(deps: Core, shard: number, orderLocal: number, c: Completion,
  r: Release): Promise<boolean> {
  const params = [orderLocal, c.from, c.reason, c.actor, r.paymentLocal, r.accounts, r.amounts, c.deliveredBy ?? null];
  let done: boolean;
  try {
    done = (await deps.shards.get(shard).statement(SQL.complete, params)).rows[0]!.completed === true;
  } catch (err) {
    const cause = (err instanceof EngineError ? err.cause : err) as { code?: string; message?: string } | undefined;
    invariant(cause?.code !== 'BFIV1', (cause?.message ?? '').replace(/^invariant violated: /, ''));
    throw err;
  }
  if (done) await told(deps, shard, orderLocal, 'completed');
  return done;
}
