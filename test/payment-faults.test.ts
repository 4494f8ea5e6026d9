// Payments while the gateway and the provider misbehave. The simulators' failure knobs
// are global to a simulator, so this file runs its own gateway, provider and engine
// (on databases and Redis keys of its own): turning a knob here cannot fail another
// test file's payment on the suite's shared simulators.
import t from 'tap';
import { api, customer, eventually, item, itemRow, localId, onShard, order, shardOf, sim, useWorld, world } from './helpers/api.js';
import { isolatedShards, startReady, stop } from './helpers/engine.js';
import { buy, complete, ledgerBalanced, ledgerOf, orderOf, pay, postEvent, statusBecomes } from './helpers/storefront.js';
import { spawnSim } from '../tools/lib/spawn.js';
import { OWN_PORTS } from './setup/env.js';

const PORT = OWN_PORTS.faultsEngine;
const gateway = await spawnSim('gateway', { GATEWAY_PORT: String(OWN_PORTS.faultsGateway) });
const provider = await spawnSim('provider', { PROVIDER_PORT: String(OWN_PORTS.faultsProvider) });
const shards = await isolatedShards(`engine_faults_${PORT}`);
const engine = await startReady(PORT, { PG_SHARDS: shards, WORKERS: '2', GATEWAY_URL: gateway.url, PROVIDER_URL: provider.url });
useWorld({ engine: engine.url, gateway: gateway.url, provider: provider.url, shards });
t.teardown(async () => {
  await stop(engine);
  await Promise.all([gateway.stop(), provider.stop()]);
});

t.afterEach(async () => {
  await sim(world.gateway, 'POST', '/_sim/reset');
  await sim(world.provider, 'POST', '/_sim/reset');
});

t.test('duplicate and out-of-order webhooks x10 give one capture', async (t) => {
  await sim(world.gateway, 'PUT', '/_sim/knobs', { duplicate_webhooks: 10, out_of_order: true });
  const { c, o } = await buy();
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  t.ok(await statusBecomes(c.token, o.id, 'completed'));
  await eventually(async () => (await sim(world.gateway, 'GET', '/_sim/stats')).body.webhooks_pending === 0, 10_000);
  // Replays signed by us too: same event id, a fresh id for the same capture, and a stale decline.
  const data = { session_id: p.gateway_session_id, merchant_ref: p.id, status: 'succeeded', escrow: 'held', amount_cents: p.amount_cents, currency: 'USD' };
  const replays = await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => postEvent({ id: `evt_replay_${p.id}_${i}`, type: 'payment.succeeded', created: 1, data })),
    postEvent({ id: `evt_late_decline_${p.id}`, type: 'payment.declined', created: 1, data: { ...data, status: 'declined' } }),
  ]);
  t.ok(replays.every((r) => r.status === 200), 'replays acknowledged');
  const captures = (await ledgerOf(o.id)).filter((e) => e.kind === 'capture');
  t.equal(captures.length, 2, 'one capture transfer (two legs)');
  t.match(await orderOf(c.token, o.id), { status: 'completed', payments: [{ status: 'succeeded', escrow: 'released' }] });
  await ledgerBalanced(t);
});

t.test('a lost webhook is recovered by polling the gateway', async (t) => {
  await sim(world.gateway, 'PUT', '/_sim/knobs', { lost_webhooks: 1 });
  const { c, o } = await buy();
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  t.ok(await statusBecomes(c.token, o.id, 'completed'), 'the reconciler placed it');
  await ledgerBalanced(t);
});

t.test('provider activation failure refunds the order and returns the stock', async (t) => {
  await sim(world.provider, 'PUT', '/_sim/knobs', { activation_fail_rate: 1 });
  const { it, c, o } = await buy({ fulfillment: 'provider' });
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  const done = await statusBecomes(c.token, o.id, 'refunded');
  t.ok(done, 'order refunded');
  t.match(done.payments, [{ status: 'refunded', escrow: 'refunded' }]);
  t.same(await itemRow(it.id), { available: 10, held: 0, sold: 0, stocked: 10 });
  await ledgerBalanced(t);
});

t.test('a failed credit line refunds an order of shipment and provider lines before it ships', async (t) => {
  await sim(world.provider, 'PUT', '/_sim/knobs', { activation_fail_rate: 1 });
  const box = await item({ stock: 10, price_cents: 2500, fulfillment: 'shipment' });
  const c = await customer();
  const credit = await item({ category_id: box.category_id, stock: 10, price_cents: 500, fulfillment: 'provider' });
  const o = (await order(c.token, [{ item_id: box.id, quantity: 1 }, { item_id: credit.id, quantity: 1 }])).body.orders[0];
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  const done = await statusBecomes(c.token, o.id, 'refunded');
  t.ok(done, 'order refunded');
  t.match(done.payments, [{ status: 'refunded', escrow: 'refunded' }]);
  for (const id of [box.id, credit.id]) t.same(await itemRow(id), { available: 10, held: 0, sold: 0, stocked: 10 }, `stock of ${id} returned`);
  await ledgerBalanced(t);
});

