// The storefront cart: a server-side list of (item, quantity) per customer, kept on
// the customer's shard. It holds no stock: it shows each item's price and availability
// as they are now, and checkout turns it into orders exactly as POST /v1/orders does.
import type { Principal } from '../accounts/principal.js';
import { getItem } from '../catalog/service.js';
import type { Core, ReadSide } from '../deps.js';
import { EngineError } from '../errors.js';
import { log } from '../log.js';
import { createOrders } from '../orders/service.js';
import type { Order } from '../orders/model.js';
import { decodeRow, encodeRow } from '../router/ids.js';
import { scatter } from '../router/scatter.js';
import { SQL } from './sql.js';

/** A checked-out cart must be a valid order: the same bounds as POST /v1/orders. */
export const CART_LINES_MAX = 50;
export const LINE_QUANTITY_MAX = 1000;

export interface CartLine {
  item_id: string; quantity: number; name: string | null; price_cents: number | null; currency: string | null;
  available: number | null; active: boolean; fulfillment: string | null; subtotal_cents: number | null;
  /** Active and enough available right now; no stock is held until checkout. */
  purchasable: boolean; added_at: string;
}

export interface CheckoutPreview { shard: number; currency: string; total_cents: number; line_count: number }

export interface Cart {
  lines: CartLine[]; line_count: number; totals: { currency: string; total_cents: number }[]; purchasable: boolean;
  /** Only while the `new_checkout` flag is on: the orders a checkout would create now. */
  checkout?: CheckoutPreview[];
}

interface LineRow { item_shard: number; item_local: number; quantity: number; rev: number; added_at: Date }
type ItemRow = Record<string, unknown>;

async function readLines(deps: Core & ReadSide, p: Principal): Promise<LineRow[]> {
  return (await deps.shards.get(p.shard).query<LineRow>(SQL.lines, [p.uuid, CART_LINES_MAX])).rows;
}

/** The items of the lines, read on their shards in parallel: shard -> local -> row. */
async function readItems(deps: Core & ReadSide, lines: LineRow[]): Promise<Map<number, Map<number, ItemRow>>> {
  const wanted = new Map<number, number[]>();
  for (const l of lines) wanted.set(l.item_shard, [...(wanted.get(l.item_shard) ?? []), l.item_local]);
  const shards = [...wanted.keys()];
  const found = await scatter(shards, async (s) => (await deps.shards.get(s).query(SQL.items, [wanted.get(s)])).rows);
  return new Map(shards.map((s, i) => [s, new Map(found[i]!.map((r) => [r.id as number, r]))]));
}

function toLine(l: LineRow, item: ItemRow | undefined): CartLine {
  const price = item ? (item.price_cents as number) : null;
  const available = item ? (item.available as number) : null;
  const active = item ? (item.active as boolean) : false;
  return {
    item_id: encodeRow('item', l.item_shard, l.item_local), quantity: l.quantity, name: (item?.name as string) ?? null,
    price_cents: price, currency: (item?.currency as string) ?? null, available, active,
    fulfillment: (item?.fulfillment as string) ?? null, subtotal_cents: price === null ? null : price * l.quantity,
    purchasable: active && available !== null && available >= l.quantity, added_at: l.added_at.toISOString(),
  };
}

function sumBy<K>(lines: CartLine[], key: (l: CartLine) => K): Map<K, number> {
  const sums = new Map<K, number>();
  for (const l of lines) if (l.subtotal_cents !== null) sums.set(key(l), (sums.get(key(l)) ?? 0) + l.subtotal_cents);
  return sums;
}

/** One order per (shard, currency) group, as checkout would split the cart now. */
function preview(rows: LineRow[], lines: CartLine[]): CheckoutPreview[] {
  const groups = new Map<string, CheckoutPreview>();
  rows.forEach((r, i) => {
    const l = lines[i]!;
    const k = `${r.item_shard}|${l.currency}`;
    const g = groups.get(k) ?? { shard: r.item_shard, currency: l.currency ?? '', total_cents: 0, line_count: 0 };
    g.total_cents += l.subtotal_cents ?? 0;
    g.line_count++;
    groups.set(k, g);
  });
  return [...groups.values()];
}

