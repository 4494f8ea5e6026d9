import t from 'tap';
import { admin, api, categoryOnShard, customer, customers, invariantsHold, item, itemRow, localId, onShard, order, shardOf, uniq } from './helpers/api.js';

t.test('500 concurrent buyers on one item of stock 37: exactly 37 get it, the rest 409 sold_out', async (t) => {
  const it = await item({ stock: 37 });
  const buyers = await customers(500, 24);
  const results = await Promise.all(buyers.map((b) => order(b.token, [{ item_id: it.id, quantity: 1 }])));
  const ok = results.filter((r) => r.status === 201);
  const soldOut = results.filter((r) => r.status === 409 && r.body.error.type === 'sold_out');
  t.equal(ok.length, 37, 'exactly the stock is sold');
  t.equal(soldOut.length, 500 - 37, 'everyone else is told sold out');
  t.equal(soldOut[0]!.body.error.item_id, it.id, 'the error names the item');
  t.same(await itemRow(it.id), { available: 0, held: 37, sold: 0, stocked: 37 });
  const holds = await onShard(shardOf(it.id), "SELECT count(*)::int AS n, sum(quantity)::int AS q FROM holds WHERE item_id = $1 AND status = 'active'", [localId(it.id)]);
  t.same(holds[0], { n: 37, q: 37 });
  await invariantsHold(t, { items: [it.id], customers: buyers.map((b) => b.id) });
});

t.test('multi-line orders contending on two items never oversell either', async (t) => {
  const cat = await categoryOnShard(1);
  const a = await item({ category_id: cat.id, stock: 30 });
  const b = await item({ category_id: cat.id, stock: 50 });
  const buyers = await customers(40, 16);
  const attempts = Array.from({ length: 200 }, (_, i) => {
    const lines = i % 2 ? [{ item_id: a.id, quantity: 1 }, { item_id: b.id, quantity: 1 }] : [{ item_id: b.id, quantity: 1 }, { item_id: a.id, quantity: 1 }];
    return order(buyers[i % buyers.length]!.token, lines);
  });
  const results = await Promise.all(attempts);
  const ok = results.filter((r) => r.status === 201).length;
  t.equal(ok, 30, 'a, the scarcer item, bounds the successful orders');
  t.ok(results.every((r) => r.status === 201 || r.status === 409), 'only 201 or 409');
  t.same(await itemRow(a.id), { available: 0, held: 30, sold: 0, stocked: 30 });
  t.same(await itemRow(b.id), { available: 20, held: 30, sold: 0, stocked: 50 }, 'failed orders left nothing held on b');
  await invariantsHold(t, { items: [a.id, b.id], customers: buyers.map((c) => c.id) });
});

t.test('two lines of one item are summed before the stock check', async (t) => {
  const it = await item({ stock: 1 });
  const c = await customer();
  const res = await order(c.token, [{ item_id: it.id, quantity: 1 }, { item_id: it.id, quantity: 1 }]);
  t.equal(res.status, 409);
  t.equal(res.body.error.type, 'sold_out');
  t.same(await itemRow(it.id), { available: 1, held: 0, sold: 0, stocked: 1 });
});

t.test('a cross-shard cart whose last shard is sold out leaves nothing held anywhere', async (t) => {
  const [c0, c1, c2] = await Promise.all([categoryOnShard(0), categoryOnShard(1), categoryOnShard(2)]);
  const i0 = await item({ category_id: c0.id, stock: 5 });
  const i1 = await item({ category_id: c1.id, stock: 5 });
  const i2 = await item({ category_id: c2.id, stock: 0 });
  const c = await customer();
  const res = await order(c.token, [{ item_id: i0.id, quantity: 2 }, { item_id: i1.id, quantity: 2 }, { item_id: i2.id, quantity: 1 }]);
  t.equal(res.status, 409);
  t.equal(res.body.error.type, 'sold_out');
  t.equal(res.body.error.item_id, i2.id, 'names the sold-out item');
  for (const id of [i0.id, i1.id]) t.same(await itemRow(id), { available: 5, held: 0, sold: 0, stocked: 5 }, `nothing held on shard ${shardOf(id)}`);
  const list = await api('GET', '/v1/orders', { token: c.token });
  t.ok(list.body.data.every((o: { status: string }) => o.status === 'canceled'), 'compensated orders are canceled');
});

