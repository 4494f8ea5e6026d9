// The engine's business and operations metrics: the events an operator counts on a sale
// day. Conventions: names start with bf_, base units (seconds, bytes), counters end in
// _total, every family has HELP and TYPE. Counters whose label values are known up front
// are created at zero (zeroCounters), so an alert on rate() sees the series before the
// first event. These are recorded where the event happens (rare next to an HTTP request:
// a prom-client inc with one label costs ~170 ns); per-request figures are in http.ts, figures read off
// live objects (pools, breakers, Redis) in engine.ts, per-process figures in process.ts.
// The whole list, with what each means, is in README.md ("Metrics").
import client from 'prom-client';
import { app } from './registry.js';

export { observeRequest, zeroRequests } from './http.js';

const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
  new client.Counter<L>({ name, help, labelNames, registers: [app] });

/** Business refusals of a checkout the zeroed series cover (any other error code appears when first seen). */
export const REFUSAL_REASONS = [
  'sold_out', 'purchase_limit', 'item_unavailable', 'not_found', 'mixed_currency', 'idempotency_mismatch',
  'idempotency_in_progress', 'overloaded', 'shard_unavailable',
] as const;
export const PAYMENT_OUTCOMES = ['opened', 'open_failed', 'captured', 'declined', 'expired'] as const;
export const REFUND_REASONS = ['canceled', 'unclaimed', 'fulfillment_failed'] as const;
export const SHED_REASONS = ['http_inflight', 'stream_inflight', 'stream_sockets', 'pg_queue_full', 'pg_queue_timeout',
  'checkout_queue_full', 'password_queue_full'] as const;
export const DEPENDENCIES = ['gateway', 'provider'] as const;

export const ordersCreated = counter('bf_orders_created_total',
  'Orders created, one per shard a checkout touches (replays not counted)', ['shard']);
export const ordersRefused = counter('bf_orders_refused_total',
  'Checkouts that created no order, by the error code they answered (replays not counted)', ['reason']);
export const holdsExpired = counter('bf_holds_expired_total',
  'Orders whose holds expired and went back to stock, by shard and by the sweep (cron) or a checkout reclaiming them ' +
  '(reclaim)', ['shard', 'via']);
export const paymentsByOutcome = counter('bf_payments_total',
  'Payments by outcome: opened at the gateway, open_failed (gateway refused or unavailable), captured, declined, ' +
  'expired', ['outcome']);
export const refundsByOutcome = counter('bf_refunds_total',
  'Refunds of captured payments by reason and outcome (succeeded, failed: retried by the unclaimed-refunds cron)',
    ['reason', 'outcome']);
export const webhookSignatureFailures = counter('bf_webhook_signature_failures_total',
  'Webhooks refused for a missing, stale or wrong signature', ['source']);
export const idempotencyReplays = counter('bf_idempotency_replays_total',
  'Answers replayed for a repeated Idempotency-Key, by route', ['route']);
export const breakerOpens = counter('bf_breaker_opens_total', 'Times a circuit breaker opened, by dependency',
  ['dependency']);
export const admissionShed = counter('bf_admission_shed_total',
  'Work refused with 503 overloaded, by the bound it hit: http_inflight (MAX_INFLIGHT), stream_inflight (the stream ' +
  'share, half of it), stream_sockets (STREAM_MAX_SOCKETS), pg_queue_full (PG_MAX_WAITING), pg_queue_timeout (no ' +
  'connection within PG_CONNECT_TIMEOUT_MS), checkout_queue_full, password_queue_full (PASSWORD_HASH_QUEUE_MAX)', ['reason']);
export const outboxDelivered = counter('bf_outbox_delivered_total',
  'Notices delivered by the outbox dispatcher, by shard', ['shard']);
export const outboxFailures = counter('bf_outbox_delivery_failures_total',
  'Outbox batches whose delivery failed (retried with backoff), by shard', ['shard']);
export const cronRuns = counter('bf_cron_runs_total',
  'Cron job runs per shard: ok, failed, or skipped (another runner held the lock)', ['cron_job', 'shard', 'outcome']);
export const processRestarts = counter('bf_process_restarts_total',
  'Worker and cron processes the primary respawned after they died', ['role']);

export const cronDuration = new client.Histogram<'cron_job' | 'shard'>({
  name: 'bf_cron_run_duration_seconds', help: 'Duration of cron job runs that did the work, per job and shard',
  labelNames: ['cron_job', 'shard'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [app],
});
// Each cron process reports its own; the newest wins within a host, and across hosts
// (one leader per job and shard) an alert takes the max. The label is `cron_job`:
// Prometheus keeps `job` for the scrape job and would rename ours to exported_job.
export const cronLastSuccess = new client.Gauge<'cron_job' | 'shard'>({
  name: 'bf_cron_last_success_timestamp_seconds',
  help: 'Unix time of the last successful run of a cron job on a shard by this host',
  labelNames: ['cron_job', 'shard'], aggregator: 'max', registers: [app],
});

// Sampled from the shards by every cron process (src/cron/stats.ts), METRICS_SAMPLE_MS apart.
const sampled = (name: string, help: string) => new client.Gauge<'shard'>({ name, help, labelNames: ['shard'],
  aggregator: 'max', registers: [app] });
export const outboxPending = sampled('bf_outbox_pending', 'Notices not yet delivered, per shard');
export const outboxOldestDue = sampled('bf_outbox_oldest_due_seconds',
  'How long the oldest due notice has waited past its delivery time, per shard');
export const holdExpiryLag = sampled('bf_hold_expiry_lag_seconds',
  'How long the oldest expired hold has kept its stock from sale (0: none waiting), per shard');
export const refundsOverdue = sampled('bf_refunds_overdue',
  'Captured payments no order can use, older than UNCLAIMED_REFUND_AFTER_S and not yet refunded, per shard');

/** Creates at zero every series whose labels are known, per process: absent series are invisible to alerts. */
export function zeroCounters(shards: number, known: { jobs?: readonly string[] } = {}): void {
  const shardIds = Array.from({ length: shards }, (_, i) => String(i));
  for (const reason of REFUSAL_REASONS) ordersRefused.inc({ reason }, 0);
  for (const outcome of PAYMENT_OUTCOMES) paymentsByOutcome.inc({ outcome }, 0);
  for (const reason of REFUND_REASONS) for (const outcome of ['succeeded', 'failed']) refundsByOutcome.inc({ reason,
    outcome }, 0);
  webhookSignatureFailures.inc({ source: 'gateway' }, 0);
  for (const dependency of DEPENDENCIES) breakerOpens.inc({ dependency }, 0);
  for (const reason of SHED_REASONS) admissionShed.inc({ reason }, 0);
  for (const role of ['worker', 'cron']) processRestarts.inc({ role }, 0);
  for (const shard of shardIds) {
    ordersCreated.inc({ shard }, 0);
    for (const via of ['cron', 'reclaim']) holdsExpired.inc({ shard, via }, 0);
    outboxDelivered.inc({ shard }, 0);
    outboxFailures.inc({ shard }, 0);
    for (const job of known.jobs ?? []) for (const outcome of ['ok', 'failed', 'skipped']) cronRuns.inc({ cron_job: job,
      shard, outcome }, 0);
  }
}