export async function getCart(deps: Core & ReadSide, p: Principal): Promise<Cart> {
  const rows = await readLines(deps, p);
  const items = await readItems(deps, rows);
  const lines = rows.map((l) => toLine(l, items.get(l.item_shard)?.get(l.item_local)));
  const totals = [...sumBy(lines, (l) => l.currency!).entries()].map(([currency, total_cents]) =>
    ({ currency, total_cents }));
  const cart: Cart = { lines, line_count: lines.length, totals,
    purchasable: lines.length > 0 && lines.every((l) => l.purchasable) };
  if (deps.flags.enabled('new_checkout')) cart.checkout = preview(rows, lines);
  return cart;
}

/** Adds units of an item (a new line, or more on its line). The item must exist and be for sale. */
export async function addItem(deps: Core & ReadSide, p: Principal, itemId: string,
  quantity: number): Promise<{ created: boolean; cart: Cart }> {
  const { shard, local } = decodeRow('item', itemId, deps.shards.count);
  const item = await getItem(deps, itemId);
  if (!item.active) throw new EngineError('item_unavailable', `Item ${itemId} is not for sale`,
    { details: { item_id: itemId } });
  const created = await deps.shards.get(p.shard).transaction(async (q) => {
    await q.query(SQL.lock, [p.uuid]);
    const row = (await q.query(SQL.add, [p.uuid, shard, local, quantity, CART_LINES_MAX, LINE_QUANTITY_MAX])).rows[0];
    if (row) return row.created as boolean;
    const line = (await q.query(SQL.hasLine, [p.uuid, shard, local])).rows[0];
    if (!line) throw new EngineError('cart_full', `A cart holds at most ${CART_LINES_MAX} lines`,
      { details: { max_lines: CART_LINES_MAX } });
    throw new EngineError('cart_quantity_limit',
      `A cart line holds at most ${LINE_QUANTITY_MAX} units; this one has ${line.quantity as number}`,
      { details: { item_id: itemId, quantity: line.quantity, max_quantity: LINE_QUANTITY_MAX } });
  });
  return { created, cart: await getCart(deps, p) };
}

function lineKey(deps: Core & ReadSide, itemId: string): [number, number] {
  const { shard, local } = decodeRow('item', itemId, deps.shards.count);
  return [shard, local];
}

const notInCart = (itemId: string) => new EngineError('not_found', `Item ${itemId} is not in the cart`,
  { details: { item_id: itemId } });

export async function setQuantity(deps: Core & ReadSide, p: Principal, itemId: string,
  quantity: number): Promise<Cart> {
  const res = await deps.shards.get(p.shard).query(SQL.setQuantity, [p.uuid, ...lineKey(deps, itemId), quantity]);
  if (res.rowCount === 0) throw notInCart(itemId);
  return getCart(deps, p);
}

export async function removeItem(deps: Core & ReadSide, p: Principal, itemId: string): Promise<Cart> {
  const res = await deps.shards.get(p.shard).query(SQL.remove, [p.uuid, ...lineKey(deps, itemId)]);
  if (res.rowCount === 0) throw notInCart(itemId);
  return getCart(deps, p);
}

export async function emptyCart(deps: Core & ReadSide, p: Principal): Promise<Cart> {
  await deps.shards.get(p.shard).query(SQL.empty, [p.uuid]);
  return getCart(deps, p);
}

/**
 * Creates the orders of the cart's lines (split per shard, all or nothing, like
 * POST /v1/orders), then removes exactly the lines it ordered. Any refusal (sold out,
 * limit, not for sale) leaves the cart as it was.
 */
export async function checkout(deps: Core & ReadSide, p: Principal, requestKey: string | null): Promise<Order[]> {
  const lines = await readLines(deps, p);
  if (lines.length === 0) throw new EngineError('cart_empty');
  const orders = await createOrders(deps, p, lines.map((l) =>
    ({ item_id: encodeRow('item', l.item_shard, l.item_local), quantity: l.quantity })), requestKey);
  // The orders are made: a failure to tidy the cart must not read as a failed checkout.
  await deps.shards.get(p.shard).query(SQL.removeOrdered, [
    p.uuid, lines.map((l) => l.item_shard), lines.map((l) => l.item_local), lines.map((l) => l.rev),
  ]).catch((err: unknown) => log.warn('checked-out lines left in the cart', { customer: p.id, err }));
  return orders;
}
