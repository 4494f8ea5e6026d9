-- One shard's part of a checkout as ONE statement: the order row, every hold (a
-- conditional UPDATE per item, in the ascending item order the caller passes, so
-- concurrent orders lock rows in the same order), the per-customer limits, the lines,
-- the total and the audit row. Called in autocommit, so a hot item's row lock lives
-- only from its UPDATE to the commit, with no client round trip in between. Any
-- refusal raises and the whole statement rolls back: all lines or none.
-- Refusals carry their own SQLSTATEs (class BF) and the item id in DETAIL:
--   BFNF1 no such item, BFIN1 not for sale, BFSO1 sold out, BFLM1 purchase limit,
--   BFCU1 items of different currencies.
CREATE FUNCTION place_order(
  p_customer uuid, p_items bigint[], p_qtys int[], p_ttl_s int, p_request_key text, p_checkout uuid, p_actor text)
RETURNS TABLE (order_id bigint, existing boolean, items jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  v_order bigint;
  v_expires timestamptz;
  v_row record;
  v_currency char(3);
  v_total bigint := 0;
  v_items jsonb := '[]'::jsonb;
  v_limit_ok boolean;
BEGIN
  INSERT INTO orders (customer_id, status, currency, total_cents, hold_expires_at, request_key, checkout_id)
  VALUES (p_customer, 'awaiting_payment', 'XXX', 0, now() + make_interval(secs => p_ttl_s), p_request_key, p_checkout)
  ON CONFLICT (customer_id, request_key) DO NOTHING
  RETURNING id, hold_expires_at INTO v_order, v_expires;
  IF v_order IS NULL THEN
    -- The same request ran here before (a retry after a crash): its order is the answer.
    RETURN QUERY SELECT o.id, true, '[]'::jsonb FROM orders o WHERE o.customer_id = p_customer AND o.request_key = p_request_key;
    RETURN;
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
  END LOOP;

  UPDATE orders SET total_cents = v_total, currency = v_currency WHERE id = v_order;
  INSERT INTO order_events (order_id, from_status, to_status, actor, reason) VALUES (v_order, NULL, 'awaiting_payment', p_actor, 'created');
  RETURN QUERY SELECT v_order, false, v_items;
END $$;

-- Why an item could not be held: raised with the item id so the caller can name it.
CREATE FUNCTION place_order_refusal(p_item bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v record;
BEGIN
  SELECT active, available INTO v FROM items WHERE id = p_item;
  IF NOT FOUND THEN RAISE EXCEPTION 'no such item' USING ERRCODE = 'BFNF1', DETAIL = p_item::text; END IF;
  IF NOT v.active THEN RAISE EXCEPTION 'not for sale' USING ERRCODE = 'BFIN1', DETAIL = p_item::text; END IF;
  RAISE EXCEPTION 'sold out' USING ERRCODE = 'BFSO1', DETAIL = p_item::text, HINT = v.available::text;
END $$;
