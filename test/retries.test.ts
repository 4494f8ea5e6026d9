// What a retry meets: a checkout retried with its Idempotency-Key either replays the
// first answer exactly or runs afresh, never hands back a part that was undone; an
// answer that says "come back later" is not stored as the key's final answer; and
// stock statements take item rows in one order, so they never deadlock each other.
import pg from 'pg';
import t from 'tap';
import { sleep } from '../tools/lib/wait.js';
import { admin, api, categoryOnShard, customer, eventually, item, itemRow, localId, onShard, order, shardOf, uniq, world } from './helpers/api.js';

/** A transaction of the test's own, holding row locks until released. */
async function lockRows(shard: number, sql: string, params: unknown[]): Promise<{ client: pg.Client; release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: world.shards.split(',')[shard]! });
  await client.connect();
  await client.query('BEGIN');
  await client.query(sql, params);
  return { client, release: async () => { await client.query('ROLLBACK'); await client.end(); } };
}

/** What is recorded under a request key: claims and replies, and a checkout's recorded refusals (on every shard). */
async function storedUnder(key: string): Promise<{ table: string; shard: number; code: string }[]> {
  const out = [];
  for (const shard of [0, 1, 2]) {
    for (const r of await onShard(shard, 'SELECT response_code::text AS code FROM idempotency_keys WHERE key = $1', [key])) out.push({ table: 'idempotency_keys', shard, code: r.code });
    for (const r of await onShard(shard, 'SELECT sqlstate AS code FROM checkout_refusals WHERE request_key = $1', [key])) out.push({ table: 'checkout_refusals', shard, code: r.code });
  }
  return out;
}

t.test('a checkout retried after one shard failed holds afresh and never answers with the undone part', async (t) => {
  const [c0, c1] = await Promise.all([categoryOnShard(0), categoryOnShard(1)]);
  const a = await item({ category_id: c0.id, stock: 5 });
  const b = await item({ category_id: c1.id, stock: 5 });
  const c = await customer();
  const key = uniq('key');
  const lines = [{ item_id: a.id, quantity: 1 }, { item_id: b.id, quantity: 1 }];
  // Shard 1's item row is locked past the engine's lock_timeout: that part answers 503,
  // and the part already held on shard 0 is canceled again (compensation).
  const lock = await lockRows(1, 'SELECT id FROM items WHERE id = $1 FOR UPDATE', [localId(b.id)]);
  const first = await order(c.token, lines, key).finally(() => lock.release());
  t.equal(first.status, 503, 'the locked shard answers 503');
  t.ok(first.headers.get('retry-after'), 'with Retry-After');
  t.same(await itemRow(a.id), { available: 5, held: 0, sold: 0, stocked: 5 }, 'the other part was undone');

  const retry = await order(c.token, lines, key);
  t.equal(retry.status, 201, 'the retry succeeds');
  t.equal(retry.body.orders.length, 2);
  t.ok(retry.body.orders.every((o: { status: string }) => o.status === 'awaiting_payment'), 'no canceled order in a success');
  for (const it of [a, b]) t.same(await itemRow(it.id), { available: 4, held: 1, sold: 0, stocked: 5 }, `one unit held on shard ${shardOf(it.id)}`);
  const replay = await order(c.token, lines, key);
  t.equal(replay.status, 201);
  t.equal(replay.headers.get('idempotent-replayed'), 'true');
  t.same(replay.body, retry.body, 'the replay is the retry\'s answer, exactly');
});

t.test('a request key reused for other items after its retention is refused, not answered with the old order', async (t) => {
  const it = await item({ stock: 10 });
  const c = await customer();
  const key = uniq('key');
  const first = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
  t.equal(first.status, 201);
  await onShard(shardOf(c.id), 'DELETE FROM idempotency_keys WHERE key = $1', [key]); // the retention job's work
  const other = await order(c.token, [{ item_id: it.id, quantity: 3 }], key);
  t.equal(other.status, 422, 'a mismatch');
  t.equal(other.body.error.code, 'idempotency_mismatch');
  t.same(await itemRow(it.id), { available: 9, held: 1, sold: 0, stocked: 10 }, 'nothing more held');
  const order0 = await onShard(shardOf(it.id), 'SELECT status FROM orders WHERE id = $1', [localId(first.body.orders[0].id)]);
  t.same(order0, [{ status: 'awaiting_payment' }], 'the first order is untouched');
});

