import t from 'tap';
import { loadConfig } from '../src/config.js';
import { openTool } from '../src/engine.js';
import { expireDueBatch } from '../src/orders/lifecycle.js';
import { sleep } from '../tools/lib/wait.js';
import { api, categoryOnShard, customer, item, itemRow, localId, onShard, order, shardOf } from './helpers/api.js';

// A second and third cron runner, in this process, on the same real shards.
const engine = openTool(loadConfig({ ...process.env, WORKERS: '1' }));
t.teardown(() => engine.close());

async function backdate(orderId: string): Promise<void> {
  await onShard(shardOf(orderId), "UPDATE orders SET hold_expires_at = now() - interval '1 second' WHERE id = $1", [localId(orderId)]);
  await onShard(shardOf(orderId), "UPDATE holds SET expires_at = now() - interval '1 second' WHERE order_id = $1", [localId(orderId)]);
}

async function statusOf(orderId: string): Promise<string> {
  return (await onShard(shardOf(orderId), 'SELECT status FROM orders WHERE id = $1', [localId(orderId)]))[0].status;
}

async function terminalEvents(orderId: string): Promise<number> {
  const rows = await onShard(shardOf(orderId), "SELECT count(*)::int AS n FROM order_events WHERE order_id = $1 AND to_status IN ('expired', 'canceled')", [localId(orderId)]);
  return rows[0].n;
}

t.test('the cron returns an expired hold to stock once, and the order ends expired', async (t) => {
  const it = await item({ stock: 6 });
  const c = await customer();
  const made = await order(c.token, [{ item_id: it.id, quantity: 4 }]);
  const id = made.body.orders[0].id;
  await backdate(id);
  const deadline = Date.now() + 15_000;
  while ((await statusOf(id)) !== 'expired' && Date.now() < deadline) await sleep(200);
  t.equal(await statusOf(id), 'expired', 'the engine cron expired it');
  t.same(await itemRow(it.id), { available: 6, held: 0, sold: 0, stocked: 6 });
  t.equal(await terminalEvents(id), 1);
  const holds = await onShard(shardOf(id), 'SELECT status FROM holds WHERE order_id = $1', [localId(id)]);
  t.same(holds.map((h) => h.status), ['expired']);
});

t.test('two cron runners at once release every expired hold exactly once', async (t) => {
  const cat = await categoryOnShard(2);
  const it = await item({ category_id: cat.id, stock: 60 });
  const c = await customer();
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) ids.push((await order(c.token, [{ item_id: it.id, quantity: 2 }])).body.orders[0].id);
  t.same(await itemRow(it.id), { available: 0, held: 60, sold: 0, stocked: 60 });
  await Promise.all(ids.map(backdate));
  const runs = await Promise.all([expireDueBatch(engine.deps, 2, 'runner-a'), expireDueBatch(engine.deps, 2, 'runner-b'), expireDueBatch(engine.deps, 2, 'runner-c')]);
  const mine = runs.flatMap((r) => r.orders).filter((o) => ids.some((id) => localId(id) === o));
  t.equal(new Set(mine).size, mine.length, 'no order expired by two runners');
  t.same(await itemRow(it.id), { available: 60, held: 0, sold: 0, stocked: 60 }, 'stock back exactly once');
  for (const id of ids) t.equal(await terminalEvents(id), 1, `${id} has one terminal event`);
});

t.test('a cancel racing the expiry cron returns the stock once', async (t) => {
  const cat = await categoryOnShard(0);
  const it = await item({ category_id: cat.id, stock: 20 });
  const c = await customer();
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await order(c.token, [{ item_id: it.id, quantity: 2 }])).body.orders[0].id);
  await Promise.all(ids.map(backdate));
  const cancels = ids.map((id) => api('POST', `/v1/orders/${id}/cancel`, { token: c.token }));
  const sweeps = [expireDueBatch(engine.deps, 0, 'racer-1'), expireDueBatch(engine.deps, 0, 'racer-2')];
  const results = await Promise.all(cancels);
  await Promise.all(sweeps);
  for (const r of results) t.ok(r.status === 200 || (r.status === 409 && r.body.error.code === 'invalid_state'), `cancel answered ${r.status}`);
  t.same(await itemRow(it.id), { available: 20, held: 0, sold: 0, stocked: 20 });
  for (const id of ids) {
    t.equal(await terminalEvents(id), 1, 'exactly one of cancel or expiry won');
    t.ok(['expired', 'canceled'].includes(await statusOf(id)));
  }
});

t.test('an expired hold does not block a sale while it waits for the sweeper', async (t) => {
  const it = await item({ stock: 1 });
  const [a, b] = [await customer(), await customer()];
  const first = await order(a.token, [{ item_id: it.id, quantity: 1 }]);
  t.equal((await order(b.token, [{ item_id: it.id, quantity: 1 }])).status, 409, 'sold out while the hold is live');
  await backdate(first.body.orders[0].id);
  // The sold-out gate (src/cache/gate.ts) trusts a closed state for SOLD_OUT_GATE_TTL_MS
  // (1 s), and this test moves time in Postgres only; the gate's verify read then sees
  // the expired hold and admits. The sweeper runs every 2 s (EXPIRY_EVERY_MS).
  let second = await order(b.token, [{ item_id: it.id, quantity: 1 }]);
  for (const deadline = Date.now() + 1500; second.status === 409 && Date.now() < deadline;) {
    await sleep(50);
    second = await order(b.token, [{ item_id: it.id, quantity: 1 }]);
  }
  t.equal(second.status, 201, 'the hold path reclaimed the expired hold');
  t.equal(await statusOf(first.body.orders[0].id), 'expired');
  t.same(await itemRow(it.id), { available: 0, held: 1, sold: 0, stocked: 1 });
});

t.test('an expired order cannot be canceled or revived', async (t) => {
  const it = await item({ stock: 3 });
  const c = await customer();
  const id = (await order(c.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0].id;
  await backdate(id);
  await expireDueBatch(engine.deps, shardOf(id), 'test');
  const res = await api('POST', `/v1/orders/${id}/cancel`, { token: c.token });
  t.equal(res.status, 409);
  t.equal(res.body.error.code, 'invalid_state');
  t.same(await itemRow(it.id), { available: 3, held: 0, sold: 0, stocked: 3 });
});
