// A provider line of the order aliased o whose credit is not active (yet): such an order
// cannot ship, and the stuck-order cron resumes it.
const PROVIDER_LINE_NOT_ACTIVE = `SELECT 1 FROM order_lines pl WHERE pl.order_id = o.id AND pl.fulfillment = 'provider'
  AND NOT EXISTS (SELECT 1 FROM fulfillments pf WHERE pf.order_id = pl.order_id AND pf.item_id = pl.item_id AND pf.status = 'active')`;

export const SQL = {
  startFulfilling: {
    name: 'ful_start',
    text: `WITH prev AS (SELECT id FROM orders WHERE id = $1 AND status = 'paid' FOR UPDATE),
           upd AS (UPDATE orders o SET status = 'fulfilling', updated_at = now() FROM prev WHERE o.id = prev.id RETURNING o.id),
           ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                  SELECT id, 'paid', 'fulfilling', 'system', 'provider_activation' FROM upd RETURNING 1),
           f AS (INSERT INTO fulfillments (order_id, item_id, quantity)
                 SELECT l.order_id, l.item_id, l.quantity FROM order_lines l JOIN upd ON upd.id = l.order_id
                 WHERE l.fulfillment = 'provider' ON CONFLICT DO NOTHING RETURNING 1)
           SELECT (SELECT count(*)::int FROM upd) AS started`,
  },
  // A paid order of shipment and provider lines activates its credit before it ships.
  // Its fulfilment rows are written under the order's row lock while it is still paid,
  // so a cancel (which takes the same lock, then looks for them) either comes first and
  // stops the activation, or comes after and is refused: credit is never both activated
  // and refunded by a cancel.
  prepareMixed: {
    name: 'ful_prepare_mixed',
    text: `WITH o AS (SELECT id FROM orders WHERE id = $1 AND status = 'paid' FOR UPDATE),
           f AS (INSERT INTO fulfillments (order_id, item_id, quantity)
                 SELECT l.order_id, l.item_id, l.quantity FROM order_lines l JOIN o ON o.id = l.order_id
                 WHERE l.fulfillment = 'provider' ON CONFLICT DO NOTHING RETURNING 1)
           SELECT (SELECT count(*)::int FROM o) AS paid`,
  },
  lines: { name: 'ful_lines', text: 'SELECT item_id, quantity, status, activation_id, verify_attempts FROM fulfillments WHERE order_id = $1 ORDER BY item_id' },
  setActivation: {
    name: 'ful_set_activation',
    text: `UPDATE fulfillments SET status = $3, activation_id = COALESCE($4, activation_id), last_error = $5, updated_at = now()
           WHERE order_id = $1 AND item_id = $2 AND status IN ('pending', 'activating')`,
  },
  countVerify: { name: 'ful_count_verify', text: 'UPDATE fulfillments SET verify_attempts = verify_attempts + 1 WHERE order_id = $1 AND item_id = $2' },
  // The release claim (release.ts): under the order's row lock, fenced on its status
  // ($2), the payment that placed it moves held -> releasing. A claim already taken
  // (its holder died) may be taken again: the gateway's release is idempotent.
  claimRelease: {
    name: 'ful_claim_release',
    text: `WITH o AS (SELECT id, payment_id FROM orders WHERE id = $1 AND status = ANY($2::text[]) AND payment_id IS NOT NULL FOR UPDATE)
           UPDATE payments p SET escrow = 'releasing', updated_at = now() FROM o
            WHERE p.id = o.payment_id AND p.status = 'succeeded' AND p.escrow IN ('held', 'releasing')
           RETURNING p.id, p.gateway_session_id, p.amount_cents, p.currency`,
  },
  // Completion (sql/009, complete_paid_order): fenced on the order's status ($2) under its
  // row lock, closed by $4 for reason $3 with its audit row; escrow released, the release
  // transfer ($6 accounts, $7 amounts) posted, and for a delivery ($8) the shipment
  // delivered. False when the fence did not hold.
  complete: {
    name: 'ful_complete_paid',
    text: `SELECT complete_paid_order($1::bigint, $2::text[], $3::text, $4::text, $5::bigint, $6::text[], $7::bigint[], $8::text) AS completed`,
  },
  // paid -> shipped for orders with shipment lines, with its shipment row and audit row.
  ship: {
    name: 'ful_ship',
    text: `WITH prev AS (SELECT o.id FROM orders o WHERE o.id = $1 AND o.status = 'paid'
                          AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.fulfillment = 'shipment')
                          AND NOT EXISTS (${PROVIDER_LINE_NOT_ACTIVE}) FOR UPDATE),
           upd AS (UPDATE orders o SET status = 'shipped', updated_at = now() FROM prev WHERE o.id = prev.id RETURNING o.id, o.customer_id),
           ev AS (INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
                  SELECT id, 'paid', 'shipped', $4, 'shipped' FROM upd RETURNING 1),
           sh AS (INSERT INTO shipments (order_id, carrier, tracking, shipped_by) SELECT id, $2, $3, $4 FROM upd RETURNING 1)
           SELECT customer_id FROM upd`,
  },
  // A failed attempt moves the order to the back of the queue, so one order the
  // gateway keeps refusing cannot starve the ones behind it.
  touch: { name: 'ful_touch', text: 'UPDATE orders SET updated_at = now() WHERE id = $1' },
  stuck: {
    name: 'ful_stuck',
    text: `SELECT o.id FROM orders o WHERE o.status IN ('paid', 'fulfilling') AND o.updated_at < now() - make_interval(secs => $1)
             AND (NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.fulfillment = 'shipment')
                  OR EXISTS (${PROVIDER_LINE_NOT_ACTIVE}))
           ORDER BY o.updated_at LIMIT $2`,
  },
} as const;
