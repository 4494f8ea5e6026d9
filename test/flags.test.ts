// Runtime feature flags. The switching tests run on an engine of their own (its own
// databases, two workers): flags are global, and switching them on the suite's shared
// engine would change behaviour under the other test files.
import pg from 'pg';
import t from 'tap';
import { sleep } from '../tools/lib/wait.js';
import { admin, api, customer, uniq } from './helpers/api.js';
import { isolatedShards, startReady, stop, type Spawned } from './helpers/engine.js';
import { fresh, type Fresh } from './helpers/storefront.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, OWN_PORTS, TEST_PORT } from './setup/env.js';

const PORT = OWN_PORTS.flagsEngine;
const REFRESH_MS = 1000;

t.test('the registry is closed, admin only, and validated', async (t) => {
  const token = await admin();
  const list = await api('GET', '/v1/admin/flags', { token });
  t.equal(list.status, 200);
  t.same(list.body.data.map((f: { name: string }) => f.name).sort(), ['new_checkout', 'qr_payments', 'sold_out_gate']);
  t.match(list.body.data.find((f: { name: string }) => f.name === 'qr_payments'), { default: true, description: /QR/ });
  t.match((await api('GET', '/v1/admin/flags/new_checkout', { token })).body, { name: 'new_checkout', default: false });
  const unknown = await api('GET', '/v1/admin/flags/warp_drive', { token });
  t.equal(unknown.status, 404);
  t.equal((await api('PUT', '/v1/admin/flags/warp_drive', { token, body: { enabled: true } })).status, 404, 'an unknown flag cannot be set');
  for (const body of [{}, { enabled: 'yes' }, { enabled: true, extra: 1 }]) {
    t.equal((await api('PUT', '/v1/admin/flags/qr_payments', { token, body })).status, 400, JSON.stringify(body));
  }
  const c = await customer();
  t.equal((await api('GET', '/v1/admin/flags/qr_payments', { token: c.token })).status, 403);
  t.equal((await api('PUT', '/v1/admin/flags/qr_payments', { token: c.token, body: { enabled: false } })).status, 403);
  t.equal((await api('GET', '/v1/admin/flags')).status, 401);
});

/** Requests on fresh connections until `min` answered and at least two workers did. */
async function acrossWorkers(make: () => Promise<Fresh>, min = 20, max = 200): Promise<{ all: Fresh[]; workers: Set<string> }> {
  const all: Fresh[] = [];
  const workers = new Set<string>();
  while (all.length < max && (all.length < min || workers.size < 2)) {
    const batch = await Promise.all(Array.from({ length: 5 }, make));
    for (const r of batch) { all.push(r); workers.add(r.worker); }
  }
  return { all, workers };
}

t.test('a switch reaches every worker within a second, without a restart', async (t) => {
  const shards = await isolatedShards(`engine_flags_${TEST_PORT}`);
  let engine: Spawned = await startReady(PORT, { PG_SHARDS: shards, WORKERS: '2', FLAGS_REFRESH_MS: String(REFRESH_MS) });
  t.teardown(() => stop(engine));
  const call = (m: string, p: string, token: string | null, body?: unknown) => api(m, p, { base: engine.url, token, body });
  const adminToken = (await call('POST', '/v1/sessions', null, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })).body.token as string;
  const setFlag = (name: string, enabled: boolean) => call('PUT', `/v1/admin/flags/${name}`, adminToken, { enabled });
  const email = `${uniq('c')}@example.com`;
  await call('POST', '/v1/users', null, { email, password: 'long-enough-pw' });
  const token = (await call('POST', '/v1/sessions', null, { email, password: 'long-enough-pw' })).body.token as string;
  const cat = (await call('POST', '/v1/categories', adminToken, { name: uniq('cat') })).body;
  const it = (await call('POST', '/v1/items', adminToken, { category_id: cat.id, name: uniq('it'), price_cents: 100, currency: 'USD', stock: 50 })).body;
  await call('POST', '/v1/cart/items', token, { item_id: it.id, quantity: 1 });
  const getCart = () => fresh('GET', `${engine.url}/v1/cart`, token);
  
  const before = await acrossWorkers(getCart);
  t.ok(before.workers.size >= 2, `both workers answered (${before.workers.size})`);
  t.ok(before.all.every((r) => r.status === 200 && r.body.checkout === undefined), 'new_checkout is off by default');

  t.equal((await setFlag('new_checkout', true)).status, 200);
  await sleep(1000);
  const on = await acrossWorkers(getCart);
  t.ok(on.workers.size >= 2, 'both workers answered');
  t.ok(on.all.every((r) => Array.isArray(r.body.checkout)), `every worker applies it (${on.all.length} requests)`);
  t.match(on.all[0]!.body.checkout, [{ shard: cat.shard, currency: 'USD', total_cents: 100, line_count: 1 }]);

  const orderId = (await call('POST', '/v1/orders', token, { items: [{ item_id: it.id, quantity: 1 }] })).body.orders[0].id as string;
  const payQr = (id: string) => () => fresh('POST', `${engine.url}/v1/orders/${id}/payments`, token, { method: 'qr' });
  t.equal((await setFlag('qr_payments', false)).status, 200);
  await sleep(1000);
  const refused = await acrossWorkers(payQr(orderId));
  t.ok(refused.workers.size >= 2, 'both workers answered');
  t.ok(refused.all.every((r) => r.status === 403 && r.body.error.code === 'feature_disabled'), 'QR refused by every worker');
  const card = await call('POST', `/v1/orders/${orderId}/payments`, token, { method: 'card' });
  t.equal(card.status, 201, 'cards still work');

  t.equal((await setFlag('qr_payments', true)).status, 200);
  await sleep(1000);
  const other = (await call('POST', '/v1/orders', token, { items: [{ item_id: it.id, quantity: 1 }] })).body.orders[0].id as string;
  const accepted = await acrossWorkers(payQr(other));
  t.ok(accepted.all.every((r) => r.status < 300 && r.body.method === 'qr'), 'QR accepted by every worker again');

  // Redis carries the news; Postgres is the truth: a change it never announced still arrives by the poll.
  const db = new pg.Client({ connectionString: shards.split(',')[0] });
  await db.connect();
  await db.query("UPDATE feature_flags SET enabled = false, updated_by = 'test' WHERE name = 'new_checkout'");
  await db.end();
  await sleep(REFRESH_MS + 1000);
  const polled = await acrossWorkers(getCart);
  t.ok(polled.all.every((r) => r.body.checkout === undefined), 'an unannounced change is applied by the periodic re-read');

  await setFlag('new_checkout', true);
  await stop(engine);
  engine = await startReady(PORT, { PG_SHARDS: shards, WORKERS: '2', FLAGS_REFRESH_MS: String(REFRESH_MS) });
  const restarted = await acrossWorkers(getCart);
  t.ok(restarted.all.every((r) => Array.isArray(r.body.checkout)), 'a restarted engine starts with the stored value');
  const view = await call('GET', '/v1/admin/flags/new_checkout', adminToken);
  t.match(view.body, { name: 'new_checkout', enabled: true, default: false, applied: true, updated_by: /^admin:us_/ });
});
