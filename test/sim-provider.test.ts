// Credit provider simulator, driven as a separate process over real HTTP.
import t from 'tap';
import { spawnSim, type SpawnedSim } from '../tools/lib/spawn.js';
import { simApi } from './helpers/api.js';

const API_KEY = 'pv_key_for_tests';

let pv: SpawnedSim;
let seq = 0;
const uniq = (p: string) => `${p}_${++seq}`;

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs?: number) =>
  simApi(pv.url, API_KEY, method, path, body, headers, timeoutMs);

const quotaOf = async (sku: string) => (await call('GET', `/v1/packages/${sku}`)).json.quota as number;
const setQuota = (sku: string, quota: number) => call('PUT', `/v1/packages/${sku}`, { quota });
const activate = (sku: string, quantity = 1, ref = uniq('line')) =>
  call('POST', '/v1/activations', { ref, sku, quantity, customer_ref: 'cust_1' });
const verify = (id: string) => call('GET', `/v1/activations/${id}`);
const stats = async () => (await call('GET', '/_sim/stats')).json as Record<string, number>;
const setKnobs = (k: Record<string, unknown>) => call('PUT', '/_sim/knobs', k);

t.before(async () => {
  pv = await spawnSim('provider', {
    PROVIDER_API_KEY: API_KEY,
    PROVIDER_DEFAULT_QUOTA: '100',
    PROVIDER_VERIFY_FAIL_FIRST: '2',
  });
});
t.afterEach(async () => {
  await call('POST', '/_sim/reset');
});
t.teardown(async () => {
  await pv?.stop();
});

t.test('starts and answers healthz; API requires the key', async (t) => {
  t.match(pv.logs.find((l) => l.msg === 'listening'), { level: 'info', port: pv.port });
  t.equal((await call('GET', '/healthz', undefined, { Authorization: '' })).status, 200);
  const noKey = { Authorization: '' };
  t.equal((await call('GET', '/v1/packages/sku_a', undefined, noKey)).status, 401);
  t.equal((await call('PUT', '/v1/packages/sku_a', { quota: 1 }, noKey)).status, 401);
  const refused = await call('POST', '/v1/activations', { ref: 'r', sku: 'sku_a', quantity: 1, customer_ref: 'c' }, { Authorization: 'Bearer nope' });
  t.equal(refused.status, 401);
  t.equal(refused.json.error.code, 'unauthorized');
  t.equal((await call('GET', '/v1/activations?ref=r', undefined, noKey)).status, 401);
  t.equal((await quotaOf('sku_a')), 100, 'default quota, untouched by refused calls');
  t.equal((await call('GET', '/v1/activations?ref=r')).status, 404, 'refused activation did not happen');
});

t.test('packages: default quota, set quota, validation', async (t) => {
  t.same((await call('GET', '/v1/packages/sku_pkg')).json, { sku: 'sku_pkg', quota: 100 });
  t.same((await setQuota('sku_pkg', 7)).json, { sku: 'sku_pkg', quota: 7 });
  t.equal(await quotaOf('sku_pkg'), 7);
  t.equal((await setQuota('sku_pkg', -1)).status, 400);
  t.equal((await call('PUT', '/v1/packages/sku_pkg', { quota: 1, extra: 1 })).status, 400);
  t.equal(await quotaOf('sku_pkg'), 7, 'bad updates change nothing');
});

t.test('activation decrements quota and is idempotent by ref', async (t) => {
  await setQuota('sku_act', 10);
  const ref = uniq('order');
  const first = await activate('sku_act', 3, ref);
  t.equal(first.status, 201);
  t.match(first.json, { id: /^pva_/, ref, sku: 'sku_act', quantity: 3, status: 'activating', created_at: String });
  t.equal(await quotaOf('sku_act'), 7);

  const again = await activate('sku_act', 3, ref);
  t.equal(again.status, 200, 'replay answers 200');
  t.equal(again.json.id, first.json.id, 'same activation');
  t.equal(await quotaOf('sku_act'), 7, 'replay consumes nothing');
  t.equal((await activate('sku_act', 4, ref)).status, 422, 'same ref, different quantity');

  const found = await call('GET', `/v1/activations?ref=${encodeURIComponent(ref)}`);
  t.equal(found.json.id, first.json.id, 'lookup by ref');
  t.equal((await call('GET', '/v1/activations')).status, 400, 'lookup needs ref');
  t.equal((await call('POST', '/v1/activations', { ref: 'x', sku: 'sku_act', quantity: 0, customer_ref: 'c' })).status, 400);
});

