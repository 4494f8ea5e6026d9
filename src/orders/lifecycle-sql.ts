// Every statement that changes an order's status, and nothing else does (checked by
// test/structure.test.ts). Each is fenced on the current status (zero rows: someone else
// moved it first) and writes its audit row in order_events in the same statement; the
// three that are SQL functions (place_orders, apply_gateway_event, complete_paid_order)
// do both inside the function. Only lifecycle.ts (and checkout.ts, its group commit)
// runs them.

/**
 * The units per item of a CTE named `rel` of (item_id, quantity), after the item rows
 * are locked in ascending id order: the order place_orders takes them in, so a sweep,
 * a cancel and a checkout that share items never lock them crosswise (a deadlock).
 * The aggregate reads the whole locked set before any UPDATE above it runs.
 */
const REL_PER_ITEM_LOCKED = `(SELECT r.item_id, sum(r.quantity)::int AS q FROM rel r
  JOIN (SELECT i.id FROM items i WHERE i.id IN (SELECT item_id FROM rel) ORDER BY i.id FOR UPDATE) lk
    ON lk.id = r.item_id
  GROUP BY r.item_id)`;

// Gives units back to the customers' limits. Expects CTEs `rel` (item_id, quantity,
// customer_id) and `it` (the item rows updated): items first, as place_orders.
const RETURN_LIMITS = `
  lim AS (UPDATE customer_limits c SET quantity = GREATEST(c.quantity - r.q, 0)
          FROM (SELECT customer_id, item_id, sum(quantity)::int AS q FROM rel
                WHERE item_id IN (SELECT id FROM it) GROUP BY customer_id, item_id) r
          WHERE c.customer_id = r.customer_id AND c.item_id = r.item_id RETURNING 1)`;

// Gives the units of released holds back: to stock, and to the customers' limits.
const RETURN_STOCK = `
  it AS (UPDATE items i SET available = i.available + r.q, held = i.held - r.q, updated_at = now()
         FROM ${REL_PER_ITEM_LOCKED} r
         WHERE i.id = r.item_id RETURNING i.id, i.available),
  ${RETURN_LIMITS}`;

