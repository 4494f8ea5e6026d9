// The public shapes of the catalog, built from their rows: what the API answers, what
// the read cache holds (CachedItem) and what only admins see (AdminItem).
import { encodeRow } from '../router/ids.js';

export type Fulfillment = 'instant' | 'shipment' | 'provider';

export interface Category { id: string; name: string; shard: number }

export interface Item {
  id: string; category_id: string; name: string; description: string; price_cents: number; currency: string;
  available: number; fulfillment: Fulfillment; active: boolean; max_per_customer: number | null;
  created_at: string; updated_at: string;
}

/** What the cache holds: the public item, and whether expired holds wait to be reclaimed (for the gate). */
export interface CachedItem extends Item { reclaimable?: boolean }

/** What only admins see: where every unit is. available + held + sold = stocked. */
export interface AdminItem extends Item { held: number; sold: number; stocked: number }

type Row = Record<string, unknown>;

export function toItem(shard: number, r: Row): AdminItem {
  return {
    id: encodeRow('item', shard, r.id as number), category_id: String(r.category_id), name: r.name as string,
    description: r.description as string, price_cents: r.price_cents as number, currency: r.currency as string,
    available: r.available as number, fulfillment: r.fulfillment as Fulfillment, active: r.active as boolean,
    max_per_customer: (r.max_per_customer as number | null) ?? null, created_at: (r.created_at as Date).toISOString(),
    updated_at: (r.updated_at as Date).toISOString(), held: r.held as number, sold: r.sold as number,
    stocked: r.stocked as number,
  };
}

export function publicItem(item: AdminItem): Item {
  const { held: _h, sold: _s, stocked: _t, ...pub } = item;
  return pub;
}
