// What the paid path costs the databases, counted by the engine itself: the round trips
// its workers made (bf_pg_round_trips_total in /metrics, summed over workers, shards and
// lanes; the cron process's lane is left out). The engine is one of its own, on
// databases of its own, so nothing but this file's requests is in a window. Each window
// waits on both sides for the work a request leaves behind (cache refreshes) to finish.
import t from 'tap';
import { roundTrips, scrape } from '../bench/enginewatch.js';
import { sleep } from '../tools/lib/wait.js';
import { eventually, localId, onShard, shardOf, useWorld } from './helpers/api.js';
import { isolatedShards, startReady, stop } from './helpers/engine.js';
import { buy, complete, ledgerBalanced, ledgerOf, orderOf, pay } from './helpers/storefront.js';
import { OWN_PORTS } from './setup/env.js';

const PORT = OWN_PORTS.roundTripsEngine;
const shards = await isolatedShards(`engine_round_trips_${PORT}`);
// No background reads in the windows: flags are read once at start, and a token once.
const engine = await startReady(PORT, { PG_SHARDS: shards, WORKERS: '1', FLAGS_REFRESH_MS: '600000', AUTH_CACHE_MS: '60000' });
useWorld({ engine: engine.url, shards });
t.teardown(() => stop(engine));

const SHIPPED_MS = 2500;

/** Round trips the engine's workers made while `step` ran (and its background work settled). */
async function counted(step: () => Promise<unknown>): Promise<number> {
  await sleep(SHIPPED_MS);
  const before = await scrape(engine.url);
  await step();
  await sleep(SHIPPED_MS);
  const after = await scrape(engine.url);
  if (!before || !after) throw new Error('no /metrics from the engine');
  return roundTrips(after) - roundTrips(before);
}

/** The order's status read straight from its shard: a poll through the engine would count. */
async function statusInDb(orderId: string): Promise<string> {
  return (await onShard(shardOf(orderId), 'SELECT status FROM orders WHERE id = $1', [localId(orderId)]))[0]?.status;
}

t.test('a paid instant order costs at most 3 round trips after payment, and opening its payment at most 4', async (t) => {
  const { c, o } = await buy();
  let p: any;
  const opening = await counted(async () => { p = await pay(c.token, o.id); });
  const paid = await counted(async () => {
    await complete(p.gateway_session_id, 'succeeded');
    t.ok(await eventually(async () => (await statusInDb(o.id)) === 'completed'), 'the order completed');
  });
  t.comment(`round trips: opening the payment ${opening}, webhook to completion ${paid}`);
  t.ok(paid <= 3, `webhook, capture, placement, release claim and completion in ${paid} round trips`);
  t.ok(opening <= 4, `opening the payment in ${opening} round trips`);
  t.match(await orderOf(c.token, o.id), { status: 'completed', payments: [{ status: 'succeeded', escrow: 'released' }] });
  t.same(await ledgerOf(o.id), [
    { account: 'customer', amount: -1250, kind: 'capture' }, { account: 'escrow', amount: 1250, kind: 'capture' },
    { account: 'escrow', amount: -1250, kind: 'release' }, { account: 'merchant', amount: 1250, kind: 'release' },
  ]);
  await ledgerBalanced(t);
});
