// Orders: a cart of items is split by shard; each part becomes one order whose holds
// are taken in one transaction (all lines or none). If any part fails, the parts
// already held elsewhere are released again (compensation) before the error is told.
import { createHash, randomUUID } from 'node:crypto';
import { publicUserId, type Principal } from '../accounts/service.js';
import type { Deps } from '../deps.js';
import { EngineError } from '../errors.js';
import { enabled } from '../flags/index.js';
import { log } from '../log.js';
import { ordersCreated, ordersRefused } from '../metrics/index.js';
import { decodeRow, encodeRow } from '../router/ids.js';
import { decodeCursor, mergePage, scatter, shardBound, type Page } from '../router/scatter.js';
import type { Queryable } from '../shard/pools.js';
import { placePart, type Outcome, type Part, type Placed } from './checkout.js';
import { announce, reclaimExpired, sumLines, type StockChange, type WantedLine } from './holds.js';
import { isRetryable } from '../shard/pg-errors.js';
import { toOrder, type Order } from './model.js';
import { SQL } from './sql.js';

export interface LineInput { item_id: string; quantity: number }

function groupByShard(deps: Deps, lines: LineInput[]): Map<number, WantedLine[]> {
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
export async function admit(deps: Deps, lines: LineInput[]): Promise<void> {
  if (!deps.gate || !enabled('sold_out_gate')) return;
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
export function isSingleShard(deps: Deps, lines: LineInput[]): boolean {
  return groupByShard(deps, lines).size === 1;
}

/**
 * A single-shard checkout with an Idempotency-Key, in one statement on that shard:
 * the key's claim, the holds, the limits, the order and the record of a refusal
 * (sql/010). A retry gets the first answer again (`replayed`), a refusal included.
 * No sold-out gate in front: its refusal would have to be recorded too, and that is
 * this very statement.
 */
export async function checkoutKeyed(deps: Deps, p: Principal, lines: LineInput[], requestKey: string): Promise<{ orders: Order[]; replayed: boolean }> {
  const [[shard, wanted]] = [...groupByShard(deps, lines).entries()] as [[number, WantedLine[]]];
  const c: Checkout = { requestKey, requestHash: requestHash(lines), checkoutId: randomUUID(), folded: true };
  const out = await counted(placeOnShard(deps, p, shard, sumLines(wanted), c).then((o) => {
    if (o.ok) return o;
    o.error.replayed = o.replayed;
    throw o.error;
  }));
  return { orders: [await placedOrder(deps, p, shard, out.placed)], replayed: out.placed.existing };
}

/** A checkout that made no order is counted by the code it answers; a replayed answer was counted the first time. */
async function counted<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (!(err instanceof EngineError && err.replayed)) ordersRefused.inc({ reason: err instanceof EngineError ? err.code : 'internal' });
    throw err;
  }
}

export function createOrders(deps: Deps, p: Principal, lines: LineInput[], requestKey: string | null): Promise<Order[]> {
  return counted(createOrdersUncounted(deps, p, lines, requestKey));
}

async function createOrdersUncounted(deps: Deps, p: Principal, lines: LineInput[], requestKey: string | null): Promise<Order[]> {
  await admit(deps, lines);
  const groups = [...groupByShard(deps, lines).entries()];
  const checkout: Checkout = { requestKey, requestHash: requestKey ? requestHash(lines) : null, checkoutId: randomUUID(), folded: false };
  const results = await Promise.allSettled(groups.map(([shard, wanted]) => createShardOrder(deps, p, shard, wanted, checkout)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return results.map((r) => (r as PromiseFulfilledResult<Order>).value);
  const made = results.filter((r): r is PromiseFulfilledResult<Order> => r.status === 'fulfilled').map((r) => r.value);
  await Promise.all(made.map((o) => compensate(deps, o)));
  throw failed.reason;
}

async function compensate(deps: Deps, order: Order): Promise<void> {
  const { shard, local } = decodeRow('order', order.id, deps.shards.count);
  // A shard busy enough to refuse one part may refuse the undo too: retry a little
  // before leaving the stock to the expiry cron (hold_expires_at).
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      await cancelInShard(deps, shard, local, 'system', 'checkout_failed_on_another_shard');
      return;
    } catch (err) {
      if (attempt === 3) log.error('compensation failed; hold left to expire', { order: order.id, err });
      else await new Promise((r) => setTimeout(r, 100 * 3 ** attempt));
    }
  }
}

async function createShardOrder(deps: Deps, p: Principal, shard: number, wanted: WantedLine[], c: Checkout): Promise<Order> {
  const out = await placeOnShard(deps, p, shard, sumLines(wanted), c);
  if (!out.ok) throw out.error;
  return placedOrder(deps, p, shard, out.placed);
}

const ATTEMPTS_MAX = 3;

/**
 * One shard's part, in the next batch going there (checkout.ts). Expired holds must
 * not block sales while they wait for the sweeper: a part refused while some wait on
 * its items reclaims them and tries again; a part that lost a deadlock tries again.
 */
async function placeOnShard(deps: Deps, p: Principal, shard: number, lines: WantedLine[], c: Checkout): Promise<Outcome> {
  const part: Part = { customer: p.uuid, lines, ttlS: deps.cfg.holdTtlS, ...c, actor: `customer:${p.id}` };
  let out = await placePart(deps, shard, part);
  for (let attempt = 1; !out.ok && attempt < ATTEMPTS_MAX; attempt++) {
    if (out.reclaimable) await reclaimExpired(deps, shard, lines.map((l) => l.local), 'hold_path');
    else if (!isRetryable(out.error.cause)) break;
    out = await placePart(deps, shard, part);
  }
  return out;
}

