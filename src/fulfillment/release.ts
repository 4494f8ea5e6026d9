// Completing a paid order releases its escrow. The release is claimed first, in one
// statement under the order's row lock and fenced on the order's status: a cancel
// takes the same lock, so it either came first (the claim finds no order to complete)
// or comes after, sees the claim and refuses. Only then is the gateway asked to release
// (a network call outside any transaction; idempotent, so a retry after a crash is
// safe), and one transaction records it: the order completes, fenced on its status
// again, and escrow moves to the merchant (and the provider's share) in the ledger.
// A claim whose holder died is finished by the stuck-order cron (advanceOrder).
import type { Deps } from '../deps.js';
import { invariant } from '../errors.js';
import { postTransfer, releaseLegs } from '../payments/ledger.js';
import { PAYMENT_SQL } from '../payments/service.js';
import { encodeRow } from '../router/ids.js';
import type { Queryable } from '../shard/pools.js';
import { SQL } from './sql.js';

export interface LineRow { item_id: number; quantity: number; price_cents: number; fulfillment: string }

export interface Completion {
  /** The statuses the order may complete from: the fence. */
  from: string[];
  reason: string;
  actor: string;
  /** More writes of the same transition (a shipment's delivery), after the fence held. */
  also?: (q: Queryable, orderLocal: number) => Promise<void>;
}

export async function releaseAndComplete(
  deps: Deps, shard: number, order: Record<string, unknown>, lines: LineRow[], c: Completion,
): Promise<'completed' | 'unchanged'> {
  const s = deps.shards.get(shard);
  const orderLocal = order.id as number;
  const pay = (await s.query(SQL.claimRelease, [orderLocal, c.from])).rows[0];
  if (!pay) return 'unchanged';
  await deps.hooks.orderTouched(shard, orderLocal);
  await deps.gateway.release(pay.gateway_session_id as string);
  const providerShare = lines.filter((l) => l.fulfillment === 'provider').reduce((sum, l) => sum + Number(l.price_cents) * l.quantity, 0);
  const done = await s.transaction(async (q) => {
    // Two runners may both have claimed and released (idempotent); one completes.
    if ((await q.query(SQL.complete, [orderLocal, c.from, c.reason, c.actor])).rowCount !== 1) return false;
    const released = (await q.query(PAYMENT_SQL.markReleased, [pay.id])).rows[0];
    invariant(released, 'a claimed release is recorded once, by the completion that fenced it');
    await postTransfer(q, { orderLocal, paymentLocal: pay.id as number, currency: pay.currency as string, kind: 'release', legs: releaseLegs(pay.amount_cents as number, providerShare) });
    await c.also?.(q, orderLocal);
    return true;
  });
  if (done) await deps.hooks.orderChanged({ id: encodeRow('order', shard, orderLocal), shard, status: 'completed', customer_id: '' });
  return done ? 'completed' : 'unchanged';
}