t.test('a deadlock retried to its end is answered 409 with Retry-After, and the key is free for the retry', async (t) => {
  const it = await item({ stock: 10 });
  const c = await customer();
  const key = uniq('key');
  // A real 40P01 from Postgres on every update of this one item, until dropped.
  const fn = `test_deadlock_${localId(it.id)}`;
  const shard = shardOf(it.id);
  await onShard(shard, `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'simulated deadlock' USING ERRCODE = '40P01'; END $$`);
  await onShard(shard, `CREATE TRIGGER ${fn} BEFORE UPDATE ON items FOR EACH ROW WHEN (OLD.id = ${localId(it.id)}) EXECUTE FUNCTION ${fn}()`);
  let first;
  try {
    first = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
  } finally {
    await onShard(shard, `DROP TRIGGER ${fn} ON items`);
    await onShard(shard, `DROP FUNCTION ${fn}()`);
  }
  t.equal(first.status, 409);
  t.equal(first.body.error.type, 'conflict');
  t.ok(first.headers.get('retry-after'), 'told to retry');
  t.same(await storedUnder(key), [], 'no answer stored under the key');
  const retry = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
  t.equal(retry.status, 201, 'the retry runs again');
  t.notOk(retry.headers.get('idempotent-replayed'));
});

t.test('a sold-out refusal from the admission gate is the key\'s answer like any other', async (t) => {
  const it = await item({ stock: 1 });
  const [first, c] = await Promise.all([customer(), customer()]);
  t.equal((await order(first.token, [{ item_id: it.id, quantity: 1 }])).status, 201);
  // Every worker's gate learns the item is sold out from the cache refresh.
  t.ok(await eventually(async () => (await api('GET', `/v1/items/${it.id}`)).body.available === 0), 'the cache says sold out');
  await sleep(300);
  const key = uniq('key');
  const refused = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
  t.equal(refused.status, 409);
  t.equal(refused.body.error.type, 'sold_out');
  t.same(await storedUnder(key), [{ table: 'checkout_refusals', shard: shardOf(it.id), code: 'BFSO1' }], 'the refusal is recorded under the key, on the item\'s shard');
  const restock = await api('POST', `/v1/items/${it.id}/stock`, { token: await admin(), body: { delta: 5 } });
  t.equal(restock.status, 200);
  const again = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
  t.equal(again.status, 409, 'the retry replays the refusal');
  t.equal(again.headers.get('idempotent-replayed'), 'true');
  t.same(again.body, refused.body);
});

t.test('the expiry sweep takes item rows in ascending order, as a checkout does', async (t) => {
  const cat = await categoryOnShard(2);
  const items = [];
  for (let i = 0; i < 6; i++) items.push(await item({ category_id: cat.id, stock: 3 }));
  const locals = items.map((i) => localId(i.id)).sort((x, y) => x - y);
  const c = await customer();
  const res = await order(c.token, items.map((i) => ({ item_id: i.id, quantity: 1 })));
  t.equal(res.status, 201);
  const o = localId(res.body.orders[0].id);
  // The lowest item is locked by the test; the sweep must wait there before it takes any other.
  const lock = await lockRows(2, 'SELECT id FROM items WHERE id = $1 FOR UPDATE', [locals[0]]);
  try {
    await onShard(2, "UPDATE orders SET hold_expires_at = now() - interval '1 second' WHERE id = $1", [o]);
    await onShard(2, "UPDATE holds SET expires_at = now() - interval '1 second' WHERE order_id = $1", [o]);
    const waiting = await eventually(async () => (await onShard(2, `SELECT pid FROM pg_stat_activity
      WHERE wait_event_type = 'Lock' AND query LIKE '%hold_expires_at <= now()%' AND query LIKE '%UPDATE items%'`)).length > 0, 15_000);
    t.ok(waiting, 'the sweep waits on the lowest item');
    const others = await onShard(2, `WITH l AS (SELECT id FROM items WHERE id = ANY($1::bigint[]) FOR UPDATE NOWAIT) SELECT count(*)::int AS n FROM l`, [locals.slice(1)])
      .catch((err: { code?: string }) => err.code);
    t.same(others, [{ n: 5 }], 'no higher item was locked before the lowest');
  } finally {
    await lock.release();
  }
  t.ok(await eventually(async () => (await onShard(2, 'SELECT status FROM orders WHERE id = $1', [o]))[0].status === 'expired'), 'then it expires the order');
  for (const i of items) t.same(await itemRow(i.id), { available: 3, held: 0, sold: 0, stocked: 3 });
});
