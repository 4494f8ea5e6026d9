// What the crons do for payments: poll the gateway for payments left pending (lost
// webhooks, a crash between creating the session and recording it), and refund
// succeeded payments that no order can use. Both are safe with two runners.
import type { Core, Remote } from '../deps.js';
import { log } from '../log.js';
import { encodeRow } from '../router/ids.js';
import { applyGatewayEvent, refundPayment } from './service.js';
import { SQL } from './sql.js';

const EVENT_OF_STATUS: Record<string, string> = {
  succeeded: 'payment.succeeded', declined: 'payment.declined', expired: 'payment.expired',
  refunded: 'payment.succeeded',
};

/** The longest a pending payment waits between two polls of the gateway. */
const POLL_BACKOFF_MAX_S = 60;

/**
 * Pending payments older than PAYMENT_RECONCILE_AFTER_S are settled from the gateway's
 * answer, each in turn (SQL.duePending rotates them), each on its own: one payment
 * whose poll fails is logged and retried later, never the end of the batch.
 */
export async function reconcilePending(deps: Core & Remote, shard: number,
  limit = 100): Promise<{ polled: number; applied: number; failed: number }> {
  const base = deps.cfg.reconcileAfterS;
  const rows = (await deps.shards.get(shard).query(SQL.duePending,
    [base, limit, base, Math.max(base, POLL_BACKOFF_MAX_S)])).rows;
  let applied = 0;
  let failed = 0;
  for (const p of rows) {
    try {
      if (await settleFromGateway(deps, shard, p)) applied++;
    } catch (err) {
      failed++;
      log.warn('payment poll failed; retried later', { payment: encodeRow('payment', shard, p.id as number), err });
    }
  }
  return { polled: rows.length, applied, failed };
}

/** One pending payment against the gateway's session; true when an event was applied. */
async function settleFromGateway(deps: Core & Remote, shard: number, p: Record<string, unknown>): Promise<boolean> {
  const session = p.gateway_session_id ? await deps.gateway.getSession(p.gateway_session_id as string) : null;
  if (!session) {
    // No session was recorded: never reached the gateway, or the answer was lost.
    if (new Date(p.expires_at as Date) < new Date()) {
      await deps.shards.get(shard).query(SQL.fail, [p.id, 'no_session']);
      await deps.hooks.orderTouched(shard, p.order_id as number);
    }
    return false;
  }
  const type = EVENT_OF_STATUS[session.status];
  if (!type) return false;
  // A synthetic, stable event id: polling and a late webhook dedupe like duplicates.
  const r = await applyGatewayEvent(deps, {
    id: `poll:${session.id}:${session.status}`, type,
    data: { session_id: session.id, merchant_ref: encodeRow('payment', shard, p.id as number), status: session.status,
      amount_cents: session.amount_cents, currency: session.currency },
  });
  return !r.duplicate;
}

export async function refundUnclaimed(deps: Core & Remote, shard: number, limit = 100): Promise<number> {
  const rows = (await deps.shards.get(shard).query(SQL.unclaimed, [deps.cfg.unclaimedAfterS, limit])).rows;
  let refunded = 0;
  for (const r of rows) {
    try {
      if (await refundPayment(deps, shard, r.id as number, 'unclaimed')) refunded++;
    } catch (err) {
      log.warn('unclaimed refund failed; will retry', { payment: encodeRow('payment', shard, r.id as number), err });
    }
  }
  return refunded;
}
