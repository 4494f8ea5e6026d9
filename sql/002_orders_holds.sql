-- Orders, their lines, the stock holds they take, per-customer purchase limits and
-- the append-only audit trail. An order lives on its items' shard.
CREATE TABLE orders (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id      uuid NOT NULL,
  status           text NOT NULL CHECK (status IN ('awaiting_payment', 'paid', 'fulfilling', 'shipped', 'completed',
                                                   'expired', 'canceled', 'failed', 'refunded')),
  currency         char(3) NOT NULL,
  total_cents      bigint NOT NULL CHECK (total_cents >= 0),
  hold_expires_at  timestamptz NOT NULL,
  -- The Idempotency-Key of the request that made it: re-running that request on
  -- this shard finds this order instead of taking stock twice.
  request_key      text,
  checkout_id      uuid NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (customer_id, request_key)
);
CREATE INDEX orders_customer_created ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_created ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_awaiting_expiry ON orders (hold_expires_at) WHERE status = 'awaiting_payment';

CREATE TABLE order_lines (
  order_id     bigint NOT NULL REFERENCES orders(id),
  item_id      bigint NOT NULL REFERENCES items(id),
  quantity     integer NOT NULL CHECK (quantity > 0),
  price_cents  bigint NOT NULL CHECK (price_cents >= 0),
  fulfillment  text NOT NULL,
  PRIMARY KEY (order_id, item_id)
);
CREATE INDEX order_lines_item ON order_lines (item_id);

CREATE TABLE holds (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id     bigint NOT NULL REFERENCES orders(id),
  item_id      bigint NOT NULL REFERENCES items(id),
  customer_id  uuid NOT NULL,
  quantity     integer NOT NULL CHECK (quantity > 0),
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'consumed', 'released', 'expired')),
  expires_at   timestamptz NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  ended_at     timestamptz
);
CREATE INDEX holds_order ON holds (order_id);
CREATE INDEX holds_item_active ON holds (item_id, expires_at) WHERE status = 'active';

-- Units of a limited item a customer currently holds or bought; released holds give back.
CREATE TABLE customer_limits (
  customer_id  uuid NOT NULL,
  item_id      bigint NOT NULL REFERENCES items(id),
  quantity     integer NOT NULL CHECK (quantity >= 0),
  PRIMARY KEY (customer_id, item_id)
);

CREATE TABLE order_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id     bigint NOT NULL REFERENCES orders(id),
  from_status  text,
  to_status    text NOT NULL,
  actor        text NOT NULL,
  reason       text,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order ON order_events (order_id, id);

-- The audit trail is append-only: nothing may rewrite history.
CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'order_events is append-only';
END $$;
CREATE TRIGGER order_events_no_update BEFORE UPDATE OR DELETE ON order_events
  FOR EACH ROW EXECUTE FUNCTION order_events_append_only();
