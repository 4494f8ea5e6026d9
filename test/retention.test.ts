// Retention: the cron deletes delivered notices and idempotency keys past their windows
// (the suite's engine runs the job every 500 ms), and nothing it must keep.
import t from 'tap';
import { customer, eventually, item, itemRow, onShard, order, uniq } from './helpers/api.js';

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

t.test('idempotency keys past IDEMPOTENCY_RETENTION_S go; a retry then finds the order it made, and holds nothing twice', async (t) => {
  const it = await item({ stock: 10 });
  const c = await customer();
  const [oldKey, newKey] = [uniq('old-key'), uniq('new-key')];
  const first = await order(c.token, [{ item_id: it.id, quantity: 2 }], oldKey);
  const recent = await order(c.token, [{ item_id: it.id, quantity: 1 }], newKey);
  t.equal(first.status, 201);
  const [home] = await keyRows(oldKey);
  t.match(home, { status: 'done' });
  await onShard(home!.shard, "UPDATE idempotency_keys SET created_at = now() - interval '2 days' WHERE key = $1", [oldKey]);
  t.ok(await eventually(async () => (await keyRows(oldKey)).length === 0), 'the 2-day-old key is deleted');
  t.same((await keyRows(newKey)).map((r) => r.status), ['done'], 'a fresh key stays');
  const again = await order(c.token, [{ item_id: it.id, quantity: 2 }], oldKey);
  t.equal(again.status, 201);
  t.equal(again.body.orders[0].id, first.body.orders[0].id, 'the retry finds the order its key made');
  t.equal(again.headers.get('idempotent-replayed'), null, 'it ran again rather than replayed');
  t.same(await itemRow(it.id), { available: 7, held: 3, sold: 0, stocked: 10 }, 'no unit held twice');
  t.equal(recent.status, 201);
});