t.test('a cross-shard cart becomes one order per shard, each with its own total', async (t) => {
  const [c0, c2] = await Promise.all([categoryOnShard(0), categoryOnShard(2)]);
  const i0 = await item({ category_id: c0.id, stock: 5, price_cents: 250 });
  const i2 = await item({ category_id: c2.id, stock: 5, price_cents: 1999 });
  const c = await customer();
  const res = await order(c.token, [{ item_id: i0.id, quantity: 2 }, { item_id: i2.id, quantity: 1 }]);
  t.equal(res.status, 201);
  t.equal(res.body.orders.length, 2);
  const byShard = Object.fromEntries(res.body.orders.map((o: { shard: number }) => [o.shard, o]));
  t.match(byShard[0], { status: 'awaiting_payment', total_cents: 500, currency: 'USD', lines: [{ item_id: i0.id, quantity: 2, price_cents: 250 }] });
  t.match(byShard[2], { status: 'awaiting_payment', total_cents: 1999, lines: [{ item_id: i2.id, quantity: 1 }] });
  t.ok(Date.parse(byShard[0].hold_expires_at) > Date.now(), 'holds expire in the future');
  const mine = await api('GET', '/v1/orders', { token: c.token });
  t.same(mine.body.data.map((o: { id: string }) => o.id).sort(), res.body.orders.map((o: { id: string }) => o.id).sort());
});

t.test('Idempotency-Key: replay, mismatch, and concurrent duplicates make one order', async (t) => {
  const it = await item({ stock: 100 });
  const c = await customer();
  const key = uniq('key');
  const first = await order(c.token, [{ item_id: it.id, quantity: 2 }], key);
  const again = await order(c.token, [{ item_id: it.id, quantity: 2 }], key);
  t.equal(first.status, 201);
  t.equal(again.status, 201);
  t.same(again.body, first.body, 'the same response is replayed');
  t.equal(again.headers.get('idempotent-replayed'), 'true');
  const other = await order(c.token, [{ item_id: it.id, quantity: 3 }], key);
  t.equal(other.status, 422);
  const key2 = uniq('key');
  const burst = await Promise.all(Array.from({ length: 10 }, () => order(c.token, [{ item_id: it.id, quantity: 1 }], key2)));
  const created = new Set(burst.filter((r) => r.status === 201).map((r) => r.body.orders[0].id));
  t.equal(created.size, 1, 'one order for the key');
  t.ok(burst.every((r) => r.status === 201 || (r.status === 409 && r.body.error.code === 'idempotency_in_progress')));
  t.same(await itemRow(it.id), { available: 97, held: 3, sold: 0, stocked: 100 }, 'stock taken once per key');
});

// Concurrent claims and stored replies of one shard travel as one statement
// (src/shard/batch.ts): every request must still get back its own answer.
t.test('200 concurrent keyed orders each replay their own answer, sold-out refusals too', async (t) => {
  const it = await item({ stock: 60 });
  const buyers = await customers(20, 10);
  const sends = Array.from({ length: 200 }, (_, i) => ({ token: buyers[i % 20]!.token, key: uniq(`burst-${i}`), quantity: 1 + (i % 2) }));
  const firsts = await Promise.all(sends.map((s) => order(s.token, [{ item_id: it.id, quantity: s.quantity }], s.key)));
  t.ok(firsts.every((r) => r.status === 201 || (r.status === 409 && r.body.error.type === 'sold_out')), 'only 201 or 409 sold_out');
  const units = firsts.reduce((n, r, i) => n + (r.status === 201 ? sends[i]!.quantity : 0), 0);
  t.ok(units <= 60 && units >= 59, `the stock is sold (${units} of 60 units)`);
  const replays = await Promise.all(sends.map((s) => order(s.token, [{ item_id: it.id, quantity: s.quantity }], s.key)));
  t.same(replays.map((r) => [r.status, r.body]), firsts.map((r) => [r.status, r.body]), 'every replay is its own first answer');
  t.ok(replays.every((r) => r.headers.get('idempotent-replayed') === 'true'), 'all replayed');
  const ids = firsts.filter((r) => r.status === 201).map((r) => r.body.orders[0].id);
  t.equal(new Set(ids).size, ids.length, 'one order per key');
  t.same(await itemRow(it.id), { available: 60 - units, held: units, sold: 0, stocked: 60 }, 'replays took nothing');
});

