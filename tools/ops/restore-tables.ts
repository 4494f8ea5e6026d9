// What a restore drill compares between a shard restored to a time and the live shard:
// the tables that record facts the engine acknowledged to someone (a category or an
// item created, an account opened, an order placed, a payment started, money moved, a
// transition, a webhook applied, a shipment, a refusal a retry must replay), and of each
// only the columns no later statement may change. Columns that move on legitimately
// (statuses, stock counts, an item's price, a profile, payments.gateway_session_id set
// after the insert, orders.payment_id set by the payment, orders.request_key let go when
// the order dies) differ between the target and now without anything being wrong, so
// they are left out. Append-only tables (ledger_entries, order_events, gateway_events,
// checkout_refusals) are compared in full.
//
// Left out entirely: tables whose rows are working state rather than facts (carts,
// sessions, idempotency_keys, email_index, customer_limits, fulfillments, outbox,
// feature_flags). The invariants checked on the restored copy cover the state tables'
// consistency (stock, holds, per-customer counts).

export type KeyType = 'bigint' | 'uuid' | 'text';

export interface Table {
  name: string;
  /** FROM clause; the table is aliased `t`. */
  from: string;
  /** The primary key, in index order: rows are paged and matched by it. */
  key: { expr: string; type: KeyType }[];
  /** The immutable columns, compared as JSON text. */
  cols: string[];
  /** When the row was made (its transaction's start: the columns default to now()). */
  time: string;
  /**
   * Rows the engine's retention job deletes after a window (src/cron/jobs.ts prune:
   * outbox, idempotency_keys, checkout_refusals), so a restored row missing from the
   * live shard may be gone legitimately.
   */
  pruned?: boolean;
}

const id = [{ expr: 't.id', type: 'bigint' as const }];

export const TABLES: Table[] = [
  // name never changes (no statement renames a category).
  { name: 'categories', from: 'categories t', key: id, cols: ['t.id', 't.name', 't.created_at'], time: 't.created_at' },
  // name, description, price, active, max_per_customer and the stock counts change.
  { name: 'items', from: 'items t', key: id, cols: ['t.id', 't.category_id', 't.currency', 't.fulfillment', 't.created_at'], time: 't.created_at' },
  // The profile, password, email and deleted_at change (a deleted account is anonymized in place).
  { name: 'users', from: 'users t', key: [{ expr: 't.id', type: 'uuid' }], cols: ['t.id', 't.role', 't.created_at'], time: 't.created_at' },
  // status, updated_at, payment_id and request_key change; total and currency are set in the placing transaction.
  {
    name: 'orders', from: 'orders t', key: id,
    cols: ['t.id', 't.customer_id', 't.currency', 't.total_cents', 't.hold_expires_at', 't.checkout_id', 't.created_at'], time: 't.created_at',
  },
  // Never updated; written with their order, so the order's time is theirs.
  {
    name: 'order_lines', from: 'order_lines t JOIN orders o ON o.id = t.order_id',
    key: [{ expr: 't.order_id', type: 'bigint' }, { expr: 't.item_id', type: 'bigint' }],
    cols: ['t.order_id', 't.item_id', 't.quantity', 't.price_cents', 't.fulfillment'], time: 'o.created_at',
  },
  // status and ended_at change.
  {
    name: 'holds', from: 'holds t', key: id,
    cols: ['t.id', 't.order_id', 't.item_id', 't.customer_id', 't.quantity', 't.expires_at', 't.created_at'], time: 't.created_at',
  },
  // status, escrow, the gateway session, capture and refund columns, the poll schedule change.
  {
    name: 'payments', from: 'payments t', key: id,
    cols: ['t.id', 't.order_id', 't.customer_id', 't.method', 't.amount_cents', 't.currency', 't.expires_at', 't.created_at'], time: 't.created_at',
  },
  // Append-only: every column.
  {
    name: 'ledger_entries', from: 'ledger_entries t', key: id,
    cols: ['t.id', 't.transfer_id', 't.order_id', 't.payment_id', 't.account', 't.amount_cents', 't.currency', 't.kind', 't.created_at'], time: 't.created_at',
  },
  // Append-only (a trigger refuses UPDATE and DELETE): every column.
  {
    name: 'order_events', from: 'order_events t', key: id,
    cols: ['t.id', 't.order_id', 't.from_status', 't.to_status', 't.actor', 't.reason', 't.created_at'], time: 't.created_at',
  },
  // Claimed once per gateway event, never updated: every column.
  {
    name: 'gateway_events', from: 'gateway_events t', key: [{ expr: 't.event_id', type: 'text' }],
    cols: ['t.event_id', 't.payment_id', 't.type', 't.received_at'], time: 't.received_at',
  },
  // delivered_at and delivered_by are set later.
  {
    name: 'shipments', from: 'shipments t', key: [{ expr: 't.order_id', type: 'bigint' }],
    cols: ['t.order_id', 't.carrier', 't.tracking', 't.shipped_at', 't.shipped_by'], time: 't.shipped_at',
  },
  // Written once (ON CONFLICT DO NOTHING), deleted by retention after IDEMPOTENCY_RETENTION_S.
  {
    name: 'checkout_refusals', from: 'checkout_refusals t',
    key: [{ expr: 't.customer_id', type: 'uuid' }, { expr: 't.request_key', type: 'text' }],
    cols: ['t.customer_id', 't.request_key', 't.request_hash', 't.sqlstate', 't.detail', 't.hint', 't.created_at'], time: 't.created_at', pruned: true,
  },
];

/** Bind parameters of every page query, in this order. */
export interface PageBounds { cutoff: string; target: string; prunedBefore: string; limit: number; after: string[] | null; upTo: string[] | null }

/**
 * One page of a table in key order: its rows after `after` and up to `upTo` (keys, as
 * text), at most `limit`. Each row carries its key and immutable columns as JSON text,
 * its key columns as text (the next page's bound), and its time against the cutoff
 * (due: must be in the restored copy), the target (late: cannot be in it) and the
 * retention window (old: retention may have deleted it since). Keys are compared by
 * each database itself, in its own collation: the restored copy is a physical copy of
 * the live shard, so both order text keys the same way, and the bounds of one side's
 * page select the same range on the other.
 */
export function pageQuery(t: Table, b: PageBounds): { text: string; values: unknown[] } {
  const values: unknown[] = [b.cutoff, b.target, b.prunedBefore, b.limit];
  const bound = (keys: string[]) => `(${t.key.map((k, i) => { values.push(keys[i]); return `$${values.length}::${k.type}`; }).join(', ')})`;
  const tuple = `(${t.key.map((k) => k.expr).join(', ')})`;
  const where = [b.after ? `${tuple} > ${bound(b.after)}` : null, b.upTo ? `${tuple} <= ${bound(b.upTo)}` : null].filter(Boolean);
  const text = `SELECT json_build_array(${t.key.map((k) => k.expr).join(', ')})::text AS key,
      ${t.key.map((k, i) => `(${k.expr})::text AS k${i}`).join(', ')},
      json_build_array(${t.cols.join(', ')})::text AS val,
      ${t.time} <= $1::timestamptz AS due, ${t.time} > $2::timestamptz AS late, ${t.time} < $3::timestamptz AS old
    FROM ${t.from}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}
    ORDER BY ${t.key.map((k) => k.expr).join(', ')} LIMIT $4`;
  return { text, values };
}
