// Named statements that read orders (and prune recorded checkout refusals). The ones
// that change an order's status are in lifecycle-sql.ts.
import { AFTER_BOUND, CREATED_US } from '../router/scatter.js';

// An order's lines as one JSON column of a query on orders aliased o.
const LINES_JSON = `(SELECT json_agg(json_build_object('item_id', l.item_id, 'quantity', l.quantity, 'price_cents',
  l.price_cents,
     'fulfillment', l.fulfillment) ORDER BY l.item_id) FROM order_lines l WHERE l.order_id = o.id) AS lines`;

// The order row plus its lines, as one JSON-friendly row.
const ORDER_COLS = `o.id, o.customer_id, o.status, o.currency, o.total_cents, o.hold_expires_at, o.created_at,
  o.updated_at,
  (extract(epoch from o.created_at) * 1000000)::bigint AS created_us,
  ${LINES_JSON},
  (SELECT json_agg(to_jsonb(p) ORDER BY p.id) FROM payments p WHERE p.order_id = o.id) AS payments,
  (SELECT json_build_object('carrier', s.carrier, 'tracking', s.tracking, 'shipped_at', s.shipped_at, 'delivered_at',
    s.delivered_at)
     FROM shipments s WHERE s.order_id = o.id) AS shipment`;

const O_AFTER_BOUND = AFTER_BOUND.replace(/created_at|\bid\b/g, (m) => `o.${m}`);

export interface AdminFilter { status?: string; customerUuid?: string; categoryId?: number }

/**
 * Every customer's orders after a cursor bound, newest first ($1, $2 bound, $3 limit).
 * One named statement per combination of filters, so each is planned on its own index
 * (orders_created, orders_status_created, orders_customer_created); values stay bound.
 */
export function adminListStatement(f: AdminFilter, bound: { createdUs: string; local: number }, limit: number) {
  const params: unknown[] = [bound.createdUs, bound.local, limit];
  const where = [O_AFTER_BOUND];
  let variant = '';
  if (f.status !== undefined) {
    params.push(f.status);
    where.push(`o.status = $${params.length}`);
    variant += 's';
  }
  if (f.customerUuid !== undefined) {
    params.push(f.customerUuid);
    where.push(`o.customer_id = $${params.length}::uuid`);
    variant += 'u';
  }
  if (f.categoryId !== undefined) {
    params.push(f.categoryId);
    where.push(`EXISTS (SELECT 1 FROM order_lines l JOIN items i ON i.id = l.item_id WHERE l.order_id = o.id
      AND i.category_id = $${params.length}::bigint)`);
    variant += 'c';
  }
  const text = `SELECT ${ORDER_COLS} FROM orders o WHERE ${where.join(' AND ')}
    ORDER BY o.created_at DESC, o.id DESC LIMIT $3`;
  return { statement: { name: `ord_admin_list_${variant || 'all'}`, text }, params };
}

export const SQL = {
  orderById: { name: 'ord_by_id', text: `SELECT ${ORDER_COLS} FROM orders o WHERE o.id = $1` },
  listByCustomer: {
    name: 'ord_list_customer',
    text: `SELECT ${ORDER_COLS} FROM orders o WHERE o.customer_id = $3 AND ${AFTER_BOUND.replace(/created_at|\bid\b/g,
      (m) => `o.${m}`)}
           ORDER BY o.created_at DESC, o.id DESC LIMIT $4`,
  },
  // The order row and its lines, as fulfilment reads it (the row a payment placed, read again).
  withLines: {
    name: 'ord_with_lines',
    text: `SELECT o.id, o.customer_id, o.status, o.total_cents, o.currency, o.payment_id, o.hold_expires_at,
      ${LINES_JSON}
           FROM orders o WHERE o.id = $1`,
  },
  // Refusals recorded for request keys (sql/010), kept as long as idempotency keys.
  pruneRefusals: {
    name: 'ord_prune_refusals',
    text: `DELETE FROM checkout_refusals WHERE ctid IN (SELECT ctid FROM checkout_refusals
             WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)`,
  },
  events: {
    name: 'ord_events',
    text: 'SELECT from_status, to_status, actor, reason, created_at FROM order_events WHERE order_id = $1 ORDER BY id',
  },
} as const;
