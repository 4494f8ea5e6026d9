// Workers SIGKILLed again and again under a write load. Clients retry with the same
// Idempotency-Key and must get the original orders; afterwards no order is half-made,
// no hold leaked, and every payment the gateway captured placed its order.
import { encodeRow } from '../../../src/router/ids.js';
import { localOf, shardOf } from '../../lib/ids.js';
import { pool } from '../../lib/pool.js';
import { sleep } from '../../lib/wait.js';
import { pick, type Customer } from '../fixture.js';
import { completeAtGateway, openPayment, placeOrder, randomLines, type Paid, type Placed } from '../flows.js';
import { checkInvariants, waitSettled } from '../invariants.js';
import { Outcome, pct, type RunCtx, type Scenario } from '../scenario.js';
import { killQuietly } from '../stack.js';
import { Recorder, runClients } from '../stats.js';

const CLIENTS = 24;
const RETRY_WINDOW_MS = 25_000;
const REPLAY_MAX = 2000;

export const workerKill: Scenario = {
  name: 'worker-kill',
  summary: 'SIGKILL a worker repeatedly during a write load; same-key retries get the original orders',
  async run(ctx: RunCtx) {
    const out = new Outcome('worker-kill');
    const engine = await ctx.startEngine({});
    const workersWanted = engine.workers().length;
    const items = await ctx.fixture.items([0, 1, 2], 6, 1_000_000);
    const customers = await ctx.fixture.customers(CLIENTS);
    const rec = new Recorder();
    const placed: Placed[] = [];
    const paid: Paid[] = [];
    const durationMs = ctx.durationS * 1000;

    const stopAt = Date.now() + durationMs;
    const kills = killLoop(ctx, out, stopAt, workersWanted);
    const steps = await runClients(CLIENTS, durationMs, 1_000_000, async (client) => {
      const c: Customer = customers[client]!;
      const p = await placeOrder(ctx.api, rec, 'order', c, randomLines(items, 1 + Math.floor(Math.random() * 2), 3), RETRY_WINDOW_MS);
      placed.push(p);
      if (p.ids && Math.random() < 0.25) {
        const pay = await openPayment(ctx.api, rec, 'payment', c, p.ids[0]!, RETRY_WINDOW_MS);
        if (pay && (await completeAtGateway(ctx.gateway, pay.sessionId, 'succeeded'))) paid.push(pay);
      }
    });
    const { count: killed, respawnMs } = await kills;
    ctx.say(`load done: ${steps} checkouts, ${killed} workers killed; replaying keys`);

    const confirmed = placed.filter((p) => p.ids);
    await replay(ctx, out, confirmed);
    await compareWithDatabase(ctx, out, confirmed);
    const settled = await waitSettled(ctx.stack, 30_000, ctx.gateway);
    out.addChecks(settled.checks);
    await checkPayments(ctx, out, paid);
    out.addChecks(await checkInvariants(ctx.stack));

    const orders = rec.summary((l) => l === 'order');
    const retried = placed.filter((p) => p.res.retried);
    const gaveUp = placed.filter((p) => !p.ids && p.res.final.status !== 409);
    out.expect(gaveUp.length === 0, `${gaveUp.length} checkouts got no answer within ${RETRY_WINDOW_MS} ms of retries`);
    out.expect(engine.workers().length === workersWanted, 'all workers back at the end');
    Object.assign(out.figures, {
      checkouts: placed.length, confirmed: confirmed.length, retried_after_fault: retried.length, gave_up: gaveUp.length,
      payments_completed: paid.length, workers_killed: killed, respawn_ms_max: Math.max(0, ...respawnMs), settle_ms: settled.ms,
    });
    out.latencies.order_attempt = orders;
    out.latencies.payment_attempt = rec.summary((l) => l === 'payment');
    return out.finish(
      { requests: orders.n, rps: Math.round(orders.n / ctx.durationS), expected_pct: pct(confirmed.length + placed.filter((p) => p.res.final.status === 409).length, placed.length), clients: CLIENTS },
      { count: killed, what: `${killed} x SIGKILL worker` },
      `order p99 ${orders.p99_ms} ms; respawn max ${Math.max(0, ...respawnMs)} ms`,
    );
  },
};

