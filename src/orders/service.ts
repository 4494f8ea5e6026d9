// Checkout and cancel: a cart of items is split by shard; each part becomes one order
// whose holds are taken in one statement (all lines or none; lifecycle.ts places it).
// If any part fails, the parts already held elsewhere are canceled again
// (compensation) before the error is told. A cancel of a paid order refunds it.
import { createHash, randomUUID } from 'node:crypto';
import type { Principal } from '../accounts/principal.js';
import type { Core, ReadSide, Remote } from '../deps.js';
import { EngineError } from '../errors.js';
import { log } from '../log.js';
import { ordersRefused } from '../metrics/index.js';
import { refundPayment } from '../payments/service.js';
import { decodeRow } from '../router/ids.js';
import { sumLines, type WantedLine } from './holds.js';
import { cancelPaid, cancelUnpaid, place, type Placement } from './lifecycle.js';
import type { Order } from './model.js';
import { getOrderFresh, getOrderRow } from './read.js';
import { SQL } from './sql.js';

export interface LineInput { item_id: string; quantity: number }

function groupByShard(deps: Core, lines: LineInput[]): Map<number, WantedLine[]> {
  const groups = new Map<number, WantedLine[]>();
  for (const l of lines) {
    const { shard, local } = decodeRow('item', l.item_id, deps.shards.count);
    const g = groups.get(shard) ?? [];
    g.push({ local, quantity: l.quantity });
    groups.set(shard, g);
  }
  return groups;
}

/**
 * The sold-out gate (src/cache/gate.ts): 409 with no database round trip, before any
 * shard is touched; Postgres still decides every hold. The `sold_out_gate` flag switches
 * it off at run time (SOLD_OUT_GATE=false never builds it).
 */
export async function admit(deps: Core & ReadSide, lines: LineInput[]): Promise<void> {
  if (!deps.flags.enabled('sold_out_gate')) return;
  for (const [shard, wanted] of groupByShard(deps, lines)) await deps.gate.admit(shard, wanted.map((l) => l.local));
}

/**
 * What a checkout asked for, whatever the order of its lines: an order found by its
 * request key answers a retry only when it was made for the same request.
 */
export function requestHash(lines: LineInput[]): string {
  const byItem = new Map<string, number>();
  for (const l of lines) byItem.set(l.item_id, (byItem.get(l.item_id) ?? 0) + l.quantity);
  const canonical = [...byItem.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

interface Checkout { requestKey: string | null; requestHash: string | null; checkoutId: string; folded: boolean }

/** Whether every line of a checkout lives on one shard (such a checkout is one statement). */
export function isSingleShard(deps: Core, lines: LineInput[]): boolean {
  return groupByShard(deps, lines).size === 1;
}

/**
 * A single-shard checkout with an Idempotency-Key, in one statement on that shard:
 * the key's claim, the holds, the limits, the order and the record of a refusal
 * (sql/010). A retry gets the first answer again (`replayed`), a refusal included.
 * No sold-out gate in front: its refusal would have to be recorded too, and that is
 * this very statement.
 */
export async function checkoutKeyed(deps: Core, p: Principal, lines: LineInput[],
  requestKey: string): Promise<{ orders: Order[]; replayed: boolean }> {
  const [[shard, wanted]] = [...groupByShard(deps, lines).entries()] as [[number, WantedLine[]]];
  const c: Checkout = { requestKey, requestHash: requestHash(lines), checkoutId: randomUUID(), folded: true };
  const out = await counted(placeOnShard(deps, p, shard, sumLines(wanted), c).then((o) => {
    if (o.ok) return o;
    o.error.replayed = o.replayed;
    throw o.error;
  }));
  return { orders: [out.order], replayed: out.existing };
}

/** A checkout that made no order is counted by the code it answers; a replayed answer was counted the first time. */
async function counted<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (!(err instanceof EngineError
      && err.replayed)) ordersRefused.inc({ reason: err instanceof EngineError ? err.code : 'internal' });
    throw err;
  }
}

