// One Postgres shard crashes under load and comes back. Its categories must answer
// 503 `unavailable` fast (no pile-up, no event-loop stall), the other shards keep
// their throughput and p99 within a stated margin of the baseline measured in the
// same run, the engine heals by itself, and the crons catch up on what came due
// during the outage: expired holds released, money that arrived too late refunded.
import { localOf } from '../../lib/ids.js';
import { sleep } from '../../lib/wait.js';
import { pick, type Customer, type Item } from '../fixture.js';
import { completeAtGateway, openPayment, placeOrder, type Paid } from '../flows.js';
import { checkInvariants, waitSettled } from '../invariants.js';
import { Outcome, pct, type RunCtx, type Scenario } from '../scenario.js';
import { Recorder, runClients } from '../stats.js';

const CLIENTS = 24;
const DOWN = 2;
/** Stated margins for the shards that stay up, against the baseline of the same run. */
// A 503 must never wait for a connect: its p99 stays under a third of PG_CONNECT_TIMEOUT_MS (1.5 s).
export const MARGIN = { throughputMin: 0.7, p99Factor: 2, p99SlackMs: 50, failFastP99Ms: 500, healthP99Factor: 2, healthP99SlackMs: 50, healMsMax: 10_000 };

type Phase = 'warmup' | 'baseline' | 'down' | 'heal';

export const shardDown: Scenario = {
  name: 'shard-down',
  summary: `stop Postgres shard ${DOWN} under load (immediate), restart it; fail fast, others unaffected, heal, crons catch up`,
  async run(ctx: RunCtx) {
    const out = new Outcome('shard-down');
    const phaseS = Math.max(3, Math.floor(ctx.durationS / 3));
    const holdTtlS = Math.max(2, Math.floor(phaseS / 2));
    await ctx.startEngine({ HOLD_TTL_S: String(holdTtlS) });
    const items = await ctx.fixture.items([0, 1, 2], 6, 1_000_000);
    // Sessions live on the user's shard: these customers must not lose theirs with the shard.
    const customers = await ctx.fixture.customers(CLIENTS + 4, (c) => c.shard !== DOWN);
    const rec = new Recorder();
    let phase: Phase = 'warmup';
    let phaseStarted = Date.now();
    let restartedAt = 0;
    let healedAt = 0;

    let done = false;
    const step = async (client: number) => {
      const c: Customer = customers[client]!;
      const item = pick(items);
      const at = phase;
      const outage = item.shard === DOWN && at === 'down';
      const where = `${item.shard === DOWN ? 'down' : 'up'}/${at}`;
      if (Math.random() < 0.5) {
        const r = await ctx.api.call('GET', `/v1/items/${item.id}`, { timeoutMs: 10_000 });
        // A cached item may still be served while its shard is down; otherwise 503.
        rec.record(`read/${where}`, r, r.status === 200 || (outage && r.status === 503));
        return;
      }
      const r = await ctx.api.call('POST', '/v1/orders', { token: c.token, body: { items: [{ item_id: item.id, quantity: 1 }] }, timeoutMs: 10_000 });
      rec.record(`write/${where}`, r, outage ? r.status === 503 && r.body?.error?.type === 'unavailable' : r.status === 201);
      if (item.shard === DOWN && at === 'heal' && r.status === 201 && !healedAt) healedAt = Date.now();
    };
    const health = async () => {
      while (!done) {
        rec.record(`healthz/${phase}`, await ctx.api.call('GET', '/healthz', { timeoutMs: 5000 }));
        await sleep(50);
      }
    };
    const next = (p: Phase) => { phase = p; phaseStarted = Date.now(); };

    const healthLoop = health();
    // Not measured: pools fill, caches and the JIT warm up, so the baseline is the steady state.
    await runClients(CLIENTS, Math.min(3000, phaseS * 500), 1_000_000, step);
    next('baseline');
    await runClients(CLIENTS, phaseS * 1000, 1_000_000, step);
    // Money that will arrive while the shard is down, for orders whose holds expire meanwhile.
    const late = await latePayments(ctx, rec, customers.slice(CLIENTS), items.filter((i) => i.shard === DOWN));
    next('down');
    ctx.stack.stopShard(DOWN, 'immediate');
    ctx.say(`shard ${DOWN} stopped; ${late.length} payments completing at the gateway during the outage`);
    await Promise.all(late.map((p) => completeAtGateway(ctx.gateway, p.sessionId, 'succeeded')));
    await runClients(CLIENTS, phaseS * 1000 - (Date.now() - phaseStarted), 1_000_000, step);
    next('heal');
    ctx.stack.startShard(DOWN);
    restartedAt = Date.now();
    ctx.say(`shard ${DOWN} restarted`);
    await runClients(CLIENTS, phaseS * 1000, 1_000_000, step);
    done = true;
    await healthLoop;

    const settled = await waitSettled(ctx.stack, 45_000, ctx.gateway);
    out.addChecks(settled.checks);
    await checkLate(ctx, out, late);
    out.addChecks(await checkInvariants(ctx.stack));
    return judge(ctx, out, rec, phaseS, { restartedAt, healedAt, settleMs: settled.ms, late: late.length, holdTtlS });
  },
};