t.test('verification succeeding on the third try completes the order', async (t) => {
  await sim(world.provider, 'PUT', '/_sim/knobs', { verify_fail_first: 2 });
  const { c, o } = await buy({ fulfillment: 'provider', price_cents: 999 });
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  t.ok(await statusBecomes(c.token, o.id, 'completed'));
  const f = await onShard(shardOf(o.id), 'SELECT status, verify_attempts FROM fulfillments WHERE order_id = $1', [localId(o.id)]);
  t.same(f, [{ status: 'active', verify_attempts: 3 }]);
  t.same((await ledgerOf(o.id)).filter((e) => e.kind === 'release').map((e) => e.account).sort(), ['escrow', 'provider_payable']);
  await ledgerBalanced(t);
});

t.test('while the gateway is failing, payment creation answers 503 quickly and heals', async (t) => {
  await sim(world.gateway, 'PUT', '/_sim/knobs', { error_rate: 1 });
  const { c, o } = await buy();
  const started = Date.now();
  const res = await api('POST', `/v1/orders/${o.id}/payments`, { token: c.token, body: { method: 'card' } });
  t.equal(res.status, 503);
  t.equal(res.body.error.type, 'unavailable');
  t.ok(res.headers.get('retry-after'));
  t.ok(Date.now() - started < 5000, 'answered without waiting on the gateway for long');
  await sim(world.gateway, 'POST', '/_sim/reset');
  const ok = await eventually(async () => (await api('POST', `/v1/orders/${o.id}/payments`, { token: c.token, body: { method: 'card' } })).status === 201, 15_000, 500);
  t.ok(ok, 'payments work again once the gateway recovers');
});


/** The gateway's own view of a session (merchant API). */
async function gatewaySession(id: string): Promise<any> {
  return (await api('GET', `/v1/sessions/${id}`, { base: world.gateway, headers: { authorization: 'Bearer gw_test_key' } })).body;
}

t.test('a cancel racing the release of escrow is refused: a payment is never both released and refunded', async (t) => {
  const { c, o } = await buy();
  const p = await pay(c.token, o.id);
  // Every merchant call to the gateway now takes 1.5 s: the release is a wide window.
  await sim(world.gateway, 'PUT', '/_sim/knobs', { latency_ms: 1500 });
  await complete(p.gateway_session_id, 'succeeded');
  t.ok(await eventually(async () => (await orderOf(c.token, o.id)).status === 'paid', 10_000, 20), 'the order is paid, its release under way');
  const cancel = await api('POST', `/v1/orders/${o.id}/cancel`, { token: c.token, body: {} });
  t.equal(cancel.status, 409, 'the cancel is refused once the release is claimed');
  t.equal(cancel.body.error?.code, 'invalid_state');
  const done = await statusBecomes(c.token, o.id, 'completed');
  t.match(done, { status: 'completed', payments: [{ status: 'succeeded', escrow: 'released' }] });
  const s = await gatewaySession(p.gateway_session_id);
  t.match(s, { status: 'succeeded', escrow: 'released' }, 'the gateway released and did not refund');
  await ledgerBalanced(t);
});

t.test('a lost webhook behind a hundred unpaid checkouts and a failing poll is still recovered in time', async (t) => {
  const it = await item({ stock: 200, price_cents: 300 });
  const c = await customer();
  // 100 unpaid checkouts, each with an open payment, all older than the paid one.
  const unpaid = [];
  for (let i = 0; i < 100; i++) unpaid.push((await order(c.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0]);
  const opened = await Promise.all(unpaid.map((o) => pay(c.token, o.id)));
  // One of them the engine cannot settle (its recorded amount no longer matches the
  // gateway's): its poll throws every time.
  await sim(world.gateway, 'PUT', '/_sim/knobs', { lost_webhooks: 1 });
  const broken = opened[0];
  await complete(broken.gateway_session_id, 'succeeded');
  await onShard(shardOf(broken.id), 'UPDATE payments SET amount_cents = amount_cents + 1 WHERE id = $1', [localId(broken.id)]);
  const o = (await order(c.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0];
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  t.ok(await eventually(async () => (await orderOf(c.token, o.id)).status === 'completed', 20_000, 200), 'the reconciler reached the paid one');
  await onShard(shardOf(broken.id), 'UPDATE payments SET amount_cents = amount_cents - 1 WHERE id = $1', [localId(broken.id)]);
});
