-- Payments, the double-entry ledger, provider fulfilment and the notification outbox.
CREATE TABLE payments (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id            bigint NOT NULL REFERENCES orders(id),
  customer_id         uuid NOT NULL,
  status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed', 'expired', 'refunded')),
  method              text NOT NULL CHECK (method IN ('card', 'qr')),
  amount_cents        bigint NOT NULL CHECK (amount_cents >= 0),
  currency            char(3) NOT NULL,
  escrow              text NOT NULL DEFAULT 'none' CHECK (escrow IN ('none', 'held', 'released', 'refunded')),
  gateway_session_id  text UNIQUE,
  redirect_url        text,
  qr_payload          text,
  expires_at          timestamptz NOT NULL,
  captured_at         timestamptz,
  refund_requested_at timestamptz,
  refund_reason       text,
  failure_reason      text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
-- One live (pending) payment per order at a time.
CREATE UNIQUE INDEX payments_one_pending ON payments (order_id) WHERE status = 'pending';
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX payments_pending ON payments (created_at) WHERE status = 'pending';
CREATE INDEX payments_escrow_held ON payments (updated_at) WHERE status = 'succeeded' AND escrow = 'held';

-- The payment that placed the order: set once, by the transition to paid.
ALTER TABLE orders ADD COLUMN payment_id bigint REFERENCES payments(id);

-- Gateway events are applied once: the event id is claimed in the same transaction.
CREATE TABLE gateway_events (
  event_id     text PRIMARY KEY,
  payment_id   bigint REFERENCES payments(id),
  type         text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);

-- Double entry: every transfer writes two rows that sum to zero. Accounts:
-- customer (money outside), escrow (held for an order), merchant and provider_payable
-- (released), all per currency. Invariant: SUM(amount_cents) = 0 per currency.
CREATE TABLE ledger_entries (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  transfer_id   uuid NOT NULL,
  order_id      bigint NOT NULL REFERENCES orders(id),
  payment_id    bigint REFERENCES payments(id),
  account       text NOT NULL CHECK (account IN ('customer', 'escrow', 'merchant', 'provider_payable')),
  amount_cents  bigint NOT NULL,
  currency      char(3) NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('capture', 'release', 'refund')),
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_order ON ledger_entries (order_id);
-- A payment is captured, released and refunded at most once each.
CREATE UNIQUE INDEX ledger_once ON ledger_entries (payment_id, kind, account);

-- Provider activations for `provider` lines, resumable after a crash.
CREATE TABLE fulfillments (
  order_id       bigint NOT NULL REFERENCES orders(id),
  item_id        bigint NOT NULL REFERENCES items(id),
  quantity       integer NOT NULL,
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'activating', 'active', 'failed')),
  activation_id  text,
  verify_attempts integer NOT NULL DEFAULT 0,
  last_error     text,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (order_id, item_id)
);

-- Transactional outbox: a notice is written in the transaction that makes the change,
-- so a crash can delay it but never lose it. Sinks receive each id at least once.
CREATE TABLE outbox (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic            text NOT NULL,
  payload          jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  leased_until     timestamptz,
  delivered_at     timestamptz,
  last_error       text
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- Every audited transition is also a notice.
CREATE FUNCTION order_events_to_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO outbox (topic, payload)
  SELECT 'order.status', jsonb_build_object('order_id', NEW.order_id, 'customer_id', o.customer_id,
         'from', NEW.from_status, 'to', NEW.to_status, 'reason', NEW.reason, 'actor', NEW.actor, 'at', NEW.created_at)
  FROM orders o WHERE o.id = NEW.order_id;
  RETURN NEW;
END $$;
CREATE TRIGGER order_events_outbox AFTER INSERT ON order_events
  FOR EACH ROW EXECUTE FUNCTION order_events_to_outbox();
