-- Retention: delivered notices and finished idempotency keys are deleted after their
-- window by the cron's retention job (src/cron/jobs.ts), in bounded batches; these
-- indexes let each batch find its rows without scanning the table.
CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
