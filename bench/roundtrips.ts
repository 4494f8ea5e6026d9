// Database round trips per request type, counted by the engine itself (its workers'
// per-shard totals in /metrics, bf_pg_round_trips_total): each kind of request is sent alone, one at a time, on an idle
// engine, and the count it added is divided by the requests. Sequential requests never
// share a batched statement, so this is the cost of one request with nobody to share
// it with; under load the batched statements make it less. Background work of the
// workers (cache refreshes after writes) counts, as it is part of what a write costs.
import { PATIENT, request } from '../tools/lib/http.js';
import { sleep } from '../tools/lib/wait.js';
import type { RunCtx } from './context.js';
import { roundTrips, scrape } from './enginewatch.js';
import { sessionIdOf } from './payments.js';
import { say } from './say.js';

/**
 * /metrics is read at the moment of the scrape; the wait on each side lets the work a
 * request leaves behind (cache refreshes after writes) finish inside its window.
 */
const SHIPPED_MS = 2200;
const PER_KIND = 10;

type Step = (i: number) => Promise<unknown>;

async function measure(ctx: RunCtx, step: Step): Promise<number | null> {
  await sleep(SHIPPED_MS);
  const before = await scrape(ctx.target.engineUrl);
  for (let i = 0; i < PER_KIND; i++) await step(i);
  await sleep(SHIPPED_MS);
  const after = await scrape(ctx.target.engineUrl);
  if (!before || !after) return null;
  return Math.round(((roundTrips(after) - roundTrips(before)) / PER_KIND) * 10) / 10;
}

function twoShardLines(ctx: RunCtx): { item_id: string; quantity: number }[] {
  const a = ctx.fx.items[0]!;
  const b = ctx.fx.items.find((it) => it.shard !== a.shard)!;
  return [{ item_id: a.id, quantity: 1 }, { item_id: b.id, quantity: 1 }];
}

export async function roundTripsPerRequest(ctx: RunCtx): Promise<Record<string, number | null>> {
  const base = ctx.target.engineUrl;
  const who = ctx.fx.customers[0]!;
  const it = ctx.fx.items[0]!;
  const key = `rt-${Date.now().toString(36)}`;
  const order = async (lines: { item_id: string; quantity: number }[], k: string) =>
    (await request(base, 'POST', '/v1/orders', { ...PATIENT, token: who.token, body: { items: lines }, headers: { 'idempotency-key': k } })).body?.orders ?? [];
  const mine = (await order([{ item_id: it.id, quantity: 1 }], `${key}-seed`))[0]?.id as string | undefined;
  const toPay: string[] = [];
  const out: Record<string, number | null> = {
    item: await measure(ctx, () => request(base, 'GET', `/v1/items/${it.id}`, PATIENT)),
    search: await measure(ctx, (i) => request(base, 'GET', `/v1/items?category_id=${ctx.fx.items[i]!.category_id}&limit=20`, PATIENT)),
    order_status: mine ? await measure(ctx, () => request(base, 'GET', `/v1/orders/${mine}`, { ...PATIENT, token: who.token })) : null,
    checkout_one_shard: await measure(ctx, async (i) => toPay.push(...(await order([{ item_id: it.id, quantity: 1 }], `${key}-1-${i}`)).map((o: { id: string }) => o.id))),
    checkout_two_shards: await measure(ctx, (i) => order(twoShardLines(ctx), `${key}-2-${i}`)),
    checkout_replayed: await measure(ctx, () => order([{ item_id: it.id, quantity: 1 }], `${key}-1-0`)),
  };
  if (ctx.payments.available && ctx.target.gatewayUrl) {
    const sessions: string[] = [];
    out.payment_create = await measure(ctx, async (i) => {
      const res = await request(base, 'POST', `/v1/orders/${toPay[i]}/payments`, { ...PATIENT, token: who.token, body: { method: 'card' }, headers: { 'idempotency-key': `${key}-p-${i}` } });
      const s = res.status === 201 ? sessionIdOf(res.body as Record<string, unknown>) : null;
      if (s) sessions.push(s);
    });
    // The paid path after the customer pays: webhook, capture, placement, release.
    // No status polls in between (they would count): each payment is given time to finish.
    out.paid_order_after_payment = sessions.length === PER_KIND ? await measure(ctx, async (i) => {
      await request(ctx.target.gatewayUrl!, 'POST', `/v1/sessions/${sessions[i]}/complete`, { ...PATIENT, body: { outcome: 'succeeded' } });
      await sleep(PAID_SETTLE_MS);
    }) : null;
  }
  say(`round trips per request: ${JSON.stringify(out)}`);
  return out;
}

/** Webhook, capture, placement and release of one paid order take well under this on an idle engine. */
const PAID_SETTLE_MS = 300;
