// The jobs of the cron process, one leader-elected run per shard per tick. Every job
// is fenced in SQL, so a second runner (or no Redis at all) never doubles an effect.
import { pruneIdempotencyKeys } from '../http/idempotency.js';
import type { CronDeps } from '../deps.js';
import { advanceStuck } from '../fulfillment/service.js';
import { log } from '../log.js';
import { expireDueBatch } from '../orders/lifecycle.js';
import { pruneCheckoutRefusals } from '../orders/service.js';
import { reconcilePending, refundUnclaimed } from '../payments/reconcile.js';
import type { Leader } from './leader.js';
import { dispatchOnce, pruneOutbox, sinksFromConfig } from './outbox.js';
import { sampleShards } from './stats.js';
import { timed, type Job } from './scheduler.js';

/**
 * How long a leader's lock outlives it. A leader that dies (SIGKILL) blocks its
 * successor for this long, so it is a few ticks, not minutes; a batch that runs longer
 * lets a second runner in, which the SQL fences make harmless.
 */
export function leaseMs(everyMs: number): number {
  return Math.min(15_000, Math.max(2_000, everyMs * 10));
}

function perShard(deps: CronDeps, leader: Leader, name: string, everyMs: number,
  work: (shard: number) => Promise<unknown>): Job {
  return {
    name,
    everyMs,
    run: async () => {
      const results = await Promise.allSettled(deps.dir.shards().map((s) =>
        timed(name, s, () => leader.run(`${name}:${s}`, leaseMs(everyMs), () => work(s)))));
      for (const r of results) if (r.status === 'rejected') log.warn('cron shard run failed',
        { job: name, err: r.reason });
      return results.map((r) => (r.status === 'fulfilled' && r.value.ran ? r.value.result : null));
    },
  };
}

/** Returns expired holds to stock, batch after batch until the shard is caught up. */
async function drainExpired(deps: CronDeps, shard: number, actor: string): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < 100; batch++) {
    const { expired } = await expireDueBatch(deps, shard, actor);
    total += expired;
    if (expired < deps.cfg.expiryBatchSize) break;
  }
  if (total > 0) log.info('expired orders released', { shard, orders: total });
  return total;
}

const PRUNE_BATCH = 1000;
const PRUNE_BATCHES_MAX = 20;

/** Deletes what is past its retention window, in bounded batches; the rest waits for the next run. */
async function prune(deps: CronDeps, shard: number): Promise<number> {
  let total = 0;
  for (const one of [pruneOutbox, pruneIdempotencyKeys, pruneCheckoutRefusals]) {
    for (let batch = 0; batch < PRUNE_BATCHES_MAX; batch++) {
      const n = await one(deps, shard, PRUNE_BATCH);
      total += n;
      if (n < PRUNE_BATCH) break;
    }
  }
  if (total > 0) log.info('retention pruned rows', { shard, rows: total });
  return total;
}

export function allJobs(deps: CronDeps, leader: Leader): Job[] {
  const actor = `cron:${process.pid}`;
  const sinks = sinksFromConfig(deps);
  return [
    perShard(deps, leader, 'hold-expiry', deps.cfg.expiryEveryMs, (s) => drainExpired(deps, s, actor)),
    perShard(deps, leader, 'payment-reconcile', deps.cfg.paymentsEveryMs, (s) => reconcilePending(deps, s)),
    perShard(deps, leader, 'unclaimed-refunds', deps.cfg.paymentsEveryMs, (s) => refundUnclaimed(deps, s)),
    perShard(deps, leader, 'order-advance', deps.cfg.paymentsEveryMs, (s) => advanceStuck(deps, s)),
    perShard(deps, leader, 'outbox', deps.cfg.outboxEveryMs, (s) => dispatchOnce(deps, s, sinks)),
    perShard(deps, leader, 'retention', deps.cfg.retentionEveryMs, (s) => prune(deps, s)),
    sampleShards(deps),
  ];
}
