// The cron process SIGKILLed while it sweeps a backlog of expired holds (small batches,
// so there are many), repeatedly, while new orders keep holding the same items. The
// respawned cron finishes the work exactly once: every backlog order expired once,
// stock back once (available + held + sold = stocked, held = active holds), and the
// per-customer counts given back once.
import { localOf, shardOf } from '../../lib/ids.js';
import { pool } from '../../lib/pool.js';
import { sleep } from '../../lib/wait.js';
import { pick } from '../fixture.js';
import { placeOrder, randomLines } from '../flows.js';
import { checkGatewayAgrees } from '../gateway-ledger.js';
import { checkInvariants } from '../invariants.js';
import { Outcome, pct, type RunCtx, type Scenario } from '../scenario.js';
import { killQuietly } from '../stack.js';
import { Recorder, runClients } from '../stats.js';

const KILLS = 3;
const BATCH = 10;

export const cronCrash: Scenario = {
  name: 'cron-crash',
  summary: `SIGKILL the cron process ${KILLS} times mid-sweep of a large expired-hold backlog (batches of ${BATCH})`,
  async run(ctx: RunCtx) {
    const out = new Outcome('cron-crash');
    const engine = await ctx.startEngine({ EXPIRY_BATCH_SIZE: String(BATCH), EXPIRY_EVERY_MS: '200', HOLD_TTL_S: '600' });
    const limited = await ctx.fixture.items([0, 1, 2], 3, 100_000, { max_per_customer: 100_000 });
    const items = [...limited, ...(await ctx.fixture.items([0, 1, 2], 3, 100_000))];
    const customers = await ctx.fixture.customers(16);
    const rec = new Recorder();
    const backlog = Math.min(4000, Math.max(600, ctx.durationS * 100));

    // The backlog: orders made, then their holds made due all at once.
    const made: string[] = [];
    await runClients(16, 120_000, backlog, async (client) => {
      const p = await placeOrder(ctx.api, rec, 'setup', customers[client]!, randomLines(items, 1 + Math.floor(Math.random() * 2), 3), 10_000);
      if (p.ids) made.push(...p.ids);
    });
    const due = await makeDue(ctx);
    ctx.say(`${due} orders made due; killing the cron while it sweeps`);

    const killed = { total: 0, leftAtKill: [] as number[] };
    const load = runClients(8, ctx.durationS * 1000, 1_000_000, async (client) => {
      await placeOrder(ctx.api, rec, 'order', customers[client]!, [{ item_id: pick(items).id, quantity: 1 }], 10_000);
    });
    const started = Date.now();
    while (killed.total < KILLS && Date.now() - started < 60_000) {
      const left = await remaining(ctx);
      if (left === 0) break;
      const cron = engine.cron()[0];
      const busy = await sweeping(ctx);
      if (cron && busy && left < due) {
        if (!killQuietly(cron)) continue;
        killed.total++;
        killed.leftAtKill.push(left);
        ctx.say(`killed cron ${cron} with ${left} orders left, a sweep statement in flight`);
        await waitRespawn(ctx, cron);
        continue;
      }
      await sleep(5);
    }
    const finished = await waitDrained(ctx, 60_000);
    await load;
    out.expect(finished.left === 0, `${finished.left} due orders still awaiting payment ${finished.ms} ms after the last kill`);
    out.expect(killed.total > 0, 'the cron was never caught mid-sweep: raise the backlog');

    await checkExactlyOnce(ctx, out, made);
    out.addChecks(await checkInvariants(ctx.stack));
    out.addChecks(await checkGatewayAgrees(ctx.stack, ctx.gateway, false));
    const orders = rec.summary((l) => l === 'order');
    Object.assign(out.figures, { backlog_orders: made.length, made_due: due, kills: killed, drain_ms_after_kills: finished.ms, batch: BATCH });
    out.latencies.order_during_sweep = orders;
    return out.finish(
      { requests: orders.n, rps: Math.round(orders.n / ctx.durationS), expected_pct: pct(orders.ok, orders.n), clients: 8 },
      { count: killed.total, what: `${killed.total} x SIGKILL cron mid-batch (${due} due orders)` },
      `drained ${finished.ms} ms after last kill; orders p99 ${orders.p99_ms} ms`,
    );
  },
};

/** Every order awaiting payment becomes due now, holds with it (one transaction per shard). */
async function makeDue(ctx: RunCtx): Promise<number> {
  let n = 0;
  for (let s = 0; s < ctx.stack.shardUrls.length; s++) {
    const [row] = await ctx.stack.sql(s, `WITH o AS (UPDATE orders SET hold_expires_at = now() - interval '1 second' WHERE status = 'awaiting_payment' RETURNING id),
      h AS (UPDATE holds SET expires_at = now() - interval '1 second' WHERE order_id IN (SELECT id FROM o) AND status = 'active' RETURNING 1)
      SELECT (SELECT count(*)::int FROM o) AS n`);
    n += row.n as number;
  }
  return n;
}

async function remaining(ctx: RunCtx): Promise<number> {
  const counts = await Promise.all(ctx.stack.shardUrls.map((_, s) => ctx.stack.sql(s, `SELECT count(*)::int AS n FROM orders WHERE status = 'awaiting_payment' AND hold_expires_at <= now()`)));
  return counts.reduce((sum, [r]) => sum + (r.n as number), 0);
}

/** True while the cron process runs a sweep statement on some shard. */
async function sweeping(ctx: RunCtx): Promise<boolean> {
  const rows = await Promise.all(ctx.stack.shardUrls.map((_, s) => ctx.stack.sql(s,
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'engine-cron' AND state = 'active' AND query LIKE '%hold_expires_at <= now()%'`)));
  return rows.some(([r]) => (r.n as number) > 0);
}

async function waitRespawn(ctx: RunCtx, dead: number): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < 15_000) {
    const now = ctx.engine().cron();
    if (now.length > 0 && !now.includes(dead)) return;
    await sleep(20);
  }
}

async function waitDrained(ctx: RunCtx, timeoutMs: number): Promise<{ left: number; ms: number }> {
  const t0 = Date.now();
  let left = await remaining(ctx);
  while (left > 0 && Date.now() - t0 < timeoutMs) {
    await sleep(100);
    left = await remaining(ctx);
  }
  return { left, ms: Date.now() - t0 };
}

/** Each backlog order expired exactly once, its holds expired, nothing else touched it. */
async function checkExactlyOnce(ctx: RunCtx, out: Outcome, made: string[]): Promise<void> {
  let notExpired = 0;
  let events = 0;
  let badHolds = 0;
  await pool([0, 1, 2], 3, async (s) => {
    const locals = made.filter((id) => shardOf(id) === s).map((id) => localOf(id));
    const [r] = await ctx.stack.sql(s, `SELECT
        (SELECT count(*)::int FROM orders WHERE id = ANY($1) AND status <> 'expired') AS not_expired,
        (SELECT count(*)::int FROM order_events WHERE order_id = ANY($1) AND to_status = 'expired') AS expired_events,
        (SELECT count(*)::int FROM holds WHERE order_id = ANY($1) AND status <> 'expired') AS bad_holds`, [locals]);
    notExpired += r.not_expired;
    events += r.expired_events;
    badHolds += r.bad_holds;
  });
  out.expect(notExpired === 0, `${notExpired} backlog orders did not end expired`);
  out.expect(events === made.length, `${events} 'expired' transitions recorded for ${made.length} orders (exactly once each)`);
  out.expect(badHolds === 0, `${badHolds} holds of expired orders not expired`);
  Object.assign(out.figures, { expired_transitions: events });
}