t.test('quota exhausted -> 409, nothing activated, quota unchanged', async (t) => {
  await setQuota('sku_low', 2);
  const before = await stats();
  const ref = uniq('order');
  const res = await activate('sku_low', 3, ref);
  t.equal(res.status, 409);
  t.equal(res.json.error.code, 'quota_exhausted');
  t.equal(await quotaOf('sku_low'), 2);
  t.equal((await call('GET', `/v1/activations?ref=${ref}`)).status, 404, 'no activation recorded');
  t.equal((await stats()).quota_exhausted, before.quota_exhausted + 1);
  // After a restock the same ref may go through.
  await setQuota('sku_low', 5);
  t.equal((await activate('sku_low', 3, ref)).status, 201);
  t.equal(await quotaOf('sku_low'), 2);
});

t.test('concurrent activations never oversell', async (t) => {
  await setQuota('sku_hot', 5);
  const results = await Promise.all(Array.from({ length: 20 }, () => activate('sku_hot')));
  t.equal(results.filter((r) => r.status === 201).length, 5);
  t.equal(results.filter((r) => r.status === 409).length, 15);
  t.equal(await quotaOf('sku_hot'), 0);
});

t.test('verify reports activating for the first VERIFY_FAIL_FIRST calls, then active', async (t) => {
  const { json: a } = await activate('sku_v');
  const before = await stats();
  const seen = [];
  for (let i = 0; i < 4; i++) seen.push((await verify(a.id)).json);
  t.same(seen.map((v) => v.status), ['activating', 'activating', 'active', 'active']);
  t.same(seen.map((v) => v.attempts), [1, 2, 3, 4]);
  t.match(seen[2], { id: a.id, ref: a.ref });
  const after = await stats();
  t.equal(after.verify_calls, before.verify_calls + 4);
  t.equal(after.active, before.active + 1, 'counted active once');
  t.equal((await verify('pva_missing')).status, 404);
});

t.test('verification failure returns the quota', async (t) => {
  await setQuota('sku_vf', 10);
  await setKnobs({ verify_fail_first: 0, verify_fail_rate: 1 });
  const { json: a } = await activate('sku_vf', 4);
  t.equal(await quotaOf('sku_vf'), 6);
  const v = await verify(a.id);
  t.equal(v.json.status, 'failed');
  t.equal(await quotaOf('sku_vf'), 10, 'quota given back');
  t.equal((await verify(a.id)).json.status, 'failed', 'stays failed');
  t.equal(await quotaOf('sku_vf'), 10, 'given back once');
});

t.test('activation failure knob: 201 failed, no quota consumed', async (t) => {
  await setQuota('sku_af', 10);
  t.equal((await setKnobs({ activation_fail_rate: 1 })).status, 200);
  const before = await stats();
  const ref = uniq('order');
  const res = await activate('sku_af', 2, ref);
  t.equal(res.status, 201);
  t.equal(res.json.status, 'failed');
  t.equal(await quotaOf('sku_af'), 10);
  await call('POST', '/_sim/reset');
  const replay = await activate('sku_af', 2, ref);
  t.equal(replay.status, 200);
  t.equal(replay.json.status, 'failed', 'the failed activation is what the ref names');
  t.equal((await stats()).failed, before.failed + 1);
});

t.test('error, latency and timeout knobs', async (t) => {
  await setQuota('sku_k', 10);
  await setKnobs({ error_rate: 1 });
  const ref = uniq('order');
  const down = await activate('sku_k', 1, ref);
  t.equal(down.status, 503);
  t.equal(down.json.error.code, 'unavailable');
  t.equal((await call('GET', '/_sim/stats')).status, 200, 'control API unaffected');
  await setKnobs({ error_rate: 0, latency_ms: 200 });
  t.equal((await call('GET', `/v1/activations?ref=${ref}`)).status, 404, 'a 503 did nothing');
  const t0 = Date.now();
  await quotaOf('sku_k');
  t.ok(Date.now() - t0 >= 190, 'latency applied');

  // Timed out from the caller's view, yet processed: a retry must reuse the ref.
  await setKnobs({ latency_ms: 0, timeout_rate: 1, timeout_ms: 1500 });
  const t1 = Date.now();
  const held = await activate('sku_k', 2, ref);
  t.equal(held.status, 201, 'held answer still arrives eventually');
  t.ok(Date.now() - t1 >= 1400, 'answer held for timeout_ms');
  const aborted = await call('POST', '/v1/activations', { ref: uniq('order'), sku: 'sku_k', quantity: 1, customer_ref: 'c' }, {}, 200).catch((e: Error) => e);
  t.type(aborted, Error, 'caller gave up');
  await call('POST', '/_sim/reset');
  t.equal(await quotaOf('sku_k'), 7, 'both held activations took effect once');
  const retry = await activate('sku_k', 2, ref);
  t.equal(retry.status, 200, 'retry with the same ref finds it');
  t.equal(await quotaOf('sku_k'), 7);

  t.equal((await setKnobs({ verify_fail_first: -1 })).status, 400);
  t.match(await stats(), { activations: Number, active: Number, failed: Number, verify_calls: Number, quota_exhausted: Number });
});
