// Redis stopped and restarted under a flash-sale load (a scarce item bought, canceled,
// paid and left to expire, so its stock keeps crossing zero while the sold-out gate and
// the cache lose their Redis). Zero oversell, reads served from Postgres meanwhile,
// writes continue, nothing acknowledged is lost, and the cache is right again after.
import { encodeRow } from '../../../src/router/ids.js';
import { localOf, shardOf } from '../../lib/ids.js';
import { sleep } from '../../lib/wait.js';
import { pick, type Customer, type Item } from '../fixture.js';
import { completeAtGateway, openPayment, placeOrder, type Paid } from '../flows.js';
import { checkInvariants, waitSettled } from '../invariants.js';
import { Outcome, pct, type RunCtx, type Scenario } from '../scenario.js';
import { Recorder, runClients } from '../stats.js';

const CLIENTS = 24;
const FLASH_STOCK = 150;

type Phase = 'before' | 'down' | 'after';

export const redisDown: Scenario = {
  name: 'redis-down',
  summary: 'stop Redis under a flash-sale load and restart it; zero oversell, reads from Postgres, nothing lost',
  async run(ctx: RunCtx) {
    const out = new Outcome('redis-down');
    const phaseS = Math.max(3, Math.floor(ctx.durationS / 3));
    await ctx.startEngine({ HOLD_TTL_S: String(Math.max(2, Math.floor(phaseS / 2))) });
    const flash = await ctx.fixture.item(0, FLASH_STOCK, { price_cents: 9900 });
    const items = [flash, ...(await ctx.fixture.items([0, 1, 2], 3, 1_000_000))];
    const customers = await ctx.fixture.customers(CLIENTS);
    const rec = new Recorder();
    const confirmed: string[] = [];
    const canceled: string[] = [];
    const paid: Paid[] = [];
    let phase: Phase = 'before';

    const step = async (client: number) => {
      const c: Customer = customers[client]!;
      const at = phase;
      const roll = Math.random();
      if (roll < 0.5) {
        const item = Math.random() < 0.5 ? flash : pick(items);
        rec.record(`read/${at}`, await ctx.api.call('GET', `/v1/items/${item.id}`));
        return;
      }
      const item: Item = roll < 0.85 ? flash : pick(items);
      const p = await placeOrder(ctx.api, rec, `write/${at}`, c, [{ item_id: item.id, quantity: 1 }], 10_000);
      if (!p.ids) return;
      confirmed.push(...p.ids);
      // Mostly canceled or left to expire, so the scarce stock keeps crossing zero.
      const next = Math.random();
      if (next < 0.45) {
        const r = await ctx.api.call('POST', `/v1/orders/${p.ids[0]}/cancel`, { token: c.token, body: {} });
        rec.record(`cancel/${at}`, r);
        if (r.status === 200) canceled.push(p.ids[0]!);
      } else if (next < (item === flash ? 0.55 : 0.75)) {
        const pay = await openPayment(ctx.api, rec, `payment/${at}`, c, p.ids[0]!, 10_000);
        if (pay && (await completeAtGateway(ctx.gateway, pay.sessionId, 'succeeded'))) paid.push(pay);
      } // else: left to expire
    };

    await runClients(CLIENTS, phaseS * 1000, 1_000_000, step);
    phase = 'down';
    ctx.stack.stopRedis();
    ctx.say('redis stopped');
    await runClients(CLIENTS, phaseS * 1000, 1_000_000, step);
    phase = 'after';
    await ctx.stack.startRedis();
    ctx.say('redis restarted');
    await runClients(CLIENTS, phaseS * 1000, 1_000_000, step);

    const settled = await waitSettled(ctx.stack, 45_000, ctx.gateway);
    out.addChecks(settled.checks);
    await checkAcknowledged(ctx, out, confirmed, canceled, paid);
    await checkCacheHealed(ctx, out, flash);
    const [row] = await ctx.stack.sql(0, 'SELECT available, held, sold, stocked FROM items WHERE id = $1', [localOf(flash.id)]);
    out.oversold += Math.max(0, row.held + row.sold - row.stocked);
    out.figures.flash_item = row;
    out.addChecks(await checkInvariants(ctx.stack));

    const reads = { before: rec.summary((l) => l === 'read/before', phaseS), down: rec.summary((l) => l === 'read/down', phaseS), after: rec.summary((l) => l === 'read/after', phaseS) };
    const writesDown = rec.summary((l) => l === 'write/down', phaseS);
    Object.assign(out.latencies, { reads_before: reads.before, reads_redis_down: reads.down, reads_after: reads.after, writes_redis_down: writesDown });
    out.expect(reads.down.n > 0 && reads.down.ok === reads.down.n, `reads while Redis was down: ${reads.down.ok}/${reads.down.n} answered 200 (${JSON.stringify(reads.down.statuses)})`);
    out.expect(writesDown.n > 0 && Object.keys(writesDown.statuses).every((k) => k === '201' || k === '409'), `writes while Redis was down answered ${JSON.stringify(writesDown.statuses)}`);
    Object.assign(out.figures, { phase_s: phaseS, confirmed_orders: confirmed.length, canceled: canceled.length, paid: paid.length, settle_ms: settled.ms });
    const all = rec.summary();
    return out.finish(
      { requests: all.n, rps: Math.round(all.n / (phaseS * 3)), expected_pct: pct(all.ok, all.n), clients: CLIENTS },
      { count: 1, what: `Redis down ${phaseS} s, restarted empty` },
      `reads p99 ${reads.before.p99_ms}->${reads.down.p99_ms}->${reads.after.p99_ms} ms; writes (down) p99 ${writesDown.p99_ms} ms`,
    );
  },
};

