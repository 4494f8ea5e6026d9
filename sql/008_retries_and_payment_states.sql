-- Retries meet what they asked for, and payments wait in their own states.
--
-- place_order gains the request's hash: an order found by its request key answers a
-- retry only when it was made for the same request (else BFRK1, told as a mismatch),
-- and only while it is alive. A canceled or expired attempt (a multi-shard checkout
-- undone by compensation, say) releases its key, and the retry holds stock afresh.
-- The seven-argument form stays, as a wrapper, for workers of the previous release
-- that are still running during a rolling deploy.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS request_hash text;

CREATE FUNCTION place_order(
  p_customer uuid, p_items bigint[], p_qtys int[], p_ttl_s int, p_request_key text, p_checkout uuid, p_actor text,
  p_request_hash text)
RETURNS TABLE (order_id bigint, existing boolean, items jsonb, status text, currency text, total_cents bigint,
               hold_expires_at timestamptz, created_at timestamptz, updated_at timestamptz, lines jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_order bigint;
  v_expires timestamptz;
  v_row record;
  v_currency char(3);
  v_total bigint := 0;
  v_items jsonb := '[]'::jsonb;
  v_lines jsonb := '[]'::jsonb;
  v_created timestamptz;
  v_limit_ok boolean;
  v_found record;
BEGIN
  FOR attempt IN 1 .. 3 LOOP
    INSERT INTO orders (customer_id, status, currency, total_cents, hold_expires_at, request_key, request_hash, checkout_id)
    VALUES (p_customer, 'awaiting_payment', 'XXX', 0, now() + make_interval(secs => p_ttl_s), p_request_key, p_request_hash, p_checkout)
    ON CONFLICT (customer_id, request_key) DO NOTHING
    RETURNING id, orders.hold_expires_at, orders.created_at INTO v_order, v_expires, v_created;
    EXIT WHEN v_order IS NOT NULL;
    SELECT o.id, o.status, o.request_hash INTO v_found FROM orders o
     WHERE o.customer_id = p_customer AND o.request_key = p_request_key FOR UPDATE;
    CONTINUE WHEN NOT FOUND; -- a concurrent retry released the key: insert again
    IF v_found.request_hash IS NOT NULL AND p_request_hash IS NOT NULL AND v_found.request_hash <> p_request_hash THEN
      RAISE EXCEPTION 'request key used for another request' USING ERRCODE = 'BFRK1', DETAIL = v_found.id::text;
    END IF;
    IF v_found.status IN ('canceled', 'expired') THEN
      -- A dead attempt (undone by compensation, or its hold ran out) is never handed
      -- back as a success: it lets go of the key and this request runs afresh.
      UPDATE orders SET request_key = NULL WHERE id = v_found.id;
      CONTINUE;
    END IF;
    -- The same request ran here before (a retry after a crash): its order is the answer.
    RETURN QUERY SELECT o.id, true, '[]'::jsonb, o.status, o.currency::text, o.total_cents, o.hold_expires_at, o.created_at, o.updated_at,
      (SELECT jsonb_agg(jsonb_build_object('item_id', l.item_id, 'quantity', l.quantity, 'price_cents', l.price_cents,
         'fulfillment', l.fulfillment) ORDER BY l.item_id) FROM order_lines l WHERE l.order_id = o.id)
      FROM orders o WHERE o.id = v_found.id;
    RETURN;
  END LOOP;
  IF v_order IS NULL THEN
    RAISE EXCEPTION 'request key contended' USING ERRCODE = '40001';
  END IF;

  FOR i IN 1 .. cardinality(p_items) LOOP
    UPDATE items SET available = available - p_qtys[i], held = held + p_qtys[i], updated_at = now()
     WHERE id = p_items[i] AND active AND available >= p_qtys[i]
    RETURNING id, available, price_cents, currency, fulfillment, max_per_customer INTO v_row;
    IF NOT FOUND THEN
      PERFORM place_order_refusal(p_items[i]);
    END IF;
    IF v_currency IS NULL THEN v_currency := v_row.currency;
    ELSIF v_currency <> v_row.currency THEN
      RAISE EXCEPTION 'items of different currencies' USING ERRCODE = 'BFCU1', DETAIL = p_items[i]::text;
    END IF;
    IF v_row.max_per_customer IS NOT NULL THEN
      INSERT INTO customer_limits (customer_id, item_id, quantity) SELECT p_customer, p_items[i], p_qtys[i] WHERE p_qtys[i] <= v_row.max_per_customer
      ON CONFLICT (customer_id, item_id) DO UPDATE SET quantity = customer_limits.quantity + EXCLUDED.quantity
       WHERE customer_limits.quantity + EXCLUDED.quantity <= v_row.max_per_customer
      RETURNING true INTO v_limit_ok;
      IF v_limit_ok IS NULL THEN
        RAISE EXCEPTION 'purchase limit' USING ERRCODE = 'BFLM1', DETAIL = p_items[i]::text, HINT = v_row.max_per_customer::text;
      END IF;
      v_limit_ok := NULL;
    END IF;
    INSERT INTO holds (order_id, item_id, customer_id, quantity, expires_at) VALUES (v_order, p_items[i], p_customer, p_qtys[i], v_expires);
    INSERT INTO order_lines (order_id, item_id, quantity, price_cents, fulfillment) VALUES (v_order, p_items[i], p_qtys[i], v_row.price_cents, v_row.fulfillment);
    v_total := v_total + v_row.price_cents * p_qtys[i];
    v_items := v_items || jsonb_build_object('id', v_row.id, 'available', v_row.available);
    v_lines := v_lines || jsonb_build_object('item_id', p_items[i], 'quantity', p_qtys[i], 'price_cents', v_row.price_cents,
                                             'fulfillment', v_row.fulfillment);
  END LOOP;

  UPDATE orders SET total_cents = v_total, currency = v_currency WHERE id = v_order;
  INSERT INTO order_events (order_id, from_status, to_status, actor, reason) VALUES (v_order, NULL, 'awaiting_payment', p_actor, 'created');
  RETURN QUERY SELECT v_order, false, v_items, 'awaiting_payment'::text, v_currency::text, v_total, v_expires, v_created, v_created, v_lines;
END $$;


CREATE OR REPLACE FUNCTION place_order(
  p_customer uuid, p_items bigint[], p_qtys int[], p_ttl_s int, p_request_key text, p_checkout uuid, p_actor text)
RETURNS TABLE (order_id bigint, existing boolean, items jsonb, status text, currency text, total_cents bigint,
               hold_expires_at timestamptz, created_at timestamptz, updated_at timestamptz, lines jsonb)
LANGUAGE sql AS $$ SELECT * FROM place_order($1, $2, $3, $4, $5, $6, $7, NULL::text) $$;

-- Escrow is claimed for release (releasing) in the order's transaction before the
-- gateway is asked to release it, so a cancel can see the claim and refuse; the ledger
-- records the release (released) once the gateway confirmed.
ALTER TABLE payments DROP CONSTRAINT payments_escrow_check;
ALTER TABLE payments ADD CONSTRAINT payments_escrow_check CHECK (escrow IN ('none', 'held', 'releasing', 'released', 'refunded'));

-- Pending payments are polled in turn: each poll moves the payment's next check back
-- (with backoff), so a long tail of unpaid sessions never starves a newer one.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS next_check_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE payments ADD COLUMN IF NOT EXISTS checks int NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS payments_pending_next_check ON payments (next_check_at) WHERE status = 'pending';

-- A price is at least one cent (a gateway takes no payment of 0). NOT VALID: rows
-- written before are not rechecked; every new or changed row is.
ALTER TABLE items ADD CONSTRAINT items_price_positive CHECK (price_cents > 0) NOT VALID;
