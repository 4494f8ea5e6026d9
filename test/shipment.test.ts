import t from 'tap';
import { admin, api, customer, eventually, item, itemRow, localId, onShard, order, shardOf, uniq } from './helpers/api.js';
import { ledgerBalanced, ledgerOf, orderOf, payOrder, statusBecomes } from './helpers/storefront.js';
import { GATEWAY_URL } from './setup/env.js';

const ship = async (id: string, body: unknown = { carrier: 'DHL', tracking: uniq('trk') }, token?: string) =>
  api('POST', `/v1/orders/${id}/ship`, { token: token ?? await admin(), body });
const deliver = async (id: string, token?: string) => api('POST', `/v1/orders/${id}/deliver`, { token: token ?? await admin(), body: {} });
const cancel = (token: string, id: string) => api('POST', `/v1/orders/${id}/cancel`, { token });

async function paidShipmentOrder(price_cents = 4200, quantity = 1) {
  const it = await item({ stock: 10, price_cents, fulfillment: 'shipment' });
  const c = await customer();
  const o = (await order(c.token, [{ item_id: it.id, quantity }])).body.orders[0];
  const paid = await payOrder(c.token, o.id);
  return { it, c, o: paid };
}

const escrowOf = async (id: string) => (await ledgerOf(id)).filter((e) => e.account === 'escrow').reduce((s, e) => s + e.amount, 0);

t.test('paid -> shipped -> delivered: escrow released once to the merchant; no cancel after shipping', async (t) => {
  const { it, c, o } = await paidShipmentOrder(4200, 2);
  t.equal(o.status, 'paid', 'a shipment order waits in paid');
  t.equal(o.shipment, null);
  t.equal((await ship(o.id, { carrier: 'DHL', tracking: 'T1' }, c.token)).status, 403, 'customers cannot ship');
  t.equal((await api('POST', `/v1/orders/${o.id}/ship`, { body: { carrier: 'DHL', tracking: 'T1' } })).status, 401);
  t.equal((await ship(o.id, { carrier: 'DHL' })).status, 400, 'tracking is required');
  t.equal((await ship(o.id, { carrier: '', tracking: 'x' })).status, 400);

  const shipped = await ship(o.id, { carrier: 'DHL', tracking: 'JD0123' });
  t.equal(shipped.status, 200);
  t.match(shipped.body, { status: 'shipped', shipment: { carrier: 'DHL', tracking: 'JD0123', delivered_at: null } });
  t.ok(Date.parse(shipped.body.shipment.shipped_at) > 0);
  t.equal((await ship(o.id)).status, 409, 'shipping twice is refused');
  const late = await cancel(c.token, o.id);
  t.equal(late.status, 409, 'no cancel once shipped');
  t.equal(late.body.error.code, 'invalid_state');
  t.match((await orderOf(c.token, o.id)), { status: 'shipped', payments: [{ status: 'succeeded', escrow: 'held' }] }, 'the customer sees it shipped');
  t.equal(await escrowOf(o.id), 8400, 'money still in escrow while in transit');

  const delivered = await deliver(o.id);
  t.equal(delivered.status, 200);
  t.match(delivered.body, { status: 'completed', shipment: { carrier: 'DHL', tracking: 'JD0123' }, payments: [{ status: 'succeeded', escrow: 'released' }] });
  t.ok(Date.parse(delivered.body.shipment.delivered_at) >= Date.parse(delivered.body.shipment.shipped_at));
  t.equal((await deliver(o.id)).status, 409, 'delivering twice is refused');
  t.same(await ledgerOf(o.id), [
    { account: 'customer', amount: -8400, kind: 'capture' }, { account: 'escrow', amount: 8400, kind: 'capture' },
    { account: 'escrow', amount: -8400, kind: 'release' }, { account: 'merchant', amount: 8400, kind: 'release' },
  ], 'captured once, released once, to the merchant');
  t.equal(await escrowOf(o.id), 0);
  const session = await api('GET', `/v1/sessions/${o.payments[0].gateway_session_id}`, { base: GATEWAY_URL, headers: { authorization: 'Bearer gw_test_key' } });
  t.match(session.body, { status: 'succeeded', escrow: 'released' }, 'released at the gateway too');
  t.same(await itemRow(it.id), { available: 8, held: 0, sold: 2, stocked: 10 });

  const events = (await api('GET', `/v1/orders/${o.id}/events`, { token: c.token })).body.data;
  t.same(events.map((e: { to_status: string }) => e.to_status), ['awaiting_payment', 'paid', 'shipped', 'completed']);
  t.match(events[2], { from_status: 'paid', actor: /^admin:us_/, reason: 'shipped' });
  t.match(events[3], { from_status: 'shipped', actor: /^admin:us_/, reason: 'delivered' });
  const notices = await eventually(async () => {
    const rows = await onShard(shardOf(o.id), "SELECT payload->>'to' AS to FROM outbox WHERE (payload->>'order_id')::bigint = $1 ORDER BY id", [localId(o.id)]);
    return rows.length === 4 ? rows : null;
  });
  t.same(notices?.map((r) => r.to), ['awaiting_payment', 'paid', 'shipped', 'completed'], 'every transition is a notice');
  const ledger = await api('GET', '/v1/admin/ledger', { token: await admin() });
  t.equal(ledger.body.balanced, true);
});