/** How long paid orders may take to reach their end after the load (webhook, fulfilment, or refund). */
const PAID_SETTLE_MS = 20_000;

/** Every order the clients were told about exists, with the state their actions imply. */
async function checkAcknowledged(ctx: RunCtx, out: Outcome, confirmed: string[], canceled: string[], paid: Paid[]): Promise<void> {
  const found = await orderStates(ctx, confirmed);
  const missing = confirmed.filter((id) => !found.has(id)).length;
  const badCancel = canceled.filter((id) => found.get(id) !== 'canceled').length;
  const ends = await paidEnds(ctx, paid);
  // Completed, or paid after its hold expired (the holds here last only seconds) and the
  // money went back. Anything else kept or lost the money.
  const refundedLate = ends.filter((r) => r.order_status === 'expired' && r.status === 'refunded').length;
  const unsettled = ends.filter((r) => !settledPaid(r));
  out.lost += missing + unsettled.length;
  out.expect(badCancel === 0, `${badCancel} acknowledged cancels are not canceled`);
  Object.assign(out.figures, { orders_missing: missing, paid_refunded_late: refundedLate, paid_not_settled: unsettled.length, unsettled: unsettled.slice(0, 5) });
}

async function orderStates(ctx: RunCtx, ids: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (let s = 0; s < ctx.stack.shardUrls.length; s++) {
    const locals = ids.filter((id) => shardOf(id) === s).map((id) => localOf(id));
    for (const r of await ctx.stack.sql(s, 'SELECT id, status FROM orders WHERE id = ANY($1)', [locals])) found.set(encodeRow('order', s, r.id as number), r.status as string);
  }
  return found;
}

type PaidEnd = Record<string, unknown>;
const settledPaid = (r: PaidEnd) => (r.order_status === 'completed' && r.status === 'succeeded') || (r.order_status === 'expired' && r.status === 'refunded');

/** Each paid order's payment and order state, once all have ended or PAID_SETTLE_MS passed. */
async function paidEnds(ctx: RunCtx, paid: Paid[]): Promise<PaidEnd[]> {
  const started = Date.now();
  let ends = await paymentStates(ctx, paid);
  while (ends.some((r) => !settledPaid(r)) && Date.now() - started < PAID_SETTLE_MS) {
    await sleep(250);
    ends = await paymentStates(ctx, paid);
  }
  return ends;
}

/** One statement per shard; a payment that is not there comes back as status 'missing'. */
async function paymentStates(ctx: RunCtx, paid: Paid[]): Promise<PaidEnd[]> {
  const found = new Map<string, PaidEnd>();
  for (let s = 0; s < ctx.stack.shardUrls.length; s++) {
    const locals = paid.filter((p) => shardOf(p.paymentId) === s).map((p) => localOf(p.paymentId));
    const rows = await ctx.stack.sql(s, 'SELECT p.id, p.status, p.escrow, o.status AS order_status FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = ANY($1)', [locals]);
    for (const r of rows) found.set(encodeRow('payment', s, r.id as number), r);
  }
  return paid.map((p) => found.get(p.paymentId) ?? { id: p.paymentId, status: 'missing' });
}

/** After Redis is back, a cached read of the flash item shows what Postgres holds. */
async function checkCacheHealed(ctx: RunCtx, out: Outcome, flash: Item): Promise<void> {
  let cached = -1;
  let db = -2;
  for (let i = 0; i < 40 && cached !== db; i++) {
    const [row] = await ctx.stack.sql(0, 'SELECT available FROM items WHERE id = $1', [localOf(flash.id)]);
    db = row.available as number;
    cached = ((await ctx.api.call('GET', `/v1/items/${flash.id}`)).body?.available as number) ?? -1;
    if (cached !== db) await sleep(100);
  }
  out.figures.cache_after = { cached, db };
  out.expect(cached === db, `cache shows available=${cached} for the flash item, Postgres ${db}, 4 s after the load`);
}
