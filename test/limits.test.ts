import t from 'tap';
import { api, customer, item, itemRow, localId, onShard, order, shardOf, uuidOf } from './helpers/api.js';

async function limitOf(customerId: string, itemId: string): Promise<number | undefined> {
  const rows = await onShard(shardOf(itemId), 'SELECT quantity FROM customer_limits WHERE customer_id = $1 AND item_id = $2', [uuidOf(customerId), localId(itemId)]);
  return rows[0]?.quantity;
}

t.test('a bot opening 100 concurrent orders on an item limited to 2 gets exactly 2 units', async (t) => {
  const it = await item({ stock: 10, max_per_customer: 2 });
  const bot = await customer();
  const results = await Promise.all(Array.from({ length: 100 }, () => order(bot.token, [{ item_id: it.id, quantity: 1 }])));
  const ok = results.filter((r) => r.status === 201);
  t.equal(ok.length, 2, 'two orders of one unit');
  const refused = results.filter((r) => r.status !== 201);
  // Under a loaded database some attempts may instead wait out lock_timeout: 503 overloaded, to retry.
  const codes = [...new Set(refused.map((r) => `${r.status} ${r.body?.error?.code}`))];
  t.ok(refused.every((r) => (r.status === 409 && r.body.error.code === 'purchase_limit') || (r.status === 503 && r.body.error.code === 'overloaded')),
    `the rest: 409 purchase_limit (${codes.join(', ')})`);
  t.ok(refused.filter((r) => r.status === 409).length >= 50, 'most are told the limit');
  const limited = refused.find((r) => r.status === 409)!;
  t.equal(limited.body.error.item_id, it.id, 'the error names the item');
  t.equal(limited.body.error.max_per_customer, 2);
  t.same(await itemRow(it.id), { available: 8, held: 2, sold: 0, stocked: 10 });
  t.equal(await limitOf(bot.id, it.id), 2, 'the running count');

  const canceled = await api('POST', `/v1/orders/${ok[0]!.body.orders[0].id}/cancel`, { token: bot.token });
  t.equal(canceled.status, 200);
  t.equal(await limitOf(bot.id, it.id), 1, 'a canceled hold gives its count back');
  const again = await Promise.all(Array.from({ length: 20 }, () => order(bot.token, [{ item_id: it.id, quantity: 1 }])));
  t.equal(again.filter((r) => r.status === 201).length, 1, 'after the cancel, exactly one more');
  t.same(await itemRow(it.id), { available: 8, held: 2, sold: 0, stocked: 10 });

  const other = await customer();
  t.equal((await order(other.token, [{ item_id: it.id, quantity: 2 }])).status, 201, 'the limit is per customer');
  t.equal((await order(other.token, [{ item_id: it.id, quantity: 1 }])).status, 409);
});

t.test('with less stock than the limit, the stock bounds it; one order above the limit is refused whole', async (t) => {
  const it = await item({ stock: 1, max_per_customer: 2 });
  const bot = await customer();
  const results = await Promise.all(Array.from({ length: 100 }, () => order(bot.token, [{ item_id: it.id, quantity: 1 }])));
  t.equal(results.filter((r) => r.status === 201).length, 1);
  t.ok(results.every((r) => r.status === 201 || r.status === 409));
  t.same(await itemRow(it.id), { available: 0, held: 1, sold: 0, stocked: 1 });

  const big = await item({ stock: 10, max_per_customer: 2 });
  const c = await customer();
  const three = await order(c.token, [{ item_id: big.id, quantity: 3 }]);
  t.equal(three.status, 409);
  t.equal(three.body.error.code, 'purchase_limit');
  const split = await order(c.token, [{ item_id: big.id, quantity: 2 }, { item_id: big.id, quantity: 1 }]);
  t.equal(split.status, 409, 'two lines of one item count together');
  t.same(await itemRow(big.id), { available: 10, held: 0, sold: 0, stocked: 10 }, 'refused orders hold nothing');
  t.equal(await limitOf(c.id, big.id) ?? 0, 0, 'and count nothing');
});
