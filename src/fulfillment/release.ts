// Completing a paid order releases its escrow. The release is claimed first, in one
// statement under the order's row lock and fenced on the order's status: a cancel
// takes the same lock, so it either came first (the claim finds no order to complete)
// or comes after, sees the claim and refuses. Only then is the gateway asked to release
// (a network call outside any transaction; idempotent, so a retry after a crash is
// safe), and one statement records it: the order completes, fenced on its status
// again, and escrow moves to the merchant (and the provider's share) in the ledger.
// A claim whose holder died is finished by the stuck-order cron (advanceOrder).
import type { Deps } from '../deps.js';
import { EngineError, invariant } from '../errors.js';
import { legArrays, releaseLegs } from '../payments/ledger.js';
import { encodeRow } from '../router/ids.js';
import { SQL } from './sql.js';

export interface LineRow { item_id: number; quantity: number; price_cents: number; fulfillment: string }

export interface Completion {
  /** The statuses the order may complete from: the fence. */
  from: string[];
  reason: string;
  actor: string;
  /** The completion is a shipment's delivery, by this actor: recorded in the same statement. */
  deliveredBy?: string;
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
  const { accounts, amounts } = legArrays(releaseLegs(pay.amount_cents as number, providerShare));
  // Two runners may both have claimed and released (idempotent); one completes.
  const done = await complete(deps, shard, [orderLocal, c.from, c.reason, c.actor, pay.id, accounts, amounts, c.deliveredBy ?? null]);
  if (done) await deps.hooks.orderChanged({ id: encodeRow('order', shard, orderLocal), shard, status: 'completed', customer_id: '' });
  return done ? 'completed' : 'unchanged';
}

/** The completion statement; a broken invariant inside it (BFIV1) rolled it back and is a bug. */
async function complete(deps: Deps, shard: number, params: unknown[]): Promise<boolean> {
  try {
    return (await deps.shards.get(shard).statement(SQL.complete, params)).rows[0]!.completed === true;
  } catch (err) {
    const cause = (err instanceof EngineError ? err.cause : err) as { code?: string; message?: string } | undefined;
    invariant(cause?.code !== 'BFIV1', (cause?.message ?? '').replace(/^invariant violated: /, ''));
    throw err;
  }
}
