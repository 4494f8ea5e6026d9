// The read cache and the sold-out gate (src/cache). Behaviour through the suite's
// engine; exact counts (database loads, gate decisions) on a private 2-worker cluster
// that no other test sends traffic to, so its /metrics counters are this file's alone.
import { Redis } from 'ioredis';
import pg from 'pg';
import t from 'tap';
import { loadConfig, DEFAULT_PG_SHARDS } from '../src/config.js';
import { sleep } from '../tools/lib/wait.js';
import { admin, api, category, customer, customers, item, itemRow, localId, order, shardOf, uniq } from './helpers/api.js';
import { startCluster, stop, type Spawned } from './helpers/engine.js';
import { counter, settleMetrics, until } from './helpers/live.js';
import { OWN_PORTS } from './setup/env.js';

const REDIS_URL = process.env.REDIS_URLS?.split(',')[0] ?? 'redis://127.0.0.1:6391';
const redis = new Redis(REDIS_URL);
t.teardown(() => redis.quit());
const itemKey = (id: string) => `c1:it:${shardOf(id)}:${localId(id)}`;

t.test('config: the switches and bounds are validated like every variable', async (t) => {
  const cfg = loadConfig({ CACHE_ENABLED: 'false', SOLD_OUT_GATE: 'off' });
  t.equal(cfg.cacheEnabled, false);
  t.equal(cfg.soldOutGate, false);
  const defaults = loadConfig({});
  t.match(defaults, { cacheEnabled: true, soldOutGate: true, soldOutGateTtlMs: 1000, cacheSearchTtlMs: 2000, cacheRefreshMinMs: 25 });
  t.throws(() => loadConfig({ CACHE_ENABLED: 'maybe' }), /CACHE_ENABLED=maybe/);
  t.throws(() => loadConfig({ SOLD_OUT_GATE_TTL_MS: '5000' }), /SOLD_OUT_GATE_TTL_MS=5000/, 'the closed state lives at most 2 s');
});

t.test('a public read is served from Redis (msgpack, versioned); admins read Postgres', async (t) => {
  const it = await item({ stock: 5 });
  t.equal((await api('GET', `/v1/items/${it.id}`)).body.available, 5);
  const raw = await redis.getBuffer(itemKey(it.id));
  t.ok(raw && /^[0-9a-f]{24}$/.test(raw.subarray(0, 24).toString()), 'the key holds a 24-hex-digit version, then msgpack');
  // Prove reads come from the cache: plant a value with a newer version.
  const { pack, unpack } = await import('msgpackr');
  const cached = unpack(raw!.subarray(24)) as Record<string, unknown>;
  await redis.set(itemKey(it.id), Buffer.concat([Buffer.from('f'.repeat(24)), pack({ ...cached, name: 'from-the-cache' })]), 'PX', 5000);
  t.equal((await api('GET', `/v1/items/${it.id}`)).body.name, 'from-the-cache', 'public reads come from Redis');
  t.equal((await api('GET', `/v1/items/${it.id}`, { token: await admin() })).body.name, it.name, 'admin reads come from Postgres');
  await redis.del(itemKey(it.id));
  t.equal((await api('GET', `/v1/items/${it.id}`)).body.name, it.name, 'a miss reads through again');
});

t.test('a price change and a restock show on the very next read (the writer waits for the cache)', async (t) => {
  const it = await item({ stock: 5 });
  const token = await admin();
  await api('GET', `/v1/items/${it.id}`);
  for (let i = 0; i < 5; i++) {
    t.equal((await api('PATCH', `/v1/items/${it.id}`, { token, body: { price_cents: 2000 + i } })).status, 200);
    t.equal((await api('GET', `/v1/items/${it.id}`)).body.price_cents, 2000 + i);
    t.equal((await api('POST', `/v1/items/${it.id}/stock`, { token, body: { delta: 1 } })).status, 200);
    t.equal((await api('GET', `/v1/items/${it.id}`)).body.available, 6 + i);
  }
});

t.test('a checkout and a cancel show on the buyer\'s very next read of the item', async (t) => {
  const it = await item({ stock: 50 });
  const c = await customer();
  await api('GET', `/v1/items/${it.id}`); // cached before the writes
  for (let i = 0; i < 10; i++) {
    const made = await order(c.token, [{ item_id: it.id, quantity: 1 }]);
    t.equal(made.status, 201);
    t.equal((await api('GET', `/v1/items/${it.id}`)).body.available, 49, `after the hold, round ${i}`);
    t.equal((await api('POST', `/v1/orders/${made.body.orders[0].id}/cancel`, { token: c.token, body: {} })).status, 200);
    t.equal((await api('GET', `/v1/items/${it.id}`)).body.available, 50, `after the cancel, round ${i}`);
  }
});

