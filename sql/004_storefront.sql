-- Storefront: carts, shipments and runtime feature flags.

-- A customer's cart lives on the customer's shard (like their sessions); its lines
-- name items on any shard by (shard, local id), so no foreign key can reach them.
-- The cart row is locked by every add, which is what keeps the line cap exact.
CREATE TABLE carts (
  customer_id  uuid PRIMARY KEY,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every change of a line takes a fresh rev from one sequence: checkout removes a line
-- only at the rev it ordered, so a line raised or re-added meanwhile stays in the cart.
CREATE SEQUENCE cart_rev_seq;

CREATE TABLE cart_lines (
  customer_id  uuid NOT NULL REFERENCES carts(customer_id) ON DELETE CASCADE,
  item_shard   smallint NOT NULL CHECK (item_shard BETWEEN 0 AND 35),
  item_local   bigint NOT NULL CHECK (item_local > 0),
  quantity     integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
  rev          bigint NOT NULL DEFAULT nextval('cart_rev_seq'),
  added_at     timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, item_shard, item_local)
);

-- One shipment per order of `shipment` items: written by the paid -> shipped
-- transition, completed by shipped -> completed (delivered), both fenced on status.
CREATE TABLE shipments (
  order_id      bigint PRIMARY KEY REFERENCES orders(id),
  carrier       text NOT NULL CHECK (length(carrier) BETWEEN 1 AND 100),
  tracking      text NOT NULL CHECK (length(tracking) BETWEEN 1 AND 100),
  shipped_at    timestamptz NOT NULL DEFAULT now(),
  shipped_by    text NOT NULL,
  delivered_at  timestamptz,
  delivered_by  text,
  CHECK ((delivered_at IS NULL) = (delivered_by IS NULL))
);

-- Runtime feature flags. Global config lives on shard 0 (the table exists on every
-- shard so the schema stays the same everywhere); a missing row means the default.
CREATE TABLE feature_flags (
  name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,63}$'),
  enabled     boolean NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  text NOT NULL
);