t.test("another customer's order is 404, an admin sees it", async (t) => {
  const it = await item({ stock: 5 });
  const [a, b] = await customers(2);
  const made = await order(a!.token, [{ item_id: it.id, quantity: 1 }]);
  const id = made.body.orders[0].id;
  t.equal((await api('GET', `/v1/orders/${id}`, { token: b!.token })).status, 404);
  t.equal((await api('POST', `/v1/orders/${id}/cancel`, { token: b!.token })).status, 404);
  const asAdmin = await api('GET', `/v1/orders/${id}`, { token: await admin() });
  t.equal(asAdmin.status, 200);
  t.equal(asAdmin.body.customer_id, a!.id);
  t.equal((await api('GET', `/v1/orders/${id}`, { token: a!.token })).body.id, id);
});

t.test('bad order input is a 4xx and holds nothing', async (t) => {
  const it = await item({ stock: 5 });
  const c = await customer();
  const cases: [unknown, number][] = [
    [{ items: [] }, 400], [{ items: [{ item_id: it.id, quantity: 0 }] }, 400], [{ items: [{ item_id: it.id, quantity: 1001 }] }, 400],
    [{ items: [{ item_id: it.id, quantity: 1.5 }] }, 400], [{ items: [{ item_id: it.id, quantity: '1' }] }, 400],
    [{ items: Array.from({ length: 51 }, () => ({ item_id: it.id, quantity: 1 })) }, 400],
    [{ items: [{ item_id: it.id, quantity: 1, price_cents: 1 }] }, 400], [{ items: [{ item_id: 'it_0zzzzzz', quantity: 1 }] }, 404],
    [{ items: [{ item_id: 'nope', quantity: 1 }] }, 404], [{ items: [{ item_id: it.id, quantity: 1 }], customer_id: 'x' }, 400],
  ];
  for (const [body, status] of cases) {
    const res = await api('POST', '/v1/orders', { token: c.token, body });
    t.equal(res.status, status, JSON.stringify(body).slice(0, 80));
  }
  t.same(await itemRow(it.id), { available: 5, held: 0, sold: 0, stocked: 5 });
  t.equal((await api('POST', '/v1/orders', { body: { items: [{ item_id: it.id, quantity: 1 }] } })).status, 401);
});

t.test('cancel returns the stock once, even when two cancels race; events audit it', async (t) => {
  const it = await item({ stock: 10 });
  const c = await customer();
  const made = await order(c.token, [{ item_id: it.id, quantity: 4 }]);
  const id = made.body.orders[0].id;
  const [x, y] = await Promise.all([api('POST', `/v1/orders/${id}/cancel`, { token: c.token }), api('POST', `/v1/orders/${id}/cancel`, { token: c.token })]);
  t.equal(x.status, 200);
  t.equal(y.status, 200);
  t.equal(x.body.status, 'canceled');
  t.same(await itemRow(it.id), { available: 10, held: 0, sold: 0, stocked: 10 });
  const ev = await api('GET', `/v1/orders/${id}/events`, { token: c.token });
  t.same(ev.body.data.map((e: { to_status: string }) => e.to_status), ['awaiting_payment', 'canceled']);
  t.match(ev.body.data[1], { from_status: 'awaiting_payment', actor: `customer:${c.id}`, reason: 'requested' });
});

t.test('an item reports available, held and sold to admins, and they add up to stocked', async (t) => {
  const it = await item({ stock: 12 });
  const c = await customer();
  await order(c.token, [{ item_id: it.id, quantity: 5 }]);
  const res = await api('GET', `/v1/items/${it.id}`, { token: await admin() });
  t.match(res.body, { available: 7, held: 5, sold: 0, stocked: 12 });
  const pub = await api('GET', `/v1/items/${it.id}`);
  t.equal(pub.body.held, undefined, 'customers do not see held');
});

t.test('a retry of a successful order is replayed even after the item sold out', async (t) => {
  const it = await item({ stock: 1 });
  const c = await customer();
  const key = uniq('last-unit');
  const first = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
  t.equal(first.status, 201);
  const other = await customer();
  t.equal((await order(other.token, [{ item_id: it.id, quantity: 1 }])).status, 409, 'sold out now');
  for (let i = 0; i < 3; i++) {
    const again = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
    t.equal(again.status, 201, 'the original answer, not sold_out');
    t.same(again.body, first.body);
  }
});