t.test('an order is polled from Redis, and every change to it shows on the very next read', async (t) => {
  const it = await item({ stock: 10 });
  const [c, other] = await Promise.all([customer(), customer()]);
  const made = (await order(c.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0];
  const key = `c1:or:${shardOf(made.id)}:${localId(made.id)}`;
  t.ok(await redis.getBuffer(key), 'the new order was written through');
  // Prove polls come from the cache: plant a changed copy.
  const { pack, unpack } = await import('msgpackr');
  const cached = unpack((await redis.getBuffer(key))!) as { order: Record<string, unknown>; owner: string };
  await redis.set(key, pack({ ...cached, order: { ...cached.order, total_cents: 4242 } }), 'PX', 5000);
  t.equal((await api('GET', `/v1/orders/${made.id}`, { token: c.token })).body.total_cents, 4242, 'the poll came from Redis');
  t.equal((await api('GET', `/v1/orders/${made.id}`, { token: other.token })).status, 404, 'another customer is told it does not exist');
  await redis.set(key, pack(cached), 'PX', 5000);
  const paid = await api('POST', `/v1/orders/${made.id}/payments`, { token: c.token, body: { method: 'card' } });
  t.equal(paid.status, 201);
  t.match((await api('GET', `/v1/orders/${made.id}`, { token: c.token })).body.payments, [{ id: paid.body.id, status: 'pending' }], 'the payment shows at once');
  const cancel = await api('POST', `/v1/orders/${made.id}/cancel`, { token: c.token, body: {} });
  t.equal(cancel.status, 200);
  t.equal((await api('GET', `/v1/orders/${made.id}`, { token: c.token })).body.status, 'canceled', 'the cancel shows at once');
});

t.test('holds and cancels on two workers: the cached count meets Postgres within the stated bound', async (t) => {
  const it = await item({ stock: 200 });
  const buyers = await customers(24, 12);
  const lags: number[] = [];
  for (let round = 0; round < 6; round++) {
    // A burst of concurrent holds (some cancelled at once), spread over both workers.
    const made = await Promise.all(buyers.map((b) => order(b.token, [{ item_id: it.id, quantity: 1 }])));
    await Promise.all(made.slice(0, 8).map((m, i) => api('POST', `/v1/orders/${m.body.orders[0].id}/cancel`, { token: buyers[i]!.token, body: {} })));
    const truth = (await itemRow(it.id)).available;
    const { ms } = await until('cached available = postgres', async () => (await api('GET', `/v1/items/${it.id}`)).body.available, (a) => a === truth, 2000, 2);
    lags.push(ms);
  }
  const worst = Math.max(...lags);
  t.comment(`staleness after the last write of a burst: worst ${worst.toFixed(1)} ms, all ${lags.map((l) => l.toFixed(1)).join(', ')} ms`);
  t.ok(worst < 500, `converged within 500 ms (bound: CACHE_REFRESH_MIN_MS 25 ms + one read + one Redis write), worst ${worst.toFixed(1)} ms`);
  t.equal((await itemRow(it.id)).available, 200 - 6 * 16);
});

t.test('search pages: new and deactivated items show at once; counts are at most CACHE_SEARCH_TTL_MS old', async (t) => {
  const cat = await category();
  const a = await item({ category_id: cat.id, stock: 3 });
  const first = await api('GET', `/v1/items?category_id=${cat.id}`);
  t.same(first.body.data.map((i: { id: string }) => i.id), [a.id]);
  const b = await item({ category_id: cat.id });
  t.same((await api('GET', `/v1/items?category_id=${cat.id}`)).body.data.map((i: { id: string }) => i.id), [b.id, a.id], 'a created item is listed at once');
  await api('PATCH', `/v1/items/${b.id}`, { token: await admin(), body: { active: false } });
  t.same((await api('GET', `/v1/items?category_id=${cat.id}`)).body.data.map((i: { id: string }) => i.id), [a.id], 'a deactivated one disappears at once');
  t.same((await api('GET', `/v1/items?q=${encodeURIComponent(a.name)}`)).body.data.map((i: { id: string }) => i.id), [a.id], 'text search too');

  await order((await customer()).token, [{ item_id: a.id, quantity: 1 }]);
  const { ms } = await until('search shows the hold', async () => (await api('GET', `/v1/items?category_id=${cat.id}`)).body.data[0].available, (n) => n === 2, 4000, 20);
  t.ok(ms <= 2000 * 1.1 + 200, `a search page's count is at most the 2 s TTL (+10 % jitter) old: ${ms.toFixed(0)} ms`);
});

t.test('the category list shows a new category as soon as it is created', async (t) => {
  const before = await api('GET', '/v1/categories?limit=100');
  t.equal(before.status, 200);
  const name = uniq('fresh-cat');
  await category(name);
  let found = false;
  let cursor: string | null = null;
  do {
    const page: { body: { data: { name: string }[]; next_cursor: string | null } } = await api('GET', `/v1/categories?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    found ||= page.body.data.some((c) => c.name === name);
    cursor = page.body.next_cursor;
  } while (!found && cursor);
  t.ok(found, 'listed on the next read');
});

t.test('exact counts on a private cluster', async (t) => {
  const port = OWN_PORTS.cacheEngine;
  const engine: Spawned = startCluster(port, { WORKERS: '2' });
  t.teardown(() => stop(engine));
  await until('both workers ready', async () => engine.out(), (o) => o.includes('"msg":"engine ready"'), 30_000, 100);
  const base = engine.url;

  t.test('a thousand concurrent misses on one key cost one database read per process', async (t) => {
    const it = await item({ stock: 7 });
    await api('GET', `/v1/items/${it.id}`, { base }); // warm both workers' connections
    await settleMetrics();
    const [loads0, misses0, errors0] = [await counter('bf_cache_loads_total', 'item', base), await counter('bf_cache_misses_total', 'item', base), await counter('bf_cache_redis_errors_total', undefined, base)];
    // Hold the shard's items table for a moment so every request misses while the
    // first loads of each process wait: they all have to share them.
    const url = (process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS).split(',')[shardOf(it.id)]!;
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
    // Emptied only now: the creation's own cache refresh may still be running on a busy
    // machine (its answer waits for it only so long), and under the lock no refresh can
    // read the item again before the reads below have missed.
    await redis.del(itemKey(it.id));
    const reads = Array.from({ length: 1000 }, () => api('GET', `/v1/items/${it.id}`, { base }));
    await sleep(400);
    await locker.query('COMMIT');
    await locker.end();
    const res = await Promise.all(reads);
    t.ok(res.every((r) => r.status === 200 && r.body.available === 7), 'all 1000 answered with the item');
    await settleMetrics();
    const loads = (await counter('bf_cache_loads_total', 'item', base)) - loads0;
    const misses = (await counter('bf_cache_misses_total', 'item', base)) - misses0;
    // A Redis command past its timeout counts as a miss by design (Postgres answers
    // instead), so on a starved machine each such timeout may cost one more read.
    const timeouts = (await counter('bf_cache_redis_errors_total', undefined, base)) - errors0;
    t.comment(`1000 reads: ${misses} missed Redis, ${loads} database reads, ${timeouts} Redis timeouts`);
    t.ok(loads >= 1 && loads <= 2 + timeouts, `one read per worker process (2 workers), plus one per Redis timeout at most: ${loads}`);
    t.ok(misses > 100, `many requests missed and shared those reads: ${misses}`);
  });

  t.test('the gate answers sold out without touching Postgres, and reopens on cancel and restock', async (t) => {
    const it = await item({ stock: 2 });
    const [a, b] = await customers(2);
    const held = await Promise.all([order(a!.token, [{ item_id: it.id, quantity: 1 }], undefined), order(b!.token, [{ item_id: it.id, quantity: 1 }])]);
    t.ok(held.every((r) => r.status === 201));
    await sleep(200); // the sold-out state reaches both workers over pub/sub
    const buyers = await customers(200, 16);
    await settleMetrics();
    const blocked0 = await counter('bf_sold_out_gate_blocked_total', undefined, base);
    const passed0 = await counter('bf_sold_out_gate_passed_total', undefined, base);

    // Nobody else talks to this cluster: its gate counters are this storm's alone.
    const started = performance.now();
    const storm = await Promise.all(buyers.map(async (c) => {
      const r = await api('POST', '/v1/orders', { token: c.token, body: { items: [{ item_id: it.id, quantity: 1 }] }, base });
      return { status: r.status, type: r.body?.error?.type, ms: performance.now() - started };
    }));
    t.ok(storm.every((r) => r.status === 409 && r.type === 'sold_out'), '200 holds, all 409 sold_out');
    t.comment(`200 concurrent holds answered in ${Math.max(...storm.map((r) => r.ms)).toFixed(0)} ms`);
    await settleMetrics();
    t.equal((await counter('bf_sold_out_gate_blocked_total', undefined, base)) - blocked0, 200, 'the gate refused all 200');
    t.equal((await counter('bf_sold_out_gate_passed_total', undefined, base)) - passed0, 0, 'and let none through to Postgres');
    t.same(await itemRow(it.id), { available: 0, held: 2, sold: 0, stocked: 2 });

    // A cancel reopens it at once for every process (the writer's own hook, then pub/sub).
    await api('POST', `/v1/orders/${held[0]!.body.orders[0].id}/cancel`, { token: a!.token, body: {} });
    const reopened = await until('a hold succeeds after the cancel', () => order(buyers[0]!.token, [{ item_id: it.id, quantity: 1 }]).then((r) => r.status),
      (s) => s === 201, 3000, 10);
    t.comment(`reopened after cancel in ${reopened.ms.toFixed(0)} ms`);
    t.equal((await order(buyers[1]!.token, [{ item_id: it.id, quantity: 1 }])).status, 409, 'and closes again at 0');

    await api('POST', `/v1/items/${it.id}/stock`, { token: await admin(), body: { delta: 3 } });
    for (const c of buyers.slice(2, 5)) {
      // Another worker may hear of the restock a moment after the admin's answer: a
      // brief false "sold out" is allowed, an oversell never.
      const r = await until('a hold after the restock', () => order(c.token, [{ item_id: it.id, quantity: 1 }]).then((x) => x.status), (st) => st === 201, 2000, 10);
      t.ok(r.ms < 2000, `a restock reopens it (${r.ms.toFixed(0)} ms)`);
    }
    t.same(await itemRow(it.id), { available: 0, held: 5, sold: 0, stocked: 5 }, 'never oversold');
  });
});
