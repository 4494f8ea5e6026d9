-- A shard's checkouts in one statement, many at a time (group commit).
--
-- place_orders takes a batch of checkout parts (jsonb array, each
-- {c customer, i item ids, q quantities, t hold ttl s, k request key, h request hash,
--  x checkout id, a actor, f folded}) and answers one row per part, in order: its order
-- (ok), or the refusal's SQLSTATE, DETAIL and HINT. It locks every item row of the batch in
-- ascending id order (as every statement that moves stock does), decides each part against
-- the locked rows and what earlier parts took, in memory, and writes each item row once:
-- available and held move by what the accepted parts took together. Measured first, a
-- batch that updated the hot item once per order cost 1.7 ms of Postgres per order at 20
-- orders a batch (each UPDATE adds a version of the row that only the batch's end can
-- prune, and the next UPDATE walks them all), against 0.25 ms for one order alone; written
-- once per batch, 0.58 ms. A hot item's row is locked once per batch, not once per order.
--
-- Refusals (BFNF1 no such item, BFIN1 not for sale, BFSO1 sold out with the units left as
-- HINT, BFLM1 purchase limit with the limit as HINT, BFCU1 mixed currencies; BFSR1 sold out
-- while expired holds wait on its items, for the caller to reclaim them and try again)
-- refuse only their part, before it writes anything, so no part needs a subtransaction.
-- Per-customer counts are read under the item's row lock, which every writer of them
-- (checkouts, cancels, sweeps, unsells) takes first.
--
-- A folded part is a whole single-shard checkout with an Idempotency-Key, answered in
-- this one statement: a concurrent duplicate finds the key's advisory lock taken (BFIP1:
-- in progress), a refusal is recorded in checkout_refusals and replayed to a retry, an
-- order found by its key is replayed as it was made, and another request under the same
-- key is refused (BFRK1: mismatch). A part of a checkout across shards keeps place_order's
-- rules for its key (sql/008): the order found answers as it is, a dead one lets go.
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

