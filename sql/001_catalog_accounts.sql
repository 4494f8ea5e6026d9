-- Catalog and accounts. Every shard has the same schema; which rows it holds is
-- decided by the router (categories by directory, users by a hash of their id).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Category ids are allocated as seq * N + shard by the shard that creates them, so
-- the default directory `id mod N` finds them with no lookup.
CREATE SEQUENCE category_seq;

CREATE TABLE categories (
  id          bigint PRIMARY KEY,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  category_id       bigint NOT NULL REFERENCES categories(id),
  name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description       text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
  price_cents       bigint NOT NULL CHECK (price_cents >= 0),
  currency          char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  fulfillment       text NOT NULL DEFAULT 'instant' CHECK (fulfillment IN ('instant', 'shipment', 'provider')),
  max_per_customer  integer CHECK (max_per_customer IS NULL OR max_per_customer > 0),
  active            boolean NOT NULL DEFAULT true,
  -- Stock accounting: every unit ever stocked is available, held by an order
  -- awaiting payment, or sold. The CHECKs make an oversell impossible to commit.
  available         integer NOT NULL CHECK (available >= 0),
  held              integer NOT NULL DEFAULT 0 CHECK (held >= 0),
  sold              integer NOT NULL DEFAULT 0 CHECK (sold >= 0),
  stocked           integer NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT stock_balances CHECK (available + held + sold = stocked)
);
CREATE INDEX items_category_created ON items (category_id, created_at DESC, id DESC);
CREATE INDEX items_created ON items (created_at DESC, id DESC);
CREATE INDEX items_name_trgm ON items USING gin (lower(name) gin_trgm_ops);

CREATE TABLE users (
  id             uuid PRIMARY KEY,
  email          text NOT NULL,
  password_hash  text NOT NULL,
  name           text,
  role           text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
  phone          text,
  address        jsonb,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  deleted_at     timestamptz
);

-- Email uniqueness across shards: the index row lives on hash(email) mod N.
CREATE TABLE email_index (
  email    text PRIMARY KEY,
  user_id  uuid NOT NULL
);

-- Bearer tokens are stored hashed; the token itself names the user's shard.
CREATE TABLE sessions (
  token_hash  bytea PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users(id),
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Exactly-once POSTs: the first request with a key records its fingerprint and,
-- once done, its response; later ones replay it. Lives on the caller's shard.
CREATE TABLE idempotency_keys (
  user_id       uuid NOT NULL,
  key           text NOT NULL,
  route         text NOT NULL,
  fingerprint   text NOT NULL,
  status        text NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'done')),
  response_code integer,
  response_body jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  locked_until  timestamptz NOT NULL,
  PRIMARY KEY (user_id, key)
);