t.test('two admins delivering at once release escrow once', async (t) => {
  const { o } = await paidShipmentOrder(1500);
  t.equal((await ship(o.id)).status, 200);
  const results = await Promise.all(Array.from({ length: 5 }, () => deliver(o.id)));
  t.equal(results.filter((r) => r.status === 200).length, 1, 'one delivery');
  t.ok(results.every((r) => r.status === 200 || r.status === 409));
  t.equal((await ledgerOf(o.id)).filter((e) => e.kind === 'release').length, 2, 'one release transfer (two legs)');
  t.equal(await escrowOf(o.id), 0);
});

t.test('a customer cancels before shipping: full refund, stock back, and it cannot ship after', async (t) => {
  const { it, c, o } = await paidShipmentOrder(2500);
  const res = await cancel(c.token, o.id);
  t.equal(res.status, 200);
  t.equal(res.body.status, 'canceled');
  const refunded = await eventually(async () => {
    const x = await orderOf(c.token, o.id);
    return x.payments[0].status === 'refunded' ? x : null;
  });
  t.match(refunded, { status: 'canceled', payments: [{ status: 'refunded', escrow: 'refunded' }] });
  t.equal(await escrowOf(o.id), 0, 'escrow back to zero');
  t.same((await ledgerOf(o.id)).filter((e) => e.kind === 'refund').map((e) => [e.account, e.amount]), [['escrow', -2500], ['customer', 2500]]);
  t.same(await itemRow(it.id), { available: 10, held: 0, sold: 0, stocked: 10 });
  t.equal((await ship(o.id)).status, 409, 'a canceled order does not ship');
});

t.test('only paid orders of shipment items ship, only shipped ones deliver', async (t) => {
  const instant = await item({ stock: 5 });
  const c = await customer();
  const o = (await order(c.token, [{ item_id: instant.id, quantity: 1 }])).body.orders[0];
  const waiting = await ship(o.id);
  t.equal(waiting.status, 409, 'awaiting payment');
  t.match(waiting.body.error, { code: 'invalid_state', status: 'awaiting_payment' });
  t.equal((await deliver(o.id)).status, 409, 'not shipped');
  await payOrder(c.token, o.id);
  t.ok(await statusBecomes(c.token, o.id, 'completed'), 'instant orders complete by themselves');
  t.equal((await ship(o.id)).status, 409, 'a completed order does not ship');
  t.equal((await ship('or_0zzzzzz')).status, 404);
  t.equal((await ship('nope')).status, 404);
  t.equal((await deliver('or_0zzzzzz')).status, 404);
});

t.test('shipment and provider lines in one order: the credit is activated, then it ships; no cancel once activation began', async (t) => {
  const box = await item({ stock: 10, price_cents: 3000, fulfillment: 'shipment' });
  const credit = await item({ category_id: box.category_id, stock: 10, price_cents: 1500, fulfillment: 'provider' });
  const c = await customer();
  const made = (await order(c.token, [{ item_id: box.id, quantity: 1 }, { item_id: credit.id, quantity: 2 }])).body.orders;
  t.equal(made.length, 1, 'one shard, one order');
  const o = await payOrder(c.token, made[0].id);
  t.equal(o.status, 'paid');
  const lines = () => onShard(shardOf(o.id), 'SELECT item_id, status FROM fulfillments WHERE order_id = $1', [localId(o.id)]);
  const active = await eventually(async () => ((await lines())[0]?.status === 'active' ? lines() : null));
  t.same(active, [{ item_id: localId(credit.id), status: 'active' }], 'the credit line is activated while the order waits to ship');
  t.equal((await orderOf(c.token, o.id)).status, 'paid', 'and the order still waits for its shipment');
  const refused = await cancel(c.token, o.id);
  t.equal(refused.status, 409, 'activated credit is not canceled with a refund');
  t.equal(refused.body.error.code, 'invalid_state');
  t.equal((await ship(o.id)).status, 200);
  const delivered = await deliver(o.id);
  t.match(delivered.body, { status: 'completed', payments: [{ status: 'succeeded', escrow: 'released' }] });
  t.same((await ledgerOf(o.id)).filter((e) => e.kind === 'release').sort((a, b) => a.account.localeCompare(b.account)), [
    { account: 'escrow', amount: -6000, kind: 'release' }, { account: 'merchant', amount: 3000, kind: 'release' },
    { account: 'provider_payable', amount: 3000, kind: 'release' },
  ], 'escrow released at delivery: the goods to the merchant, the credit to the provider');
  t.same(await itemRow(credit.id), { available: 8, held: 0, sold: 2, stocked: 10 });
  await ledgerBalanced(t);
});
