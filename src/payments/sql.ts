// Named statements of payments. Every change is conditional on the current state;
// together with the deduplicated event id that makes each webhook apply at most once.
export const PAYMENT_COLS = `id, order_id, customer_id, status, method, amount_cents, currency, escrow,
  gateway_session_id,
  redirect_url, qr_payload, expires_at, captured_at, refund_reason, failure_reason, created_at, updated_at`;

export const SQL = {
  insertPayment: {
    name: 'pay_insert',
    text: `INSERT INTO payments (order_id, customer_id, method, amount_cents, currency, expires_at)
           SELECT id, customer_id, $2, total_cents, currency, hold_expires_at FROM orders
           WHERE id = $1 AND customer_id = $3 AND status = 'awaiting_payment' AND hold_expires_at > now()
           ON CONFLICT (order_id) WHERE status = 'pending' DO NOTHING
           RETURNING ${PAYMENT_COLS}`,
  },
  pendingForOrder: { name: 'pay_pending_for_order', text: `SELECT ${PAYMENT_COLS} FROM payments WHERE order_id = $1
    AND status = 'pending'` },
  byId: { name: 'pay_by_id', text: `SELECT ${PAYMENT_COLS} FROM payments WHERE id = $1` },
  attachSession: {
    name: 'pay_attach_session',
    text: `UPDATE payments SET gateway_session_id = $2, redirect_url = $3, qr_payload = $4, updated_at = now()
           WHERE id = $1 AND status = 'pending' AND (gateway_session_id IS NULL OR gateway_session_id = $2)
             RETURNING ${PAYMENT_COLS}`,
  },
  fail: {
    name: 'pay_fail',
    text: `UPDATE payments SET status = 'failed', failure_reason = $2, updated_at = now()
           WHERE id = $1 AND status = 'pending' RETURNING ${PAYMENT_COLS}`,
  },
  // An efficiency claim so two runners rarely call the gateway for the same refund;
  // the gateway's refund is idempotent and markRefunded is the real fence.
  claimRefund: {
    name: 'pay_claim_refund',
    text: `UPDATE payments SET refund_requested_at = now(), refund_reason = COALESCE(refund_reason, $2)
           WHERE id = $1 AND status = 'succeeded' AND escrow = 'held'
             AND (refund_requested_at IS NULL OR refund_requested_at < now() - interval '30 seconds')
           RETURNING ${PAYMENT_COLS}`,
  },
  markRefunded: {
    name: 'pay_mark_refunded',
    text: `UPDATE payments SET status = 'refunded', escrow = 'refunded', updated_at = now()
           WHERE id = $1 AND status = 'succeeded' AND escrow = 'held' RETURNING ${PAYMENT_COLS}`,
  },
  // Pending payments due for a poll of the gateway, oldest check first; picking one moves
  // its next check back with backoff ($3 s doubling, at most $4 s), so each poll is also
  // the rotation: the same batch is never picked twice in a row, and a payment whose
  // poll throws still goes to the back. A payment is always polled again just after its
  // expiry (its order's hold), so money that arrived with a lost webhook is found then at
  // the latest. SKIP LOCKED: two runners split the batch.
  duePending: {
    name: 'pay_due_pending',
    text: `UPDATE payments p SET checks = p.checks + 1,
             next_check_at = LEAST(now() + make_interval(secs => LEAST($4::float8, $3::float8 * power(2,
               LEAST(p.checks, 16)))),
                                   CASE WHEN p.expires_at > now() THEN p.expires_at + interval '1 second'
                                     ELSE 'infinity' END)
           WHERE p.id IN (SELECT id FROM payments WHERE status = 'pending' AND next_check_at <= now()
                            AND created_at < now() - make_interval(secs => $1)
                          ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING ${PAYMENT_COLS.split(',').map((c) => `p.${c.trim()}`).join(', ')}`,
  },
  // Succeeded money that no order holds on to: the order expired or was canceled
  // before the money arrived, or another payment placed it first.
  unclaimed: {
    name: 'pay_unclaimed',
    text: `SELECT p.id FROM payments p JOIN orders o ON o.id = p.order_id
           WHERE p.status = 'succeeded' AND p.escrow = 'held' AND p.updated_at < now() - make_interval(secs => $1)
             AND (p.refund_requested_at IS NULL OR p.refund_requested_at < now() - interval '30 seconds')
             AND (o.payment_id IS DISTINCT FROM p.id OR o.status IN ('expired', 'canceled', 'failed'))
           ORDER BY p.updated_at LIMIT $2`,
  },
  ledgerEntry: {
    name: 'ledger_entry',
    text: `INSERT INTO ledger_entries (transfer_id, order_id, payment_id, account, amount_cents, currency, kind)
           SELECT $1, $2, $3, leg.account, leg.amount, $6, $7
             FROM unnest($4::text[], $5::bigint[]) AS leg(account, amount)`,
  },
  ledgerSums: {
    name: 'ledger_sums',
    text: `SELECT currency, sum(amount_cents)::bigint AS sum, count(*)::int AS entries FROM ledger_entries
           GROUP BY currency`,
  },
  // Orders that are done with money yet still have a non-zero escrow balance.
  escrowLeft: {
    name: 'ledger_escrow_left',
    text: `SELECT o.id, o.status, sum(l.amount_cents)::bigint AS escrow FROM orders o JOIN ledger_entries l
      ON l.order_id = o.id
           WHERE l.account = 'escrow' AND o.status IN ('completed', 'refunded', 'canceled', 'expired')
           GROUP BY o.id, o.status HAVING sum(l.amount_cents) <> 0 LIMIT 100`,
  },
} as const;
