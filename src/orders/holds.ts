// What holding stock needs around its statements (lifecycle-sql.ts): a checkout's lines
// summed per item, place_orders' refusals as client errors, and stock changes told to
// the cache and the stream.
import type { Core } from '../deps.js';
import { EngineError } from '../errors.js';
import { encodeRow } from '../router/ids.js';

export interface WantedLine { local: number; quantity: number }

/** Sums repeated items: two lines of one item must not each pass `available >= q` alone. */
export function sumLines(lines: WantedLine[]): WantedLine[] {
  const byItem = new Map<number, number>();
  for (const l of lines) byItem.set(l.local, (byItem.get(l.local) ?? 0) + l.quantity);
  return [...byItem.entries()].sort((a, b) => a[0] - b[0]).map(([local, quantity]) => ({ local, quantity }));
}

type Refusal = (itemId: () => string, hint: string) => EngineError;

const REFUSALS: Record<string, Refusal> = {
  BFNF1: (itemId) => new EngineError('not_found', `No such item ${itemId()}`, { details: { item_id: itemId() } }),
  BFIN1: (itemId) => new EngineError('item_unavailable', `Item ${itemId()} is not for sale`,
    { details: { item_id: itemId() } }),
  BFSO1: (itemId, hint) => new EngineError('sold_out', `Item ${itemId()} is sold out`,
    { details: { item_id: itemId(), available: Number(hint) } }),
  BFLM1: (itemId, hint) => new EngineError('purchase_limit', `At most ${hint} of item ${itemId()} per customer`,
    { details: { item_id: itemId(), max_per_customer: Number(hint) } }),
  BFCU1: () => new EngineError('mixed_currency'),
  BFRK1: () => new EngineError('idempotency_mismatch', 'This request key placed an order for other items'),
};

/** place_orders' refusals (SQLSTATE class BF, item id in DETAIL) as the errors clients see. */
export function refusal(err: unknown, shard: number): EngineError | null {
  const cause = (err instanceof EngineError ? err.cause : err) as { code?: string; detail?: string; hint?: string }
    | undefined;
  const make = cause?.code ? REFUSALS[cause.code] : undefined;
  if (!make) return null;
  return make(() => encodeRow('item', shard, Number(cause!.detail)), cause!.hint ?? '');
}

export interface StockChange { id: number; available: number }

/** Tells the cache and the stream; a writer awaits it so its client reads its own write. */
export async function announce(deps: Core, shard: number, items: StockChange[], reason: string): Promise<void> {
  await Promise.all(items.map((i) => deps.hooks.itemChanged({ id: encodeRow('item', shard, i.id), shard,
    available: i.available, reason })));
}