const ITEMS_JSON = `(SELECT coalesce(json_agg(json_build_object('id', id, 'available', available)), '[]'::json)
  FROM it) AS items`;

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
  SELECT (SELECT count(*)::int FROM exp) AS expired, (SELECT coalesce(json_agg(id), '[]'::json)
    FROM exp) AS orders, ${ITEMS_JSON}`;

/**
 * A provider line of the order aliased o whose credit is not active (yet): such an order
 * cannot ship, and the stuck-order cron resumes it.
 */
export const PROVIDER_LINE_NOT_ACTIVE = `SELECT 1 FROM order_lines pl WHERE pl.order_id = o.id
  AND pl.fulfillment = 'provider'
  AND NOT EXISTS (SELECT 1 FROM fulfillments pf WHERE pf.order_id = pl.order_id AND pf.item_id = pl.item_id
    AND pf.status = 'active')`;

/** A CTE `f` writing the fulfilment rows of the provider lines of the order in the CTE named `of`. */
export const providerFulfillments = (of: string) => `f AS (INSERT INTO fulfillments (order_id, item_id, quantity)
  SELECT l.order_id, l.item_id, l.quantity FROM order_lines l JOIN ${of} ON ${of}.id = l.order_id
  WHERE l.fulfillment = 'provider' ON CONFLICT DO NOTHING RETURNING 1)`;

export const SQL = {
  // (none) -> awaiting_payment: a batch of checkout parts in one statement (sql/010;
  // group commit in checkout.ts). The bench's pgbench ceiling runs it too.
  placeOrders: {
    name: 'ord_place_batch',
    text: `SELECT n, ok, order_id AS id, existing, items, status, currency, total_cents, hold_expires_at, created_at,
      updated_at, lines,
                  err_state, err_detail, err_hint
           FROM place_orders($1::jsonb) ORDER BY n`,
  },
  // The general fence: from one of the named states ($2) to $3, by $4 for reason $5.
  transition: {
    name: 'ord_transition',
    text: `WITH prev AS (SELECT id, status FROM orders WHERE id = $1 AND status = ANY($2::text[]) FOR UPDATE),
           upd AS (UPDATE orders o SET status = $3, updated_at = now() FROM prev WHERE o.id = prev.id
                   RETURNING o.id, prev.status AS from_status),
           ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                  SELECT id, from_status, $3, $4, $5 FROM upd RETURNING 1)
           SELECT from_status FROM upd`,
  },
  // The active holds of an order ended as $2 (released), their units given back.
  releaseHolds: {
    name: 'ord_release_holds',
    text: `WITH rel AS (UPDATE holds SET status = $2, ended_at = now() WHERE order_id = $1 AND status = 'active'
                        RETURNING item_id, quantity, customer_id),
           ${RETURN_STOCK}
           SELECT ${ITEMS_JSON}`,
  },
  // awaiting_payment -> expired, by the cron: a bounded batch, skipping rows others hold.
  expireDue: {
    name: 'ord_expire_due',
    text: `WITH due AS (SELECT id FROM orders WHERE status = 'awaiting_payment' AND hold_expires_at <= now()
                        ORDER BY hold_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED),
           ${EXPIRE_DUE}`,
  },
  // awaiting_payment -> expired, zero-lag: the hold path reclaims expired holds on the items it wants.
  reclaimItems: {
    name: 'ord_reclaim_items',
    text: `WITH due AS (SELECT o.id FROM orders o
                        WHERE o.id IN (SELECT order_id FROM holds WHERE item_id = ANY($3::bigint[])
                          AND status = 'active'
                                         AND expires_at <= now())
                          AND o.status = 'awaiting_payment' AND o.hold_expires_at <= now()
                        LIMIT $1 FOR UPDATE SKIP LOCKED),
           ${EXPIRE_DUE}`,
  },
  // awaiting_payment -> paid: a gateway event checked, claimed by id and applied in one
  // statement (sql/009, apply_gateway_event): a success captures, posts the capture
  // transfer and places the order, answering with the placed order's lines for
  // fulfilment. $5 is numeric so an absurd amount is a mismatch, not a cast error.
  applyPaymentEvent: {
    name: 'pay_apply_event',
    text: `SELECT outcome, order_id, amount_cents, currency, captured, placed, order_status, customer_id, payment_id,
      lines
           FROM apply_gateway_event($1::bigint, $2::text, $3::text, $4::text, $5::numeric, $6::text, $7::text)`,
  },
  // paid, fulfilling or shipped -> refunded, in the refund's transaction: only an order
  // this payment ($2) placed. One row when it moved.
  refundedIfPlacedBy: {
    name: 'pay_order_refunded',
    text: `WITH prev AS (SELECT id, status FROM orders WHERE id = $1 AND payment_id = $2
      AND status IN ('paid', 'fulfilling', 'shipped') FOR UPDATE),
           upd AS (UPDATE orders o SET status = 'refunded', updated_at = now() FROM prev WHERE o.id = prev.id
                   RETURNING o.id, prev.status AS from_status)
           INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
             SELECT id, from_status, 'refunded', 'system', $3 FROM upd`,
  },
  lockPaid: { name: 'pay_lock_paid', text: `SELECT id FROM orders WHERE id = $1 AND status = 'paid' FOR UPDATE` },
  // paid -> canceled. Credit whose activation has begun (an order of shipment and
  // provider lines) is not refunded by a cancel, nor is escrow whose release was claimed
  // (fulfillment/release.ts). Answers the payment to refund.
  cancelPaid: {
    name: 'pay_cancel_paid',
    text: `WITH prev AS (SELECT id, payment_id FROM orders WHERE id = $1 AND status = 'paid'
                       AND NOT EXISTS (SELECT 1 FROM fulfillments f WHERE f.order_id = $1)
                       AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = $1 AND p.escrow = 'releasing') FOR
                         UPDATE),
           upd AS (UPDATE orders o SET status = 'canceled', updated_at = now() FROM prev WHERE o.id = prev.id
             RETURNING o.id, prev.payment_id),
           ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                  SELECT id, 'paid', 'canceled', $2, 'requested_refund' FROM upd RETURNING 1)
           SELECT payment_id FROM upd`,
  },
  // Units sold to an order that is being unwound go back to stock and to the limits.
  unsell: {
    name: 'pay_unsell',
    text: `WITH rel AS (UPDATE holds SET status = 'released', ended_at = now() WHERE order_id = $1
      AND status = 'consumed'
                        RETURNING item_id, quantity, customer_id),
           it AS (UPDATE items i SET available = i.available + r.q, sold = i.sold - r.q, updated_at = now()
                  FROM ${REL_PER_ITEM_LOCKED} r WHERE i.id = r.item_id
                  RETURNING i.id, i.available),
           ${RETURN_LIMITS}
           SELECT ${ITEMS_JSON}`,
  },
  // paid -> fulfilling, with the fulfilment rows of its provider lines.
  startFulfilling: {
    name: 'ful_start',
    text: `WITH prev AS (SELECT id FROM orders WHERE id = $1 AND status = 'paid' FOR UPDATE),
           upd AS (UPDATE orders o SET status = 'fulfilling', updated_at = now() FROM prev WHERE o.id = prev.id
             RETURNING o.id),
           ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                  SELECT id, 'paid', 'fulfilling', 'system', 'provider_activation' FROM upd RETURNING 1),
           ${providerFulfillments('upd')}
           SELECT (SELECT count(*)::int FROM upd) AS started`,
  },
  // paid -> shipped for orders with shipment lines, with its shipment row and audit row.
  ship: {
    name: 'ful_ship',
    text: `WITH prev AS (SELECT o.id FROM orders o WHERE o.id = $1 AND o.status = 'paid'
                          AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id
                            AND l.fulfillment = 'shipment')
                          AND NOT EXISTS (${PROVIDER_LINE_NOT_ACTIVE}) FOR UPDATE),
           upd AS (UPDATE orders o SET status = 'shipped', updated_at = now() FROM prev WHERE o.id = prev.id
             RETURNING o.id, o.customer_id),
           ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                  SELECT id, 'paid', 'shipped', $4, 'shipped' FROM upd RETURNING 1),
           sh AS (INSERT INTO shipments (order_id, carrier, tracking, shipped_by) SELECT id, $2, $3, $4 FROM upd
             RETURNING 1)
           SELECT customer_id FROM upd`,
  },
  // paid, fulfilling or shipped -> completed (sql/009, complete_paid_order): fenced on the
  // order's status ($2) under its row lock, closed by $4 for reason $3 with its audit row;
  // escrow released, the release transfer ($6 accounts, $7 amounts) posted, and for a
  // delivery ($8) the shipment delivered. False when the fence did not hold.
  complete: {
    name: 'ful_complete_paid',
    text: `SELECT complete_paid_order($1::bigint, $2::text[], $3::text, $4::text, $5::bigint, $6::text[], $7::bigint[],
      $8::text) AS completed`,
  },
} as const;
