import t from 'tap';
import { admin, api, category, categoryOnShard, customer, item, order } from './helpers/api.js';

type Page = { data: { id: string; created_at: string; customer_id: string; status: string }[]; next_cursor: string | null };

async function page(query: Record<string, string>): Promise<Page> {
  const res = await api('GET', `/v1/admin/orders?${new URLSearchParams(query)}`, { token: await admin() });
  if (res.status !== 200) throw new Error(`admin list ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Pages until `done` says stop (or the list ends); returns every id in the order seen. */
async function pageThrough(query: Record<string, string>, done: (ids: string[]) => boolean, pagesMax = 400): Promise<Page['data']> {
  const seen: Page['data'] = [];
  let cursor: string | null = null;
  for (let i = 0; i < pagesMax; i++) {
    const p = await page(cursor ? { ...query, cursor } : query);
    seen.push(...p.data);
    cursor = p.next_cursor;
    if (!cursor || done(seen.map((o) => o.id))) break;
  }
  return seen;
}

const newestFirst = (rows: Page['data']) => rows.every((o, i) => i === 0 || Date.parse(rows[i - 1]!.created_at) >= Date.parse(o.created_at));

t.test('filters: customer across shards, status, category (with every customer in it)', async (t) => {
  const [c0, c1, c2] = await Promise.all([categoryOnShard(0), categoryOnShard(1), categoryOnShard(2)]);
  const [i0, i1, i2] = await Promise.all([item({ category_id: c0.id }), item({ category_id: c1.id }), item({ category_id: c2.id })]);
  const [a, b] = await Promise.all([customer(), customer()]);
  const made: string[] = [];
  for (const it of [i0, i1, i2, i1]) made.push((await order(a.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0].id);
  await api('POST', `/v1/orders/${made[3]}/cancel`, { token: a.token });
  const other = (await order(b.token, [{ item_id: i1.id, quantity: 1 }])).body.orders[0].id;

  const mine = await page({ customer_id: a.id, limit: '100' });
  t.same(mine.data.map((o) => o.id), [...made].reverse(), "all of a customer's orders, on every shard, newest first");
  t.ok(mine.data.every((o) => o.customer_id === a.id));
  t.equal(mine.next_cursor, null);
  const canceled = await page({ customer_id: a.id, status: 'canceled' });
  t.same(canceled.data.map((o) => o.id), [made[3]]);
  const waiting = await page({ customer_id: a.id, status: 'awaiting_payment' });
  t.same(waiting.data.map((o) => o.id), [made[2], made[1], made[0]]);
  const inCat = await page({ category_id: c1.id });
  t.same(inCat.data.map((o) => o.id), [other, made[3], made[1]], "a category's orders, whoever bought");
  t.same((await page({ category_id: c1.id, customer_id: b.id })).data.map((o) => o.id), [other], 'filters combine');
  t.same((await page({ category_id: (await category()).id })).data, [], 'a category with no orders');
  const all = await page({ limit: '5' });
  t.equal(all.data.length, 5);
  t.ok(newestFirst(all.data));
});

t.test('admin only, and bad filters are 400', async (t) => {
  const c = await customer();
  t.equal((await api('GET', '/v1/admin/orders', { token: c.token })).status, 403);
  t.equal((await api('GET', '/v1/admin/orders')).status, 401);
  const token = await admin();
  for (const q of ['status=lost', 'customer_id=us_nope', 'category_id=abc', 'limit=0', 'limit=101', 'cursor=%%%', 'cursor=bm9wZQ', 'other=1']) {
    const res = await api('GET', `/v1/admin/orders?${q}`, { token });
    t.equal(res.status, 400, q);
  }
});

t.test('paging while orders are being created: no duplicates, no gaps among the orders that existed', async (t) => {
  const [c0, c1, c2] = await Promise.all([categoryOnShard(0), categoryOnShard(1), categoryOnShard(2)]);
  const items = await Promise.all([c0, c1, c2].map((c) => item({ category_id: c.id, stock: 1000 })));
  const buyers = await Promise.all([customer(), customer(), customer()]);
  const existing: string[] = [];
  for (let i = 0; i < 15; i++) {
    const r = await order(buyers[0]!.token, [{ item_id: items[i % 3]!.id, quantity: 1 }]);
    existing.push(r.body.orders[0].id);
  }
  let writing = true;
  const writer = (async () => {
    let n = 0;
    while (writing && n < 200) await order(buyers[++n % 3]!.token, [{ item_id: items[n % 3]!.id, quantity: 1 }]);
  })();
  try {
    const byCustomer = await pageThrough({ customer_id: buyers[0]!.id, limit: '4' }, () => false);
    const everything = await pageThrough({ limit: '7' }, (ids) => existing.every((id) => ids.includes(id)));
    for (const [name, rows] of [['customer filter', byCustomer], ['no filter', everything]] as const) {
      const ids = rows.map((o) => o.id);
      t.equal(new Set(ids).size, ids.length, `${name}: no duplicates`);
      t.same(existing.filter((id) => !ids.includes(id)), [], `${name}: every order that existed was listed`);
      t.ok(newestFirst(rows), `${name}: newest first across pages`);
    }
  } finally {
    writing = false;
    await writer;
  }
});
