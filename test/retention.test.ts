// Retention: the cron deletes delivered notices and idempotency keys past their windows
// (the suite's engine runs the job every 500 ms), and nothing it must keep.
import t from 'tap';
import { categoryOnShard, customer, eventually, item, itemRow, onShard, order, shardOf, uniq } from './helpers/api.js';

const SHARDS = [0, 1, 2];

async function keyRows(key: string): Promise<{ shard: number; status: string }[]> {
  const out: { shard: number; status: string }[] = [];
  for (const s of SHARDS) for (const r of await onShard(s, 'SELECT status FROM idempotency_keys WHERE key = $1', [key])) out.push({ shard: s, status: r.status });
  return out;
}

t.test('delivered notices past OUTBOX_RETENTION_S go; undelivered and recent ones stay', async (t) => {
  const topic = uniq('retention');
  const ids: Record<string, number> = {};
  for (const [name, delivered] of [['old', "now() - interval '8 days'"], ['recent', "now() - interval '1 day'"], ['undelivered', 'NULL']] as const) {
    // An undelivered notice is due far in the future, so the dispatcher leaves it alone.
    const rows = await onShard(1, `INSERT INTO outbox (topic, payload, created_at, delivered_at, next_attempt_at)
      VALUES ($1, '{}', now() - interval '9 days', ${delivered}, now() + interval '1 day') RETURNING id`, [topic]);
    ids[name] = rows[0].id;
  }
  const left = await eventually(async () => {
    const rows = await onShard(1, 'SELECT id FROM outbox WHERE topic = $1 ORDER BY id', [topic]);
    return rows.length === 2 ? rows.map((r) => r.id) : null;
  });
  t.same(left, [ids.recent, ids.undelivered], 'only the notice delivered 8 days ago is deleted');
  await onShard(1, 'DELETE FROM outbox WHERE topic = $1', [topic]);
});

t.test('idempotency keys past IDEMPOTENCY_RETENTION_S go; a retry then finds the orders it made, and holds nothing twice', async (t) => {
  // A checkout across two shards: its key is claimed on the customer's shard.
  const [c0, c1] = await Promise.all([categoryOnShard(0), categoryOnShard(1)]);
  const [a, b] = await Promise.all([item({ category_id: c0.id, stock: 10 }), item({ category_id: c1.id, stock: 10 })]);
  const lines = [{ item_id: a.id, quantity: 2 }, { item_id: b.id, quantity: 2 }];
  const c = await customer();
  const [oldKey, newKey] = [uniq('old-key'), uniq('new-key')];
  const first = await order(c.token, lines, oldKey);
  const recent = await order(c.token, [{ item_id: a.id, quantity: 1 }, { item_id: b.id, quantity: 1 }], newKey);
  t.equal(first.status, 201);
  const [home] = await keyRows(oldKey);
  t.match(home, { status: 'done' });
  await onShard(home!.shard, "UPDATE idempotency_keys SET created_at = now() - interval '2 days' WHERE key = $1", [oldKey]);
  t.ok(await eventually(async () => (await keyRows(oldKey)).length === 0), 'the 2-day-old key is deleted');
  t.same((await keyRows(newKey)).map((r) => r.status), ['done'], 'a fresh key stays');
  const again = await order(c.token, lines, oldKey);
  t.equal(again.status, 201);
  const ids = (r: typeof first) => r.body.orders.map((o: { id: string }) => o.id).sort();
  t.same(ids(again), ids(first), 'the retry finds the orders its key made');
  t.equal(again.headers.get('idempotent-replayed'), null, 'it ran again rather than replayed');
  for (const it of [a, b]) t.same(await itemRow(it.id), { available: 7, held: 3, sold: 0, stocked: 10 }, 'no unit held twice');
  t.equal(recent.status, 201);
});

t.test('recorded checkout refusals past IDEMPOTENCY_RETENTION_S go, recent ones stay', async (t) => {
  const it = await item({ stock: 0 });
  const c = await customer();
  const [oldKey, newKey] = [uniq('old-refusal'), uniq('new-refusal')];
  for (const key of [oldKey, newKey]) t.equal((await order(c.token, [{ item_id: it.id, quantity: 1 }], key)).status, 409);
  const rows = (key: string) => onShard(shardOf(it.id), 'SELECT sqlstate FROM checkout_refusals WHERE request_key = $1', [key]);
  t.same(await rows(oldKey), [{ sqlstate: 'BFSO1' }], 'the refusal is recorded');
  await onShard(shardOf(it.id), "UPDATE checkout_refusals SET created_at = now() - interval '2 days' WHERE request_key = $1", [oldKey]);
  t.ok(await eventually(async () => (await rows(oldKey)).length === 0), 'the 2-day-old refusal is deleted');
  t.same(await rows(newKey), [{ sqlstate: 'BFSO1' }], 'a recent one stays');
});