CREATE FUNCTION place_orders(p_parts jsonb)
RETURNS TABLE (n int, ok boolean, order_id bigint, existing boolean, items jsonb, status text, currency text, total_cents bigint,
               hold_expires_at timestamptz, created_at timestamptz, updated_at timestamptz, lines jsonb,
               err_state text, err_detail text, err_hint text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  -- The batch's items, in ascending id order, as locked, and what the batch took of each.
  s_id bigint[] := '{}'; s_avail int[] := '{}'; s_active boolean[] := '{}'; s_price bigint[] := '{}';
  s_cur text[] := '{}'; s_ful text[] := '{}'; s_max int[] := '{}'; s_taken int[] := '{}';
  -- Per-customer counts of limited items as this batch leaves them: key 'customer/item'.
  l_key text[] := '{}'; l_qty int[] := '{}';
  r record;
  v_part jsonb; v_n int := 0; v_folded boolean; v_cust uuid; v_key text; v_hash text;
  v_items bigint[]; v_qtys int[]; v_pos int[]; v_k int; v_i int; v_lk int; v_had int;
  v_found record; v_ref record; v_refusal text; v_detail text; v_hint text;
  v_order bigint; v_expires timestamptz; v_total bigint; v_currency text; v_lines jsonb; v_out jsonb;
BEGIN
  FOR r IN SELECT i.id, i.available, i.active, i.price_cents, i.currency::text AS currency, i.fulfillment, i.max_per_customer
             FROM items i WHERE i.id IN (SELECT DISTINCT x::bigint FROM jsonb_array_elements(p_parts) e, jsonb_array_elements_text(e->'i') x)
            ORDER BY i.id FOR UPDATE LOOP
    s_id := s_id || r.id; s_avail := s_avail || r.available; s_active := s_active || r.active; s_price := s_price || r.price_cents;
    s_cur := s_cur || r.currency; s_ful := s_ful || r.fulfillment; s_max := s_max || r.max_per_customer; s_taken := s_taken || 0;
  END LOOP;

  FOR v_part IN SELECT value FROM jsonb_array_elements(p_parts) LOOP
    v_n := v_n + 1;
    v_folded := coalesce((v_part->>'f')::boolean, false);
    v_cust := (v_part->>'c')::uuid; v_key := v_part->>'k'; v_hash := v_part->>'h';
    v_items := ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(v_part->'i') x);
    v_qtys := ARRAY(SELECT x::int FROM jsonb_array_elements_text(v_part->'q') x);
    v_refusal := NULL; v_detail := NULL; v_hint := NULL;

    -- The request key: in progress, a recorded refusal, or the order it made.
    IF v_folded AND NOT pg_try_advisory_xact_lock(hashtextextended(v_cust::text || '/' || v_key, 0)) THEN
      v_refusal := 'BFIP1';
    END IF;
    IF v_refusal IS NULL AND v_folded THEN
      SELECT * INTO v_ref FROM checkout_refusals c WHERE c.customer_id = v_cust AND c.request_key = v_key;
      IF FOUND THEN
        IF v_ref.request_hash <> v_hash THEN v_refusal := 'BFRK1';
        ELSE
          RETURN QUERY SELECT v_n, false, NULL::bigint, true, NULL::jsonb, NULL::text, NULL::text, NULL::bigint,
            NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::jsonb, v_ref.sqlstate, v_ref.detail, v_ref.hint;
          CONTINUE;
        END IF;
      END IF;
    END IF;
    IF v_refusal IS NULL AND v_key IS NOT NULL THEN
      SELECT o.id, o.status, o.request_hash INTO v_found FROM orders o WHERE o.customer_id = v_cust AND o.request_key = v_key FOR UPDATE;
      IF FOUND THEN
        IF v_found.request_hash IS NOT NULL AND v_hash IS NOT NULL AND v_found.request_hash <> v_hash THEN
          v_refusal := 'BFRK1';
        ELSIF v_folded OR v_found.status NOT IN ('canceled', 'expired') THEN
          -- The key's order answers: as it was made (folded), or as it is (a part of a
          -- checkout across shards, retried after a crash).
          RETURN QUERY SELECT v_n, true, o.id, true, '[]'::jsonb,
            CASE WHEN v_folded THEN 'awaiting_payment' ELSE o.status END, o.currency::text, o.total_cents, o.hold_expires_at,
            o.created_at, CASE WHEN v_folded THEN o.created_at ELSE o.updated_at END,
            (SELECT jsonb_agg(jsonb_build_object('item_id', l.item_id, 'quantity', l.quantity, 'price_cents', l.price_cents,
               'fulfillment', l.fulfillment) ORDER BY l.item_id) FROM order_lines l WHERE l.order_id = o.id),
            NULL::text, NULL::text, NULL::text
            FROM orders o WHERE o.id = v_found.id;
          CONTINUE;
        ELSE
          -- A dead part (undone by compensation, or expired) lets go of the key: afresh.
          UPDATE orders SET request_key = NULL WHERE id = v_found.id;
        END IF;
      END IF;
    END IF;

    -- Every line against the locked rows and what earlier parts took.
    v_pos := '{}'; v_total := 0; v_currency := NULL;
    IF v_refusal IS NULL THEN
      FOR v_k IN 1 .. cardinality(v_items) LOOP
        v_i := array_position(s_id, v_items[v_k]);
        v_pos := v_pos || v_i;
        IF v_i IS NULL THEN v_refusal := 'BFNF1'; v_detail := v_items[v_k]::text; EXIT; END IF;
        IF NOT s_active[v_i] THEN v_refusal := 'BFIN1'; v_detail := v_items[v_k]::text; EXIT; END IF;
        IF s_avail[v_i] < v_qtys[v_k] THEN
          v_refusal := 'BFSO1'; v_detail := v_items[v_k]::text; v_hint := s_avail[v_i]::text;
          IF EXISTS (SELECT 1 FROM holds h WHERE h.item_id = v_items[v_k] AND h.status = 'active' AND h.expires_at <= now()) THEN
            v_refusal := 'BFSR1';
          END IF;
          EXIT;
        END IF;
        IF v_currency IS NULL THEN v_currency := s_cur[v_i];
        ELSIF v_currency <> s_cur[v_i] THEN v_refusal := 'BFCU1'; v_detail := v_items[v_k]::text; EXIT;
        END IF;
        IF s_max[v_i] IS NOT NULL THEN
          v_lk := array_position(l_key, v_cust::text || '/' || v_items[v_k]);
          IF v_lk IS NULL THEN
            SELECT coalesce((SELECT c.quantity FROM customer_limits c WHERE c.customer_id = v_cust AND c.item_id = v_items[v_k]), 0) INTO v_had;
            l_key := l_key || (v_cust::text || '/' || v_items[v_k]); l_qty := l_qty || v_had;
            v_lk := cardinality(l_key);
          END IF;
          IF l_qty[v_lk] + v_qtys[v_k] > s_max[v_i] THEN
            v_refusal := 'BFLM1'; v_detail := v_items[v_k]::text; v_hint := s_max[v_i]::text; EXIT;
          END IF;
        END IF;
        v_total := v_total + s_price[v_i] * v_qtys[v_k];
      END LOOP;
    END IF;

    IF v_refusal IS NOT NULL THEN
      IF v_folded AND v_refusal IN ('BFNF1', 'BFIN1', 'BFSO1', 'BFLM1', 'BFCU1') THEN
        INSERT INTO checkout_refusals (customer_id, request_key, request_hash, sqlstate, detail, hint)
        VALUES (v_cust, v_key, v_hash, v_refusal, v_detail, v_hint) ON CONFLICT DO NOTHING;
      END IF;
      RETURN QUERY SELECT v_n, false, NULL::bigint, false, NULL::jsonb, NULL::text, NULL::text, NULL::bigint,
        NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::jsonb, v_refusal, v_detail, v_hint;
      CONTINUE;
    END IF;

    -- Accepted: the order with its final total, then its lines, holds, limits and audit row.
    INSERT INTO orders AS o (customer_id, status, currency, total_cents, hold_expires_at, request_key, request_hash, checkout_id)
    VALUES (v_cust, 'awaiting_payment', v_currency, v_total, now() + make_interval(secs => (v_part->>'t')::int), v_key, v_hash, (v_part->>'x')::uuid)
    ON CONFLICT (customer_id, request_key) DO NOTHING
    RETURNING o.id, o.hold_expires_at INTO v_order, v_expires;
    IF v_order IS NULL THEN
      -- Another statement holds this key right now (only a checkout across shards can).
      RETURN QUERY SELECT v_n, false, NULL::bigint, false, NULL::jsonb, NULL::text, NULL::text, NULL::bigint,
        NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::jsonb, 'BFIP1'::text, NULL::text, NULL::text;
      CONTINUE;
    END IF;
    v_lines := '[]'; v_out := '[]';
    FOR v_k IN 1 .. cardinality(v_items) LOOP
      v_i := v_pos[v_k];
      s_avail[v_i] := s_avail[v_i] - v_qtys[v_k];
      s_taken[v_i] := s_taken[v_i] + v_qtys[v_k];
      INSERT INTO holds (order_id, item_id, customer_id, quantity, expires_at) VALUES (v_order, v_items[v_k], v_cust, v_qtys[v_k], v_expires);
      INSERT INTO order_lines (order_id, item_id, quantity, price_cents, fulfillment) VALUES (v_order, v_items[v_k], v_qtys[v_k], s_price[v_i], s_ful[v_i]);
      IF s_max[v_i] IS NOT NULL THEN
        v_lk := array_position(l_key, v_cust::text || '/' || v_items[v_k]);
        l_qty[v_lk] := l_qty[v_lk] + v_qtys[v_k];
        INSERT INTO customer_limits AS c (customer_id, item_id, quantity) VALUES (v_cust, v_items[v_k], v_qtys[v_k])
        ON CONFLICT (customer_id, item_id) DO UPDATE SET quantity = c.quantity + EXCLUDED.quantity;
      END IF;
      v_lines := v_lines || jsonb_build_object('item_id', v_items[v_k], 'quantity', v_qtys[v_k], 'price_cents', s_price[v_i], 'fulfillment', s_ful[v_i]);
      v_out := v_out || jsonb_build_object('id', v_items[v_k], 'available', s_avail[v_i]);
    END LOOP;
    INSERT INTO order_events (order_id, from_status, to_status, actor, reason) VALUES (v_order, NULL, 'awaiting_payment', v_part->>'a', 'created');
    RETURN QUERY SELECT v_n, true, v_order, false, v_out, 'awaiting_payment'::text, v_currency, v_total, v_expires, now(), now(), v_lines,
      NULL::text, NULL::text, NULL::text;
  END LOOP;

  -- Each item once: what the accepted parts took together moves from available to held.
  UPDATE items i SET available = i.available - t.q, held = i.held + t.q, updated_at = now()
    FROM unnest(s_id, s_taken) AS t(id, q) WHERE i.id = t.id AND t.q > 0;
END $$;