/** Kills a random worker every few seconds until the load ends; measures each respawn. */
async function killLoop(ctx: RunCtx, out: Outcome, stopAt: number, wanted: number): Promise<{ count: number; respawnMs: number[] }> {
  const everyMs = Math.max(1500, Math.floor((stopAt - Date.now()) / 7));
  const respawnMs: number[] = [];
  let count = 0;
  await sleep(Math.min(1000, everyMs / 2));
  while (Date.now() + everyMs / 2 < stopAt && count < 50) {
    const victims = ctx.engine().workers();
    const victim = victims.length ? pick(victims) : null;
    if (victim && killQuietly(victim)) {
      count++;
      const t0 = Date.now();
      let back = false;
      while (Date.now() - t0 < 15_000) {
        const now = ctx.engine().workers();
        if (now.length >= wanted && !now.includes(victim)) { back = true; break; }
        await sleep(20);
      }
      out.expect(back, `worker ${victim} not respawned within 15 s`);
      respawnMs.push(Date.now() - t0);
    }
    await sleep(Math.max(0, everyMs - (Date.now() % everyMs)));
  }
  return { count, respawnMs };
}

/** The same key and body again: the stored answer, with the same order ids. */
async function replay(ctx: RunCtx, out: Outcome, confirmed: Placed[]): Promise<void> {
  let mismatched = 0;
  const sample = confirmed.slice(0, REPLAY_MAX);
  await pool(sample, 16, async (p) => {
    const r = await ctx.api.call('POST', '/v1/orders', { token: p.customer.token, body: p.body, headers: { 'idempotency-key': p.key } });
    const ids = r.status === 201 ? (r.body.orders as { id: string }[]).map((o) => o.id) : null;
    if (!ids || ids.join() !== p.ids!.join()) mismatched++;
  });
  out.figures.replayed_keys = sample.length;
  out.figures.replay_mismatches = mismatched;
  out.expect(mismatched === 0, `${mismatched} replays with the same Idempotency-Key gave other orders`);
}

/** Orders in the database for each confirmed key = exactly the ids the client was given. */
async function compareWithDatabase(ctx: RunCtx, out: Outcome, confirmed: Placed[]): Promise<void> {
  const inDb = new Map<string, string[]>();
  for (let s = 0; s < ctx.stack.shardUrls.length; s++) {
    const rows = await ctx.stack.sql(s, 'SELECT request_key, id FROM orders WHERE request_key = ANY($1)', [confirmed.map((p) => p.key)]);
    for (const r of rows) inDb.set(r.request_key, [...(inDb.get(r.request_key) ?? []), encodeRow('order', s, r.id as number)]);
  }
  let lost = 0;
  let extra = 0;
  for (const p of confirmed) {
    const db = (inDb.get(p.key) ?? []).sort();
    const told = [...p.ids!].sort();
    if (told.some((id) => !db.includes(id))) lost++;
    if (db.some((id) => !told.includes(id))) extra++;
  }
  out.lost += lost;
  out.figures.orders_lost = lost;
  out.figures.orders_duplicated = extra;
  out.expect(extra === 0, `${extra} keys made more orders than the client was told about`);
}

/**
 * Every payment the customer completed at the gateway placed its order, which completed.
 * A webhook that hit a killed worker arrives by the gateway's retries or the reconciler,
 * so this waits a bounded time; what is still not completed then is counted lost.
 */
async function checkPayments(ctx: RunCtx, out: Outcome, paid: Paid[], waitMs = 20_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  let pending = paid;
  for (;;) {
    const still: Paid[] = [];
    for (const p of pending) if (!(await completed(ctx, p))) still.push(p);
    pending = still;
    if (pending.length === 0 || Date.now() >= deadline) break;
    await sleep(250);
  }
  out.lost += pending.length;
  out.figures.payments_not_completed = pending.length;
}

async function completed(ctx: RunCtx, p: Paid): Promise<boolean> {
  const shard = shardOf(p.paymentId);
  const local = localOf(p.paymentId);
  const [row] = await ctx.stack.sql(shard, 'SELECT p.status, p.escrow, o.status AS order_status FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1', [local]);
  return !!row && row.status === 'succeeded' && row.escrow === 'released' && row.order_status === 'completed';
}
