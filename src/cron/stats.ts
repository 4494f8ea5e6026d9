// What /metrics needs from the shards themselves: the outbox backlog, how long expired
// holds have kept stock from sale, and refunds that are overdue. Every cron process
// samples every shard (no leader: it only reads, and each host then reports on its own);
// a shard that does not answer drops its series until it does, so a stale figure never
// stands in for a missing one.
import type { Core } from '../deps.js';
import { holdExpiryLag, outboxOldestDue, outboxPending, refundsOverdue } from '../metrics/index.js';
import { timed, type Job } from './scheduler.js';

// Each subquery runs on a partial index (outbox_due, orders_awaiting_expiry,
// payments_escrow_held), so the statement costs the backlog it counts, not the tables.
const SAMPLE = {
  name: 'metrics_sample',
  text: `SELECT
    (SELECT count(*) FROM outbox WHERE delivered_at IS NULL) AS outbox_pending,
    (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)), 0)::float8 FROM outbox
      WHERE delivered_at IS NULL AND next_attempt_at <= now()) AS outbox_oldest_due_s,
    (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(hold_expires_at)), 0)::float8 FROM orders
      WHERE status = 'awaiting_payment' AND hold_expires_at <= now()) AS hold_expiry_lag_s,
    (SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id
      WHERE p.status = 'succeeded' AND p.escrow = 'held' AND p.updated_at < now() - make_interval(secs => $1)
        AND (o.payment_id IS DISTINCT FROM p.id OR o.status IN ('expired', 'canceled', 'failed'))) AS refunds_overdue`,
};

const GAUGES = [
  [outboxPending, 'outbox_pending'], [outboxOldestDue, 'outbox_oldest_due_s'], [holdExpiryLag, 'hold_expiry_lag_s'],
  [refundsOverdue, 'refunds_overdue'],
] as const;

async function sampleShard(deps: Core, shard: number): Promise<{ ran: true }> {
  const labels = { shard: String(shard) };
  try {
    const row = (await deps.shards.get(shard).query(SAMPLE, [deps.cfg.unclaimedAfterS])).rows[0]!;
    for (const [gauge, column] of GAUGES) gauge.set(labels, Number(row[column]));
    return { ran: true };
  } catch (err) {
    for (const [gauge] of GAUGES) gauge.remove(labels);
    throw err;
  }
}

export function sampleShards(deps: Core): Job {
  const name = 'metrics-sample';
  return {
    name, everyMs: deps.cfg.metricsSampleMs,
    // A shard that fails is counted (bf_cron_runs_total) and must not stop the others.
    run: () => Promise.allSettled(deps.dir.shards().map((s) => timed(name, s, () => sampleShard(deps, s)))),
  };
}
