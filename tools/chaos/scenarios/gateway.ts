// The payment gateway misbehaves while customers pay: slow and erroring API, webhooks
// duplicated, reordered and lost, and (full variant) the engine restarted between
// payments and their webhooks. Afterwards every order has ended completed, refunded
// or expired; the gateway and the engine agree on every payment; one capture is kept
// per completed order and none for the others; the ledger balances.
import { localOf, shardOf } from '../../lib/ids.js';
import { pool } from '../../lib/pool.js';
import { sleep } from '../../lib/wait.js';
import { pick, type Customer } from '../fixture.js';
import { completeAtGateway, gatewaySession, openPayment, placeOrder, resetKnobs, setKnobs, type Paid } from '../flows.js';
import { checkInvariants, waitSettled } from '../invariants.js';
import { Outcome, pct, type RunCtx, type Scenario } from '../scenario.js';
import { Recorder, runClients } from '../stats.js';

const CLIENTS = 24;
const FINAL = ['completed', 'refunded', 'expired', 'canceled'];

/** holdTtlS: seconds, or a function of the run's duration. */
interface Variant { name: string; summary: string; knobs: Record<string, unknown>; restart: boolean; holdTtlS: number | ((durationS: number) => number); payDelay: 'spread' | 'prompt' }

interface Attempt { customer: Customer; orderId: string; pay: Paid | null; outcome: 'succeeded' | 'declined' | null; taken: boolean }

function scenario(v: Variant): Scenario {
  return { name: v.name, summary: v.summary, run: (ctx) => run(ctx, v) };
}

export const gatewayFaults = scenario({
  name: 'gateway',
  summary: 'slow (150 ms), erroring (20%), duplicate (x3), out-of-order and lost (25%) webhooks, engine restart mid-run',
  knobs: { latency_ms: 150, error_rate: 0.2, duplicate_webhooks: 3, out_of_order: true, lost_webhooks: 0.25 },
  restart: true, holdTtlS: 8, payDelay: 'spread',
});

export const gatewayDuplicates = scenario({
  name: 'gateway-duplicates',
  summary: 'every webhook delivered 6 times, out of order',
  knobs: { duplicate_webhooks: 5, out_of_order: true },
  // Declined orders wait for their hold to expire before the run can settle: short, but
  // well past the second a prompt payment takes.
  restart: false, holdTtlS: (d) => Math.min(10, Math.max(5, Math.floor(d / 2))), payDelay: 'prompt',
});

async function run(ctx: RunCtx, v: Variant) {
  const out = new Outcome(v.name);
  const holdTtlS = typeof v.holdTtlS === 'number' ? v.holdTtlS : v.holdTtlS(ctx.durationS);
  const overrides = { HOLD_TTL_S: String(holdTtlS) };
  await ctx.startEngine(overrides);
  const items = await ctx.fixture.items([0, 1, 2], 3, 1_000_000);
  const customers = await ctx.fixture.customers(CLIENTS);
  const rec = new Recorder();
  const attempts: Attempt[] = [];
  await setKnobs(ctx.gateway, v.knobs);
  const statsBefore = (await ctx.gateway.call('GET', '/_sim/stats')).body as Record<string, number>;

  const durationMs = ctx.durationS * 1000;
  let restartMs = -1;
  const restart = v.restart ? (async () => {
    await sleep(durationMs / 2);
    const t0 = Date.now();
    await ctx.startEngine(overrides);
    restartMs = Date.now() - t0;
    ctx.say(`engine restarted in ${restartMs} ms`);
  })() : Promise.resolve();

  await runClients(CLIENTS, durationMs, 1_000_000, async (client) => {
    const c = customers[client]!;
    const p = await placeOrder(ctx.api, rec, 'order', c, [{ item_id: pick(items).id, quantity: 1 + Math.floor(Math.random() * 2) }], 20_000);
    if (!p.ids) return;
    const a: Attempt = { customer: c, orderId: p.ids[0]!, pay: null, outcome: null, taken: false };
    attempts.push(a);
    a.pay = await openPayment(ctx.api, rec, 'payment', c, a.orderId, 20_000);
    if (!a.pay) return;
    // Spread: some customers pay just before the hold runs out, so a lost or late webhook
    // lands after the expiry and the money must be refunded.
    await sleep(v.payDelay === 'spread' ? Math.random() * holdTtlS * 950 : Math.random() * 200);
    a.outcome = Math.random() < 0.9 ? 'succeeded' : 'declined';
    a.taken = await completeAtGateway(ctx.gateway, a.pay.sessionId, a.outcome);
  });
  await restart;
  await resetKnobs(ctx.gateway);
  ctx.say(`load done: ${attempts.length} orders; faults off, waiting for every order to settle`);

  const settled = await waitFinal(ctx, attempts, 60_000);
  const settledChecks = await waitSettled(ctx.stack, 30_000, ctx.gateway);
  out.addChecks(settledChecks.checks);
  await crossCheck(ctx, out, attempts);
  const ledger = await ctx.api.call('GET', '/v1/admin/ledger', { token: await ctx.fixture.admin() });
  out.expect(ledger.status === 200 && ledger.body?.balanced === true, `GET /v1/admin/ledger: ${ledger.status} balanced=${ledger.body?.balanced}`);
  out.addChecks(await checkInvariants(ctx.stack));

  const statsAfter = (await ctx.gateway.call('GET', '/_sim/stats')).body as Record<string, number>;
  const delta = Object.fromEntries(Object.entries(statsAfter).map(([k, n]) => [k, n - (statsBefore[k] ?? 0)]));
  const orders = rec.summary((l) => l === 'order');
  const payments = rec.summary((l) => l === 'payment');
  Object.assign(out.latencies, { order: orders, payment: payments });
  Object.assign(out.figures, { orders: attempts.length, final_states: settled.states, settle_ms: settled.ms, restart_ms: restartMs, gateway: delta, knobs: v.knobs });
  const faults = (delta.webhooks_sent ?? 0) - (delta.captures ?? 0) - (delta.declines ?? 0) + (delta.webhooks_dropped ?? 0) + (v.restart ? 1 : 0);
  return out.finish(
    { requests: orders.n + payments.n, rps: Math.round((orders.n + payments.n) / ctx.durationS), expected_pct: pct(attempts.filter((a) => a.pay).length, attempts.length), clients: CLIENTS },
    { count: faults, what: `${delta.webhooks_dropped ?? 0} lost, ${Math.max(0, (delta.webhooks_sent ?? 0) - (delta.captures ?? 0) - (delta.declines ?? 0))} extra deliveries, ${delta.webhooks_failed ?? 0} failed${v.restart ? ', 1 engine restart' : ''}` },
    `payment p99 ${payments.p99_ms} ms; settled in ${settled.ms} ms`,
  );
}

