// Fulfilment after payment. `advanceOrder` looks at an order's state and takes the
// next step; it is safe to call again after a crash (the cron does) because every
// step is idempotent: activations by ref at the provider, transitions by fence.
//   paid + only instant lines   -> completed (escrow released)
//   paid + provider lines       -> fulfilling -> activate, verify (bounded, backoff)
//                                  -> completed, or refunded when any line fails
//   paid + shipment lines       -> waits for an admin to ship and deliver
//   paid + shipment and provider lines -> the credit is activated first (the order stays
//                                  paid, no longer cancelable), then it ships; any
//                                  line failing refunds the whole order before it ships
import type { Core, Remote } from '../deps.js';
import { EngineError } from '../errors.js';
import { log } from '../log.js';
import { startFulfilling, unsell } from '../orders/lifecycle.js';
import { orderWithLines } from '../orders/read.js';
import { refundPayment, type PlacedOrder } from '../payments/service.js';
import { encodeRow } from '../router/ids.js';
import { releaseAndComplete, type LineRow } from './release.js';
import { completeDelivery } from './shipment.js';
import { SQL } from './sql.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `placed`: the order as the payment that placed it answered it, so it is not read again. */
export async function advanceOrder(deps: Core & Remote, shard: number, orderLocal: number,
  placed?: PlacedOrder): Promise<string> {
  const order = placed ?? (await orderWithLines(deps, shard, orderLocal));
  if (!order) return 'missing';
  const lines = (order.lines as LineRow[]) ?? [];
  if (order.status === 'paid') {
    const hasProvider = lines.some((l) => l.fulfillment === 'provider');
    if (lines.some((l) => l.fulfillment === 'shipment')) return hasProvider ? activateBeforeShipping(deps, shard,
      order) : 'awaiting_shipment';
    if (!hasProvider) return releaseAndComplete(deps, shard, order, lines,
      { from: ['paid'], reason: 'instant', actor: 'system' });
    await startFulfilling(deps, shard, orderLocal);
  } else if (order.status === 'shipped') {
    return completeDelivery(deps, shard, order, 'system'); // only a claimed release is picked (SQL.stuck)
  } else if (order.status !== 'fulfilling') {
    return order.status as string;
  }
  const outcome = await runProviderLines(deps, shard, orderLocal, order.customer_id as string);
  if (outcome === 'active') return releaseAndComplete(deps, shard, order, lines,
    { from: ['fulfilling'], reason: 'provider_verified', actor: 'system' });
  if (outcome === 'failed') return failAndRefund(deps, shard, order);
  return 'fulfilling';
}

async function activateBeforeShipping(deps: Core & Remote, shard: number, order: Record<string,
  unknown>): Promise<string> {
  const orderLocal = order.id as number;
  const prepared = (await deps.shards.get(shard).query(SQL.prepareMixed, [orderLocal])).rows[0]!;
  if (prepared.paid !== 1) return 'unchanged'; // canceled first: nothing is activated
  const outcome = await runProviderLines(deps, shard, orderLocal, order.customer_id as string);
  if (outcome === 'failed') return failAndRefund(deps, shard, order);
  return outcome === 'active' ? 'awaiting_shipment' : 'activating';
}

type LinesOutcome = 'active' | 'failed' | 'pending';

async function runProviderLines(deps: Core & Remote, shard: number, orderLocal: number,
  customer: string): Promise<LinesOutcome> {
  const s = deps.shards.get(shard);
  const rows = (await s.query(SQL.lines, [orderLocal])).rows;
  let outcome: LinesOutcome = 'active';
  for (const row of rows) {
    const line = await runLine(deps, shard, orderLocal, customer, row);
    if (line === 'failed') return 'failed';
    if (line === 'pending') outcome = 'pending';
  }
  return outcome;
}

async function runLine(deps: Core & Remote, shard: number, orderLocal: number, customer: string, row: Record<string,
  unknown>): Promise<LinesOutcome> {
  const s = deps.shards.get(shard);
  if (row.status === 'active') return 'active';
  if (row.status === 'failed') return 'failed';
  const itemId = encodeRow('item', shard, row.item_id as number);
  try {
    let activationId = row.activation_id as string | null;
    if (!activationId) {
      const res = await deps.provider.activate({ ref: `${encodeRow('order', shard, orderLocal)}:${itemId}`, sku: itemId,
        quantity: row.quantity as number, customer_ref: customer });
      if (!res.ok || res.activation.status === 'failed') {
        await s.query(SQL.setActivation, [orderLocal, row.item_id, 'failed', res.ok ? res.activation.id : null,
          res.ok ? res.activation.failure_reason ?? 'activation_failed' : res.reason]);
        return 'failed';
      }
      activationId = res.activation.id;
      await s.query(SQL.setActivation, [orderLocal, row.item_id, 'activating', activationId, null]);
    }
    return await verify(deps, shard, orderLocal, row.item_id as number, activationId);
  } catch (err) {
    // Provider unreachable: leave the line as it is; the cron resumes it later.
    if (err instanceof EngineError && err.code === 'dependency_unavailable') return 'pending';
    throw err;
  }
}

async function verify(deps: Core & Remote, shard: number, orderLocal: number, itemLocal: number,
  activationId: string): Promise<LinesOutcome> {
  const s = deps.shards.get(shard);
  for (let attempt = 0; attempt < deps.cfg.verifyAttempts; attempt++) {
    await sleep(deps.cfg.verifyBackoffMs * 2 ** attempt);
    const v = await deps.provider.verify(activationId);
    await s.query(SQL.countVerify, [orderLocal, itemLocal]);
    if (v.status === 'active' || v.status === 'failed') {
      await s.query(SQL.setActivation, [orderLocal, itemLocal, v.status, null, v.failure_reason ?? null]);
      return v.status;
    }
  }
  await s.query(SQL.setActivation, [orderLocal, itemLocal, 'failed', null, 'not_verified']);
  return 'failed';
}

async function failAndRefund(deps: Core & Remote, shard: number, order: Record<string, unknown>): Promise<string> {
  log.warn('fulfilment failed; refunding', { order: encodeRow('order', shard, order.id as number) });
  await unsell(deps, shard, order.id as number);
  const refunded = await refundPayment(deps, shard, order.payment_id as number, 'fulfillment_failed');
  return refunded ? 'refunded' : 'refund_pending';
}

export async function advanceStuck(deps: Core & Remote, shard: number, limit = 50): Promise<number> {
  const rows = (await deps.shards.get(shard).query(SQL.stuck, [deps.cfg.stuckOrderAfterS, limit])).rows;
  const failed: number[] = [];
  let firstErr: unknown;
  for (const r of rows) {
    await advanceOrder(deps, shard, r.id as number).catch(async (err: unknown) => {
      failed.push(r.id as number);
      firstErr ??= err;
      await deps.shards.get(shard).query(SQL.touch, [r.id]).catch(() => undefined);
    });
  }
  // One line per run, not per order: a gateway that lost its sessions would otherwise
  // write a warning per stuck order every few seconds.
  if (failed.length > 0) log.warn('advance failed',
    { shard, orders: failed.length, first: failed.slice(0, 5), err: firstErr });
  return rows.length;
}