export function createOrders(deps: Core & ReadSide, p: Principal, lines: LineInput[],
  requestKey: string | null): Promise<Order[]> {
  return counted(createOrdersUncounted(deps, p, lines, requestKey));
}

async function createOrdersUncounted(deps: Core & ReadSide, p: Principal, lines: LineInput[],
  requestKey: string | null): Promise<Order[]> {
  await admit(deps, lines);
  const groups = [...groupByShard(deps, lines).entries()];
  const checkout: Checkout = { requestKey, requestHash: requestKey ? requestHash(lines) : null,
    checkoutId: randomUUID(), folded: false };
  const results = await Promise.allSettled(groups.map(([shard, wanted]) =>
    createShardOrder(deps, p, shard, wanted, checkout)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return results.map((r) => (r as PromiseFulfilledResult<Order>).value);
  const made = results.filter((r): r is PromiseFulfilledResult<Order> => r.status === 'fulfilled').map((r) => r.value);
  await Promise.all(made.map((o) => compensate(deps, o)));
  throw failed.reason;
}

async function compensate(deps: Core, order: Order): Promise<void> {
  const { shard, local } = decodeRow('order', order.id, deps.shards.count);
  // A shard busy enough to refuse one part may refuse the undo too: retry a little
  // before leaving the stock to the expiry cron (hold_expires_at).
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      await cancelUnpaid(deps, shard, local, 'system', 'checkout_failed_on_another_shard');
      return;
    } catch (err) {
      if (attempt === 3) log.error('compensation failed; hold left to expire', { order: order.id, err });
      else await new Promise((r) => setTimeout(r, 100 * 3 ** attempt));
    }
  }
}

async function createShardOrder(deps: Core, p: Principal, shard: number, wanted: WantedLine[],
  c: Checkout): Promise<Order> {
  const out = await placeOnShard(deps, p, shard, sumLines(wanted), c);
  if (!out.ok) throw out.error;
  return out.order;
}

function placeOnShard(deps: Core, p: Principal, shard: number, lines: WantedLine[], c: Checkout): Promise<Placement> {
  return place(deps, p, shard, { customer: p.uuid, lines, ttlS: deps.cfg.holdTtlS, ...c, actor: `customer:${p.id}` });
}

export async function cancelOrder(deps: Core & Remote, p: Principal, id: string): Promise<Order> {
  const { shard, local, row } = await getOrderRow(deps, p, id);
  const actor = p.role === 'admin' ? `admin:${p.id}` : `customer:${p.id}`;
  if (row.status === 'awaiting_payment') await cancelUnpaid(deps, shard, local, actor, 'requested');
  else if (row.status === 'paid') await cancelPaidAndRefund(deps, shard, local, actor);
  const after = await getOrderFresh(deps, p, id);
  if (after.status !== 'canceled' && after.status !== 'refunded') {
    throw new EngineError('invalid_state', `Order is ${after.status} and can no longer be canceled`,
      { details: { status: after.status } });
  }
  return after;
}

/**
 * A paid order that has not shipped is canceled (its sale unwound), then its payment
 * refunded. If the refund call fails, the unclaimed-payment cron finishes it (a
 * canceled order's money is unclaimed).
 */
async function cancelPaidAndRefund(deps: Core & Remote, shard: number, local: number, actor: string): Promise<void> {
  const paymentLocal = await cancelPaid(deps, shard, local, actor);
  if (paymentLocal === null) return;
  await refundPayment(deps, shard, paymentLocal, 'canceled').catch((err: unknown) =>
    log.warn('refund deferred to cron', { err }));
}

/** Deletes one batch of recorded checkout refusals past IDEMPOTENCY_RETENTION_S on a shard; how many went. */
export async function pruneCheckoutRefusals(deps: Core, shard: number, batch: number): Promise<number> {
  return (await deps.shards.get(shard).query(SQL.pruneRefusals, [deps.cfg.idempotencyRetentionS, batch])).rowCount ?? 0;
}
