// Named statements of orders and holds. Every state change is conditional on the
// current state (the fence); stock moves only through conditional UPDATEs.
import { AFTER_BOUND, CREATED_US } from '../router/scatter.js';

// The order row plus its lines, as one JSON-friendly row.
const ORDER_COLS = `o.id, o.customer_id, o.status, o.currency, o.total_cents, o.hold_expires_at, o.created_at, o.updated_at,
  (extract(epoch from o.created_at) * 1000000)::bigint AS created_us,
  (SELECT json_agg(json_build_object('item_id', l.item_id, 'quantity', l.quantity, 'price_cents', l.price_cents,
     'fulfillment', l.fulfillment) ORDER BY l.item_id) FROM order_lines l WHERE l.order_id = o.id) AS lines,
  (SELECT json_agg(to_jsonb(p) ORDER BY p.id) FROM payments p WHERE p.order_id = o.id) AS payments,
  (SELECT json_build_object('carrier', s.carrier, 'tracking', s.tracking, 'shipped_at', s.shipped_at, 'delivered_at', s.delivered_at)
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
    where.push(`EXISTS (SELECT 1 FROM order_lines l JOIN items i ON i.id = l.item_id WHERE l.order_id = o.id AND i.category_id = $${params.length}::bigint)`);
    variant += 'c';
  }
  const text = `SELECT ${ORDER_COLS} FROM orders o WHERE ${where.join(' AND ')} ORDER BY o.created_at DESC, o.id DESC LIMIT $3`;
  return { statement: { name: `ord_admin_list_${variant || 'all'}`, text }, params };
}

/**
 * The units per item of a CTE named `rel` of (item_id, quantity), after the item rows
 * are locked in ascending id order: the order place_orders takes them in, so a sweep,
 * a cancel and a checkout that share items never lock them crosswise (a deadlock).
 * The aggregate reads the whole locked set before any UPDATE above it runs.
 */
export const REL_PER_ITEM_LOCKED = `(SELECT r.item_id, sum(r.quantity)::int AS q FROM rel r
  JOIN (SELECT i.id FROM items i WHERE i.id IN (SELECT item_id FROM rel) ORDER BY i.id FOR UPDATE) lk ON lk.id = r.item_id
  GROUP BY r.item_id)`;

// Gives the units of released holds back: to stock, and to the customers' limits.
// Expects a CTE named `rel` of (item_id, quantity, customer_id).
const RETURN_STOCK = `
  it AS (UPDATE items i SET available = i.available + r.q, held = i.held - r.q, updated_at = now()
         FROM ${REL_PER_ITEM_LOCKED} r
         WHERE i.id = r.item_id RETURNING i.id, i.available),
  lim AS (UPDATE customer_limits c SET quantity = GREATEST(c.quantity - r.q, 0)
          FROM (SELECT customer_id, item_id, sum(quantity)::int AS q FROM rel
                WHERE item_id IN (SELECT id FROM it) GROUP BY customer_id, item_id) r -- items first, as place_orders
          WHERE c.customer_id = r.customer_id AND c.item_id = r.item_id RETURNING 1)`;

const ITEMS_JSON = `(SELECT coalesce(json_agg(json_build_object('id', id, 'available', available)), '[]'::json) FROM it) AS items`;

// Expires the orders picked by a CTE named `due` (locked FOR UPDATE SKIP LOCKED):
// status fenced on awaiting_payment, holds expired, stock and limits given back.
const EXPIRE_DUE = `
  exp AS (UPDATE orders o SET status = 'expired', updated_at = now() FROM due
          WHERE o.id = due.id AND o.status = 'awaiting_payment' RETURNING o.id),
  ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
         SELECT id, 'awaiting_payment', 'expired', $2, 'hold_expired' FROM exp RETURNING 1),
  rel AS (UPDATE holds h SET status = 'expired', ended_at = now() FROM exp
          WHERE h.order_id = exp.id AND h.status = 'active' RETURNING h.item_id, h.quantity, h.customer_id),
  ${RETURN_STOCK}
  SELECT (SELECT count(*)::int FROM exp) AS expired, (SELECT coalesce(json_agg(id), '[]'::json) FROM exp) AS orders, ${ITEMS_JSON}`;

export const SQL = {
  orderById: { name: 'ord_by_id', text: `SELECT ${ORDER_COLS} FROM orders o WHERE o.id = $1` },
  listByCustomer: {
    name: 'ord_list_customer',
    text: `SELECT ${ORDER_COLS} FROM orders o WHERE o.customer_id = $3 AND ${AFTER_BOUND.replace(/created_at|\bid\b/g, (m) => `o.${m}`)}
           ORDER BY o.created_at DESC, o.id DESC LIMIT $4`,
  },
  // The fence: a transition happens only from one of the named current states, and
  // writes its audit row in the same statement. Zero rows = someone else moved it.
  transition: {
    name: 'ord_transition',
    text: `WITH prev AS (SELECT id, status FROM orders WHERE id = $1 AND status = ANY($2::text[]) FOR UPDATE),
           upd AS (UPDATE orders o SET status = $3, updated_at = now() FROM prev WHERE o.id = prev.id
                   RETURNING o.id, prev.status AS from_status),
           ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                  SELECT id, from_status, $3, $4, $5 FROM upd RETURNING 1)
           SELECT from_status FROM upd`,
  },
  releaseHolds: {
    name: 'ord_release_holds',
    text: `WITH rel AS (UPDATE holds SET status = $2, ended_at = now() WHERE order_id = $1 AND status = 'active'
                        RETURNING item_id, quantity, customer_id),
           ${RETURN_STOCK}
           SELECT ${ITEMS_JSON}`,
  },
  // Cron sweep: a bounded batch of expired orders, skipping rows others hold.
  expireDue: {
    name: 'ord_expire_due',
    text: `WITH due AS (SELECT id FROM orders WHERE status = 'awaiting_payment' AND hold_expires_at <= now()
                        ORDER BY hold_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED),
           ${EXPIRE_DUE}`,
  },
  // Zero-lag expiry: the hold path reclaims expired holds on the items it wants.
  reclaimItems: {
    name: 'ord_reclaim_items',
    text: `WITH due AS (SELECT o.id FROM orders o
                        WHERE o.id IN (SELECT order_id FROM holds WHERE item_id = ANY($3::bigint[]) AND status = 'active'
                                         AND expires_at <= now())
                          AND o.status = 'awaiting_payment' AND o.hold_expires_at <= now()
                        LIMIT $1 FOR UPDATE SKIP LOCKED),
           ${EXPIRE_DUE}`,
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
