-- A shard's checkouts in one statement, many at a time (group commit).
--
-- place_orders takes a batch of checkout parts (jsonb array, each
-- {c customer, i item ids, q quantities, t hold ttl s, k request key, h request hash,
--  x checkout id, a actor, f folded}) and runs each as place_order did, in its own
-- subtransaction, so a refusal (sold out, limit, unknown item) refuses only its part;
-- the batch commits once. With more than one part, every item row of the batch is
-- locked first in ascending id order, so batches (and the sweeps, which lock in the
-- same order) never deadlock each other. A hot item's row is locked once per batch,
-- not once per order.
--
-- A folded part is a whole single-shard checkout with an Idempotency-Key, answered in
-- this one statement: a concurrent duplicate finds the key's advisory lock taken
-- (BFIP1: in progress), a refusal is recorded in checkout_refusals and replayed to a
-- retry, an order found by its key is replayed as it was made, and another request
-- under the same key is refused (BFRK1: mismatch). A sold-out refusal while expired
-- holds wait on its items is not recorded (BFSR1): the caller reclaims them and tries
-- again.
--
-- Each part's answer row carries its position (n), the order (ok) or the refusal's
-- SQLSTATE, DETAIL and HINT.
CREATE TABLE IF NOT EXISTS checkout_refusals (
  customer_id   uuid NOT NULL,
  request_key   text NOT NULL,
  request_hash  text NOT NULL,
  sqlstate      text NOT NULL,
  detail        text,
  hint          text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, request_key)
);
CREATE INDEX IF NOT EXISTS checkout_refusals_created ON checkout_refusals (created_at);

CREATE FUNCTION place_order_part(
  p_customer uuid, p_items bigint[], p_qtys int[], p_ttl_s int, p_request_key text, p_checkout uuid, p_actor text,
  p_request_hash text, p_replay boolean)
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
    IF p_replay THEN
      -- The order is this key's answer, as it was given: the order when it was made.
      RETURN QUERY SELECT o.id, true, '[]'::jsonb, 'awaiting_payment'::text, o.currency::text, o.total_cents, o.hold_expires_at, o.created_at, o.created_at,
        (SELECT jsonb_agg(jsonb_build_object('item_id', l.item_id, 'quantity', l.quantity, 'price_cents', l.price_cents,
           'fulfillment', l.fulfillment) ORDER BY l.item_id) FROM order_lines l WHERE l.order_id = o.id)
        FROM orders o WHERE o.id = v_found.id;
      RETURN;
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



-- The checkout of sql/008, now the part of a batch (replay false keeps its behaviour).
CREATE OR REPLACE FUNCTION place_order(
  p_customer uuid, p_items bigint[], p_qtys int[], p_ttl_s int, p_request_key text, p_checkout uuid, p_actor text,
  p_request_hash text)
RETURNS TABLE (order_id bigint, existing boolean, items jsonb, status text, currency text, total_cents bigint,
               hold_expires_at timestamptz, created_at timestamptz, updated_at timestamptz, lines jsonb)
LANGUAGE sql AS $$ SELECT * FROM place_order_part($1, $2, $3, $4, $5, $6, $7, $8, false) $$;

CREATE FUNCTION place_orders(p_parts jsonb)
RETURNS TABLE (n int, ok boolean, order_id bigint, existing boolean, items jsonb, status text, currency text, total_cents bigint,
               hold_expires_at timestamptz, created_at timestamptz, updated_at timestamptz, lines jsonb,
               err_state text, err_detail text, err_hint text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_part jsonb;
  v_n int := 0;
  v_folded boolean;
  v_items bigint[];
  v_all bigint[];
  v_ref record;
  r record;
  v_state text;
  v_detail text;
  v_hint text;
BEGIN
  IF jsonb_array_length(p_parts) > 1 THEN
    SELECT array_agg(DISTINCT x::bigint ORDER BY x::bigint) INTO v_all
      FROM jsonb_array_elements(p_parts) e, jsonb_array_elements_text(e->'i') x;
    PERFORM 1 FROM items WHERE id = ANY(v_all) ORDER BY id FOR UPDATE;
  END IF;
  FOR v_part IN SELECT value FROM jsonb_array_elements(p_parts) LOOP
    v_n := v_n + 1;
    v_folded := coalesce((v_part->>'f')::boolean, false);
    v_items := ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(v_part->'i') x);
    BEGIN
      IF v_folded THEN
        IF NOT pg_try_advisory_xact_lock(hashtextextended((v_part->>'c') || '/' || (v_part->>'k'), 0)) THEN
          RAISE EXCEPTION 'request key in progress' USING ERRCODE = 'BFIP1';
        END IF;
        SELECT * INTO v_ref FROM checkout_refusals WHERE customer_id = (v_part->>'c')::uuid AND request_key = v_part->>'k';
        IF FOUND THEN
          IF v_ref.request_hash <> v_part->>'h' THEN
            RAISE EXCEPTION 'request key used for another request' USING ERRCODE = 'BFRK1';
          END IF;
          RETURN QUERY SELECT v_n, false, NULL::bigint, true, NULL::jsonb, NULL::text, NULL::text, NULL::bigint,
            NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::jsonb, v_ref.sqlstate, v_ref.detail, v_ref.hint;
          CONTINUE;
        END IF;
      END IF;
      SELECT * INTO r FROM place_order_part((v_part->>'c')::uuid, v_items,
        ARRAY(SELECT x::int FROM jsonb_array_elements_text(v_part->'q') x), (v_part->>'t')::int, v_part->>'k',
        (v_part->>'x')::uuid, v_part->>'a', v_part->>'h', v_folded);
      RETURN QUERY SELECT v_n, true, r.order_id, r.existing, r.items, r.status, r.currency, r.total_cents,
        r.hold_expires_at, r.created_at, r.updated_at, r.lines, NULL::text, NULL::text, NULL::text;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
      IF v_state = 'BFSO1' AND EXISTS (SELECT 1 FROM holds WHERE item_id = ANY(v_items) AND status = 'active' AND expires_at <= now()) THEN
        v_state := 'BFSR1';
      ELSIF v_folded AND v_state IN ('BFNF1', 'BFIN1', 'BFSO1', 'BFLM1', 'BFCU1') THEN
        INSERT INTO checkout_refusals (customer_id, request_key, request_hash, sqlstate, detail, hint)
        VALUES ((v_part->>'c')::uuid, v_part->>'k', v_part->>'h', v_state, v_detail, v_hint) ON CONFLICT DO NOTHING;
      END IF;
      RETURN QUERY SELECT v_n, false, NULL::bigint, false, NULL::jsonb, NULL::text, NULL::text, NULL::bigint,
        NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::jsonb, v_state, v_detail, v_hint;
    END;
  END LOOP;
END $$;