/** Waits until every order is in a final state; returns the count per state. */
async function waitFinal(ctx: RunCtx, attempts: Attempt[], timeoutMs: number): Promise<{ states: Record<string, number>; ms: number }> {
  const started = Date.now();
  let states: Record<string, number> = {};
  for (;;) {
    states = {};
    for (let s = 0; s < ctx.stack.shardUrls.length; s++) {
      const locals = attempts.filter((a) => shardOf(a.orderId) === s).map((a) => localOf(a.orderId));
      for (const r of await ctx.stack.sql(s, 'SELECT status, count(*)::int AS n FROM orders WHERE id = ANY($1) GROUP BY 1', [locals])) states[r.status] = (states[r.status] ?? 0) + (r.n as number);
    }
    const open = Object.entries(states).filter(([k]) => !FINAL.includes(k)).reduce((n, [, v]) => n + v, 0);
    if (open === 0 || Date.now() - started > timeoutMs) break;
    await sleep(500);
  }
  return { states, ms: Date.now() - started };
}

/** The gateway's view of every payment against the engine's, order by order. */
async function crossCheck(ctx: RunCtx, out: Outcome, attempts: Attempt[]): Promise<void> {
  let lost = 0;
  let doubled = 0;
  let notFinal = 0;
  const mismatches: unknown[] = [];
  await pool(attempts, 8, async (a) => {
    const shard = shardOf(a.orderId);
    const order = (await ctx.stack.sql(shard, 'SELECT status FROM orders WHERE id = $1', [localOf(a.orderId)]))[0];
    const pays = await ctx.stack.sql(shard, 'SELECT id, status, escrow, gateway_session_id FROM payments WHERE order_id = $1', [localOf(a.orderId)]);
    if (!FINAL.includes(order?.status)) notFinal++;
    let kept = 0;
    for (const p of pays) {
      const gw = p.gateway_session_id ? await gatewaySession(ctx.gateway, p.gateway_session_id as string) : null;
      if (gw?.status === 'succeeded') kept++;
      const agree = !gw
        || (gw.status === 'succeeded' && gw.escrow === 'released' && p.status === 'succeeded' && p.escrow === 'released' && order?.status === 'completed')
        || (gw.status === 'refunded' && p.status === 'refunded')
        || (['declined', 'expired', 'pending'].includes(gw.status) && ['failed', 'expired', 'pending'].includes(p.status as string));
      if (!agree) {
        lost++;
        if (mismatches.length < 5) mismatches.push({ order: a.orderId, order_status: order?.status, engine: `${p.status}/${p.escrow}`, gateway: `${gw?.status}/${gw?.escrow}` });
      }
    }
    if (kept > 1) doubled++;
    if ((order?.status === 'completed') !== (kept === 1)) {
      lost++;
      if (mismatches.length < 5) mismatches.push({ order: a.orderId, order_status: order?.status, kept_captures: kept });
    }
  });
  out.lost += lost;
  out.doubleCharged += doubled;
  out.expect(notFinal === 0, `${notFinal} orders not in a final state after the faults ended`);
  Object.assign(out.figures, { gateway_mismatches: mismatches });
}