/** Orders on the shard about to go down, with a payment open; their holds expire during the outage. */
async function latePayments(ctx: RunCtx, rec: Recorder, customers: Customer[], items: Item[]): Promise<Paid[]> {
  const out: Paid[] = [];
  for (const c of customers) {
    const p = await placeOrder(ctx.api, rec, 'setup', c, [{ item_id: pick(items).id, quantity: 1 }], 10_000);
    const pay = p.ids ? await openPayment(ctx.api, rec, 'setup', c, p.ids[0]!, 10_000) : null;
    if (pay) out.push(pay);
  }
  return out;
}

async function checkLate(ctx: RunCtx, out: Outcome, late: Paid[]): Promise<void> {
  const states: string[] = [];
  for (const p of late) {
    const [row] = await ctx.stack.sql(DOWN, 'SELECT p.status, o.status AS order_status FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1', [localOf(p.paymentId)]);
    states.push(`${row?.order_status}/${row?.status}`);
    // Paid too late (hold gone): refunded. Had it landed before the expiry: completed. Never kept without an order.
    const fine = row && ((row.order_status === 'expired' && row.status === 'refunded') || (row.order_status === 'completed' && row.status === 'succeeded'));
    out.expect(!!fine, `late payment ${p.paymentId} ended ${row?.order_status}/${row?.status}`);
  }
  out.figures.late_payments = states;
}

function judge(ctx: RunCtx, out: Outcome, rec: Recorder, phaseS: number, t: { restartedAt: number; healedAt: number; settleMs: number; late: number; holdTtlS: number }) {
  const s = (f: (l: string) => boolean) => rec.summary(f, phaseS);
  const upBase = s((l) => /^(read|write)\/up\/baseline$/.test(l));
  const upDown = s((l) => /^(read|write)\/up\/down$/.test(l));
  const upWriteBase = s((l) => l === 'write/up/baseline');
  const upWriteDown = s((l) => l === 'write/up/down');
  const downWrites = s((l) => l === 'write/down/down');
  const downReads = s((l) => l === 'read/down/down');
  const unavailable = rec.summary((l) => l === 'write/down/down');
  const health = s((l) => l === 'healthz/down');
  const afterRestart = s((l) => l === 'write/down/heal');
  const healthBase = s((l) => l === 'healthz/baseline');
  const healMs = t.healedAt ? t.healedAt - t.restartedAt : -1;
  Object.assign(out.latencies, { up_baseline: upBase, up_during_outage: upDown, up_writes_baseline: upWriteBase, up_writes_during_outage: upWriteDown, down_shard_writes: downWrites, down_shard_reads: downReads, healthz_baseline: healthBase, healthz_during_outage: health, down_shard_writes_after_restart: afterRestart });

  const m = MARGIN;
  const throughputRatio = upBase.rps ? Math.round((upDown.rps / upBase.rps) * 100) / 100 : 0;
  const p99Limit = upWriteBase.p99_ms * m.p99Factor + m.p99SlackMs;
  out.expect(downWrites.n > 0 && downWrites.ok === downWrites.n, `writes to the stopped shard: ${downWrites.ok}/${downWrites.n} answered 503 unavailable (${JSON.stringify(downWrites.statuses)})`);
  out.expect(downWrites.p99_ms <= m.failFastP99Ms, `503s took p99 ${downWrites.p99_ms} ms (> ${m.failFastP99Ms} ms): not failing fast`);
  out.expect(Object.keys(downReads.statuses).every((k) => k === '200' || k === '503'), `reads of the stopped shard answered ${JSON.stringify(downReads.statuses)}`);
  out.expect(throughputRatio >= m.throughputMin, `other shards' throughput fell to ${throughputRatio} x baseline (< ${m.throughputMin})`);
  out.expect(upWriteDown.p99_ms <= p99Limit, `other shards' write p99 ${upWriteDown.p99_ms} ms > ${p99Limit} ms (${m.p99Factor} x baseline ${upWriteBase.p99_ms} + ${m.p99SlackMs})`);
  out.expect(upDown.ok === upDown.n, `other shards: ${upDown.n - upDown.ok} failed answers during the outage (${JSON.stringify(upDown.statuses)})`);
  const healthLimit = healthBase.p99_ms * m.healthP99Factor + m.healthP99SlackMs;
  out.expect(health.p99_ms <= healthLimit, `/healthz p99 ${health.p99_ms} ms during the outage (> ${healthLimit} ms = ${m.healthP99Factor} x baseline + ${m.healthP99SlackMs}): event loop stalled`);
  out.expect(healMs >= 0 && healMs <= m.healMsMax, `writes to the restarted shard ${healMs < 0 ? 'never succeeded' : `took ${healMs} ms`} (limit ${m.healMsMax} ms)`);
  Object.assign(out.figures, { phase_s: phaseS, hold_ttl_s: t.holdTtlS, throughput_ratio: throughputRatio, write_p99_limit_ms: p99Limit, heal_ms: healMs, settle_ms: t.settleMs, margins: m });

  const all = rec.summary((l) => /^(read|write)\//.test(l) && !l.endsWith('/warmup'));
  return out.finish(
    { requests: all.n, rps: Math.round(all.n / (phaseS * 3)), expected_pct: pct(all.ok, all.n), clients: CLIENTS },
    { count: 1 + t.late, what: `shard ${DOWN} down ${phaseS} s; ${t.late} payments during it` },
    `503 p99 ${unavailable.p99_ms} ms; others p99 ${upWriteBase.p99_ms}->${upWriteDown.p99_ms} ms, ${upBase.rps}->${upDown.rps} req/s; heal ${healMs} ms`,
  );
}

