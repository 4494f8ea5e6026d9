// The flash sale: thousands of buyers on one hot item of small stock, beside uniform
// holds on the rest of the catalog. Afterwards the hot item must have exactly its
// stock held (or sold): never more (oversell), and as many 201s as units.
import type { Context, RequestData, RequestSpec } from 'autocannon';
import { expectStatus, PATIENT, request } from '../../tools/lib/http.js';
import { localOf, shardOf } from '../../tools/lib/ids.js';
import type { RunCtx, ScenarioResult } from '../context.js';
import { coresUsed, cpuSnapshot } from '../cpu.js';
import { onShards } from '../fixture.js';
import { cannon, count5xx, keepErrorCode, Recorder } from '../load.js';
import { PgWatch, pgPeaks } from '../pgwatch.js';
import { say } from '../say.js';
import { makeShop, pickCustomer, postOrder } from './black-friday.js';

export interface HotRow { available: number; held: number; sold: number; stocked: number; active_hold_units: number; order_units: number }

/** A fresh item of `stock` units, registered so the invariant checks count it as this run's. */
export async function createHotItem(ctx: RunCtx, stock: number, label: string): Promise<string> {
  const made = await request(ctx.target.engineUrl, 'POST', '/v1/items', {
    ...PATIENT, token: ctx.adminToken,
    body: { category_id: ctx.fx.categories[0]!.id, name: `bench ${label} ${Date.now().toString(36)}`, price_cents: 9900, currency: 'USD', stock, description: 'Doorbuster' },
  });
  const hot = expectStatus<{ id: string }>(made, 201, 'create hot item');
  ctx.touched.push(hot.id);
  return hot.id;
}

export async function hotRow(ctx: RunCtx, id: string): Promise<HotRow> {
  const shard = shardOf(id);
  const [row] = await onShards([ctx.target.pgShards[shard]!], async (c) => (await c.query<HotRow>(
    `SELECT available, held, sold, stocked,
            (SELECT coalesce(sum(quantity), 0)::int FROM holds WHERE item_id = $1 AND status = 'active') AS active_hold_units,
            (SELECT coalesce(sum(l.quantity), 0)::int FROM order_lines l JOIN orders o ON o.id = l.order_id
              WHERE l.item_id = $1 AND o.status NOT IN ('expired', 'canceled', 'failed', 'refunded')) AS order_units
     FROM items WHERE id = $1`, [localOf(id)])).rows[0]);
  if (!row) throw new Error(`hot item ${id} not found on shard ${shard}`);
  return row;
}

/**
 * What must be true of a hot item after its storm: never more units taken than its
 * stock, its holds add up, live orders carry its units, and the units answered 201
 * match them. An answer lost to a 5xx or a timeout (`ambiguous`) may still have taken
 * a unit (the client would retry with its Idempotency-Key); so 201s may fall short of
 * units, never exceed them.
 */
export function hotViolations(scenario: string, id: string, stock: number, row: HotRow, units201: number, ambiguous: number): string[] {
  const units = row.held + row.sold;
  const out: string[] = [];
  if (units > stock || units201 > stock) out.push(`${scenario} oversold hot item ${id}: stock ${stock}, held+sold ${units}, units answered 201 ${units201}`);
  if (row.held !== row.active_hold_units) out.push(`${scenario} hot item ${id}: held ${row.held} but active holds sum to ${row.active_hold_units}`);
  if (row.order_units !== units) out.push(`${scenario} hot item ${id}: ${units} units held or sold but live orders carry ${row.order_units}`);
  if (units201 > units || (units201 < units && ambiguous === 0)) out.push(`${scenario} hot item ${id}: ${units} units held but ${units201} answered 201 (and no 5xx or timeout to explain it)`);
  return out;
}

export async function flashSale(ctx: RunCtx): Promise<ScenarioResult> {
  const { flags, target, fx } = ctx;
  const hotId = await createHotItem(ctx, flags.flashStock, 'flash');
  const shop = makeShop(ctx, 2);
  const others = fx.items;
  const requests: RequestSpec[] = [{
    setupRequest: (req: RequestData, c: Context) => {
      const isHot = shop.random() < flags.flashHotShare;
      const item = isHot ? hotId : others[Math.floor(shop.random() * others.length)]!.id;
      c.kind = isHot ? 'hot' : 'other';
      return postOrder(req, shop, pickCustomer(shop).token, [{ item_id: item, quantity: 1 }], flags.keys);
    },
    onResponse: keepErrorCode,
  }];
  say(`flash-sale: ${flags.flashConnections} buyers for ${flags.flashDuration} s on hot item ${hotId} (stock ${flags.flashStock}, ${flags.flashHotShare * 100}% of orders)`);
  const rec = new Recorder();
  const watch = new PgWatch(target.pgShards);
  await watch.start();
  const cpu0 = cpuSnapshot();
  const started = new Date();
  rec.start();
  const inst = await cannon({
    title: 'buyers', url: target.engineUrl, connections: flags.flashConnections, duration_s: flags.flashDuration, timeout_s: flags.timeout,
    requests, defaultKind: 'other',
  }, rec);
  rec.stop();
  const pgSamples = await watch.stop();
  const cores = coresUsed(cpu0, cpuSnapshot(), target.enginePid);

  const row = await hotRow(ctx, hotId);
  const hot201 = rec.count('hot', 201); // one unit each
  const ambiguous = count5xx(rec.stats(['hot'])) + inst.errors;
  const units = row.held + row.sold;
  const violations = hotViolations('flash-sale', hotId, flags.flashStock, row, hot201, ambiguous);
  const soldOut = row.available === 0 && units === flags.flashStock;
  const kinds = Object.fromEntries(rec.kinds().sort().map((k) => [k, rec.stats([k])]));
  const all = rec.stats();
  const secs = Math.max(rec.seconds, 0.001);
  const soldOut409 = all.codes.sold_out ?? 0;
  return {
    name: 'flash-sale', started_at: started.toISOString(), duration_s: Math.round(rec.seconds * 100) / 100, connections: flags.flashConnections,
    kinds, groups: { holds: all }, instances: [inst], timeline: rec.timeline, pg: pgSamples,
    extra: {
      cores_used: cores,
      postgres: pgPeaks(pgSamples),
      hot: {
        id: hotId, stock: flags.flashStock, answered_201: hot201, answered_5xx_or_lost: ambiguous, sold_out_409: kinds.hot?.codes.sold_out ?? 0, ...row,
        sold_out: soldOut, exactly_stock_held: soldOut && row.order_units === flags.flashStock, every_unit_answered_201: hot201 === units,
      },
      holds_per_s: Math.round((all.status['201'] ?? 0) / secs), sold_out_per_s: Math.round(soldOut409 / secs),
      hot_share: flags.flashHotShare,
    },
    violations,
  };
}
