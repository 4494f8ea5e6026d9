// Named statements of fulfilment: provider lines, the release claim, the stuck-order
// queue. The status changes fulfilment asks for are in src/orders/lifecycle-sql.ts.
import { PROVIDER_LINE_NOT_ACTIVE, providerFulfillments } from '../orders/lifecycle-sql.js';

export const SQL = {
  // A paid order of shipment and provider lines activates its credit before it ships.
  // Its fulfilment rows are written under the order's row lock while it is still paid,
  // so a cancel (which takes the same lock, then looks for them) either comes first and
  // stops the activation, or comes after and is refused: credit is never both activated
  // and refunded by a cancel.
  prepareMixed: {
    name: 'ful_prepare_mixed',
    text: `WITH o AS (SELECT id FROM orders WHERE id = $1 AND status = 'paid' FOR UPDATE),
           ${providerFulfillments('o')}
           SELECT (SELECT count(*)::int FROM o) AS paid`,
  },
  lines: {
    name: 'ful_lines',
    text: `SELECT item_id, quantity, status, activation_id, verify_attempts FROM fulfillments
           WHERE order_id = $1 ORDER BY item_id`,
  },
  setActivation: {
    name: 'ful_set_activation',
    text: `UPDATE fulfillments SET status = $3, activation_id = COALESCE($4, activation_id), last_error = $5,
      updated_at = now()
           WHERE order_id = $1 AND item_id = $2 AND status IN ('pending', 'activating')`,
  },
  countVerify: { name: 'ful_count_verify',
    text: 'UPDATE fulfillments SET verify_attempts = verify_attempts + 1 WHERE order_id = $1 AND item_id = $2' },
  // The release claim (release.ts): under the order's row lock, fenced on its status
  // ($2), the payment that placed it moves held -> releasing. A claim already taken
  // (its holder died) may be taken again: the gateway's release is idempotent.
  claimRelease: {
    name: 'ful_claim_release',
    text: `WITH o AS (SELECT id, payment_id FROM orders WHERE id = $1 AND status = ANY($2::text[])
      AND payment_id IS NOT NULL FOR UPDATE)
           UPDATE payments p SET escrow = 'releasing', updated_at = now() FROM o
            WHERE p.id = o.payment_id AND p.status = 'succeeded' AND p.escrow IN ('held', 'releasing')
           RETURNING p.id, p.gateway_session_id, p.amount_cents, p.currency`,
  },
  // A failed attempt moves the order to the back of the queue, so one order the
  // gateway keeps refusing cannot starve the ones behind it.
  touch: { name: 'ful_touch', text: 'UPDATE orders SET updated_at = now() WHERE id = $1' },
  stuck: {
    name: 'ful_stuck',
    text: `SELECT o.id FROM orders o WHERE o.status IN ('paid', 'fulfilling')
      AND o.updated_at < now() - make_interval(secs => $1)
             AND (NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.fulfillment = 'shipment')
                  OR EXISTS (${PROVIDER_LINE_NOT_ACTIVE}))
           ORDER BY o.updated_at LIMIT $2`,
  },
} as const;
