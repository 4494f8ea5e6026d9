// Completing a paid order releases its escrow. The release is claimed first, in one
// statement under the order's row lock and fenced on the order's status: a cancel
// takes the same lock, so it either came first (the claim finds no order to complete)
// or comes after, sees the claim and refuses. Only then is the gateway asked to release
// (a network call outside any transaction; idempotent, so a retry after a crash is
// safe), and one statement records it: the order completes, fenced on its status
// again, and escrow moves to the merchant (and the provider's share) in the ledger
// (the order lifecycle's `complete`).
// A claim whose holder died is finished by the stuck-order cron (advanceOrder).
import type { Core, Remote } from '../deps.js';
import { complete, type Completion } from '../orders/lifecycle.js';
import { legArrays, releaseLegs } from '../payments/ledger.js';
import { SQL } from './sql.js';

export interface LineRow { item_id: number; quantity: number; price_cents: number; fulfillment: string }

export async function releaseAndComplete(
  deps: Core & Remote, shard: number, order: Record<string, unknown>, lines: LineRow[], c: Completion,
): Promise<'completed' | 'unchanged'> {
  const s = deps.shards.get(shard);
  const orderLocal = order.id as number;
  const pay = (await s.query(SQL.claimRelease, [orderLocal, c.from])).rows[0];
  if (!pay) return 'unchanged';
  await deps.hooks.orderTouched(shard, orderLocal);
  await deps.gateway.release(pay.gateway_session_id as string);
  const providerShare = lines.filter((l) => l.fulfillment === 'provider').reduce((sum, l) =>
    sum + Number(l.price_cents) * l.quantity, 0);
  const legs = legArrays(releaseLegs(pay.amount_cents as number, providerShare));
  // Two runners may both have claimed and released (idempotent); one completes.
  const done = await complete(deps, shard, orderLocal, c, { paymentLocal: pay.id as number, ...legs });
  return done ? 'completed' : 'unchanged';
}
