-- The paid path in three statements, each in autocommit with no client round trip
-- inside: a gateway event is checked, claimed and applied (apply_gateway_event), the
-- release is claimed (one UPDATE, src/fulfillment/sql.ts), and the completion is
-- recorded with its ledger transfer (complete_paid_order). Only functions are added:
-- the statements of the previous release keep working beside these during a deploy.

-- A transfer's legs, written inside the statement of the change they account for. One
-- transfer id for all legs; legs of 0 are left out. A transfer that does not balance is
-- a bug: it raises (BFIV1) and the whole change rolls back.
CREATE OR REPLACE FUNCTION ledger_transfer(
  p_order bigint, p_payment bigint, p_currency text, p_kind text, p_accounts text[], p_amounts bigint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_transfer uuid := gen_random_uuid();
BEGIN
  IF cardinality(p_accounts) IS DISTINCT FROM cardinality(p_amounts)
     OR (SELECT coalesce(sum(a), 0) FROM unnest(p_amounts) AS a) <> 0 THEN
    RAISE EXCEPTION 'invariant violated: a ledger transfer balances' USING ERRCODE = 'BFIV1';
  END IF;
  INSERT INTO ledger_entries (transfer_id, order_id, payment_id, account, amount_cents, currency, kind)
  SELECT v_transfer, p_order, p_payment, leg.account, leg.amount, p_currency, p_kind
    FROM unnest(p_accounts, p_amounts) AS leg(account, amount)
   WHERE leg.amount <> 0;
END $$;

-- One gateway event, applied at most once. The event must match its payment (amount,
-- currency, and the session once one is recorded); a mismatch writes nothing and is
-- answered as such, as is a payment that does not exist. Then the event id is claimed
-- (a duplicate stops here) and the event applied:
--   payment.succeeded: the money is recorded whatever we thought before (a late success
--     is still money) and moves customer -> escrow in the ledger; the order is placed
--     only while it awaits payment and its holds are valid (holds become sales, one
--     audit row). Captured but not placed (hold expired, canceled) is refunded by the
--     caller as unclaimed.
--   payment.declined / payment.expired: a pending payment ends failed / expired.
-- A placed order is answered with what fulfilment needs next (status, customer, the
-- payment that placed it, its lines), so the caller reads nothing more.
CREATE OR REPLACE FUNCTION apply_gateway_event(
  p_payment bigint, p_event text, p_type text, p_session text, p_amount numeric, p_currency text, p_actor text)
RETURNS TABLE (outcome text, order_id bigint, amount_cents bigint, currency text, captured boolean, placed boolean,
               order_status text, customer_id uuid, payment_id bigint, lines json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_pay record;
BEGIN
  captured := false;
  placed := false;
  SELECT p.order_id, p.amount_cents, p.currency::text AS currency, p.gateway_session_id INTO v_pay
    FROM payments p WHERE p.id = p_payment;
  IF NOT FOUND THEN
    outcome := 'missing';
    RETURN NEXT;
    RETURN;
  END IF;
  order_id := v_pay.order_id;
  amount_cents := v_pay.amount_cents;
  currency := v_pay.currency;
  IF v_pay.amount_cents <> p_amount OR v_pay.currency <> p_currency THEN
    outcome := 'amount_mismatch';
  ELSIF v_pay.gateway_session_id IS NOT NULL AND v_pay.gateway_session_id <> p_session THEN
    outcome := 'session_mismatch';
  ELSE
    INSERT INTO gateway_events (event_id, payment_id, type) VALUES (p_event, p_payment, p_type) ON CONFLICT (event_id) DO NOTHING;
    outcome := CASE WHEN FOUND THEN 'applied' ELSE 'duplicate' END;
  END IF;
  IF outcome <> 'applied' THEN
    RETURN NEXT;
    RETURN;
  END IF;

  IF p_type = 'payment.succeeded' THEN
    UPDATE payments p SET status = 'succeeded', escrow = 'held', captured_at = now(), updated_at = now(),
                          gateway_session_id = COALESCE(p.gateway_session_id, p_session)
     WHERE p.id = p_payment AND p.status IN ('pending', 'failed', 'expired');
    captured := FOUND;
    IF captured THEN
      PERFORM ledger_transfer(v_pay.order_id, p_payment, v_pay.currency, 'capture',
                              ARRAY['customer', 'escrow'], ARRAY[-v_pay.amount_cents, v_pay.amount_cents]);
      placed := place_paid_order(v_pay.order_id, p_payment, p_actor);
    END IF;
    IF placed THEN
      SELECT o.status, o.customer_id, o.payment_id,
             (SELECT json_agg(json_build_object('item_id', l.item_id, 'quantity', l.quantity, 'price_cents', l.price_cents,
                'fulfillment', l.fulfillment) ORDER BY l.item_id) FROM order_lines l WHERE l.order_id = o.id)
        INTO order_status, customer_id, payment_id, lines
        FROM orders o WHERE o.id = v_pay.order_id;
    END IF;
  ELSIF p_type = 'payment.declined' THEN
    UPDATE payments p SET status = 'failed', failure_reason = 'declined', updated_at = now()
     WHERE p.id = p_payment AND p.status = 'pending';
  ELSIF p_type = 'payment.expired' THEN
    UPDATE payments p SET status = 'expired', updated_at = now() WHERE p.id = p_payment AND p.status = 'pending';
  END IF;
  RETURN NEXT;
END $$;

-- Placing a paid order: only while it awaits payment and its holds are still valid.
-- Holds become sales (item rows locked in ascending order, as every statement that
-- moves stock of several items does); the payment that placed it is recorded once.
CREATE OR REPLACE FUNCTION place_paid_order(p_order bigint, p_payment bigint, p_actor text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  UPDATE orders o SET status = 'paid', payment_id = p_payment, updated_at = now()
   WHERE o.id = p_order AND o.status = 'awaiting_payment' AND o.hold_expires_at > now() AND o.payment_id IS NULL;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO order_events (order_id, from_status, to_status, actor, reason)
  VALUES (p_order, 'awaiting_payment', 'paid', p_actor, 'payment_succeeded');
  WITH rel AS (UPDATE holds h SET status = 'consumed', ended_at = now()
                WHERE h.order_id = p_order AND h.status = 'active' RETURNING h.item_id, h.quantity),
       c AS (SELECT r.item_id, sum(r.quantity)::int AS q FROM rel r
               JOIN (SELECT i.id FROM items i WHERE i.id IN (SELECT rr.item_id FROM rel rr) ORDER BY i.id FOR UPDATE) lk
                 ON lk.id = r.item_id
              GROUP BY r.item_id)
  UPDATE items i SET held = i.held - c.q, sold = i.sold + c.q, updated_at = now() FROM c WHERE i.id = c.item_id;
  RETURN true;
END $$;

-- Completing a paid order whose release was claimed and confirmed by the gateway, in one
-- statement: the fence (the order's status is one of p_from, under its row lock) with its
-- audit row, escrow released, the release transfer (legs as the caller computed them
-- from the order's lines), and for a shipment its delivery. False when the fence did not
-- hold (another runner completed it): nothing is written. A claimed release that is not
-- there, or a shipped order without one undelivered shipment, is a bug (BFIV1).
CREATE OR REPLACE FUNCTION complete_paid_order(
  p_order bigint, p_from text[], p_reason text, p_actor text, p_payment bigint,
  p_accounts text[], p_amounts bigint[], p_delivered_by text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_from text;
  v_currency text;
  v_delivered int;
BEGIN
  SELECT o.status INTO v_from FROM orders o WHERE o.id = p_order AND o.status = ANY (p_from) FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE orders o SET status = 'completed', updated_at = now() WHERE o.id = p_order;
  INSERT INTO order_events (order_id, from_status, to_status, actor, reason) VALUES (p_order, v_from, 'completed', p_actor, p_reason);
  UPDATE payments p SET escrow = 'released', updated_at = now()
   WHERE p.id = p_payment AND p.status = 'succeeded' AND p.escrow IN ('held', 'releasing')
  RETURNING p.currency INTO v_currency;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invariant violated: a claimed release is recorded once, by the completion that fenced it' USING ERRCODE = 'BFIV1';
  END IF;
  PERFORM ledger_transfer(p_order, p_payment, v_currency, 'release', p_accounts, p_amounts);
  IF p_delivered_by IS NOT NULL THEN
    UPDATE shipments s SET delivered_at = now(), delivered_by = p_delivered_by WHERE s.order_id = p_order AND s.delivered_at IS NULL;
    GET DIAGNOSTICS v_delivered = ROW_COUNT;
    IF v_delivered <> 1 THEN
      RAISE EXCEPTION 'invariant violated: a shipped order has one undelivered shipment' USING ERRCODE = 'BFIV1';
    END IF;
  END IF;
  RETURN true;
END $$;