/** The order a placed part made (or found), told to the cache and the stream when new. */
async function placedOrder(deps: Deps, p: Principal, shard: number, placed: Placed): Promise<Order> {
  if (!placed.existing) {
    ordersCreated.inc({ shard: String(shard) });
    await announce(deps, shard, placed.items as StockChange[], 'held');
  }
  const order = toOrder(shard, placed, publicUserId(deps, p.uuid));
  if (!placed.existing) {
    void deps.hooks.orderChanged({ id: order.id, shard, status: order.status, customer_id: order.customer_id, created: true });
    await deps.cache?.orders.created(shard, placed.id, { order, owner: p.uuid });
  }
  return order;
}

/** Owner or admin; anyone else is told the order does not exist. */
export async function getOrderRow(deps: Deps, p: Principal, id: string): Promise<{ shard: number; local: number; row: Record<string, unknown> }> {
  const { shard, local } = decodeRow('order', id, deps.shards.count);
  const row = (await deps.shards.get(shard).query(SQL.orderById, [local])).rows[0];
  if (!row || (row.customer_id !== p.uuid && p.role !== 'admin')) throw new EngineError('not_found', 'No such order');
  return { shard, local, row };
}

/**
 * Owner or admin, from Postgres: what a writer reads after its write. A concurrent
 * writer's change may not have reached the cache yet when this one's fence said no.
 */
export async function getOrderFresh(deps: Deps, p: Principal, id: string): Promise<Order> {
  const { shard, row } = await getOrderRow(deps, p, id);
  return toOrder(shard, row, publicUserId(deps, row.customer_id as string));
}

/** Owner or admin, through the read cache (src/cache/orders.ts states its bound). */
export async function getOrder(deps: Deps, p: Principal, id: string): Promise<Order> {
  const { shard, local } = decodeRow('order', id, deps.shards.count);
  const load = async () => {
    const row = (await deps.shards.get(shard).query(SQL.orderById, [local])).rows[0];
    return row ? { order: toOrder(shard, row, publicUserId(deps, row.customer_id as string)), owner: row.customer_id as string } : null;
  };
  const found = deps.cache ? await deps.cache.orders.read(shard, local, load) : await load();
  if (!found || (found.owner !== p.uuid && p.role !== 'admin')) throw new EngineError('not_found', 'No such order');
  return found.order;
}

export async function listOrders(deps: Deps, p: Principal, limit: number, cursorRaw?: string): Promise<Page<Order>> {
  const cursor = decodeCursor(cursorRaw, deps.shards.count);
  const customerId = publicUserId(deps, p.uuid);
  const pages = await scatter(deps.dir.shards(), async (s) => {
    const b = shardBound(cursor, s);
    const res = await deps.shards.get(s).query(SQL.listByCustomer, [b.createdUs, b.local, p.uuid, limit + 1]);
    return res.rows.map((r) => ({ key: { createdUs: String(r.created_us), shard: s, local: r.id as number }, value: toOrder(s, r, customerId) }));
  });
  return mergePage(pages, limit);
}

/** Cancels an order awaiting payment: the fence on status makes a race return stock once. */
async function cancelInShard(deps: Deps, shard: number, local: number, actor: string, reason: string): Promise<boolean> {
  let items: StockChange[] = [];
  const moved = await deps.shards.get(shard).transaction(async (q) => {
    const t = await q.query(SQL.transition, [local, ['awaiting_payment'], 'canceled', actor, reason]);
    if (t.rowCount === 0) return false;
    items = (await q.query(SQL.releaseHolds, [local, 'released'])).rows[0]!.items as StockChange[];
    return true;
  });
  await announce(deps, shard, items, 'released');
  if (moved) await deps.hooks.orderChanged({ id: encodeRow('order', shard, local), shard, status: 'canceled', customer_id: '' });
  return moved;
}

export type PaidCancel = (deps: Deps, p: Principal, shard: number, local: number) => Promise<boolean>;
let cancelPaid: PaidCancel | null = null;
/** Payments registers how a paid order is canceled (with its refund). */
export function onCancelPaid(fn: PaidCancel): void { cancelPaid = fn; }

export async function cancelOrder(deps: Deps, p: Principal, id: string): Promise<Order> {
  const { shard, local, row } = await getOrderRow(deps, p, id);
  const actor = p.role === 'admin' ? `admin:${p.id}` : `customer:${p.id}`;
  if (row.status === 'awaiting_payment') await cancelInShard(deps, shard, local, actor, 'requested');
  else if (row.status === 'paid' && cancelPaid) await cancelPaid(deps, p, shard, local);
  const after = await getOrderFresh(deps, p, id);
  if (after.status !== 'canceled' && after.status !== 'refunded') {
    throw new EngineError('invalid_state', `Order is ${after.status} and can no longer be canceled`, { details: { status: after.status } });
  }
  return after;
}

/** Deletes one batch of recorded checkout refusals past IDEMPOTENCY_RETENTION_S on a shard; how many went. */
export async function pruneCheckoutRefusals(deps: Deps, shard: number, batch: number): Promise<number> {
  return (await deps.shards.get(shard).query(SQL.pruneRefusals, [deps.cfg.idempotencyRetentionS, batch])).rowCount ?? 0;
}

export async function orderEvents(deps: Deps, p: Principal, id: string): Promise<unknown[]> {
  const { shard, local } = await getOrderRow(deps, p, id);
  const res = await deps.shards.get(shard).query(SQL.events, [local]);
  return res.rows.map((r) => ({ ...r, created_at: (r.created_at as Date).toISOString() }));
}
