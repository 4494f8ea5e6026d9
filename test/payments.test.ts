// Payments through the suite's shared engine and gateway simulator. The failure knobs
// of the simulators are global, so the tests that turn them live in
// payment-faults.test.ts, on an engine and simulators of their own.
import t from 'tap';
import { api, customer, eventually, invariantsHold, itemRow, localId, onShard, shardOf, sim, uniq } from './helpers/api.js';
import { buy, complete, ledgerBalanced, ledgerOf, orderOf, pay, postEvent, sign, statusBecomes } from './helpers/storefront.js';
import { GATEWAY_URL } from './setup/env.js';

t.test('card happy path: pay at the checkout page, the order completes and escrow is released', async (t) => {
  const { it, c, o } = await buy({}, 2);
  const p = await pay(c.token, o.id, 'card');
  t.match(p, { status: 'pending', method: 'card', amount_cents: 2500, currency: 'USD', redirect_url: /\/checkout\/gws_/ });
  const page = await fetch(p.redirect_url).then((r) => r.text());
  t.match(page, />\s*Pay\s*</);
  t.match(page, />\s*Decline\s*</);
  await fetch(`${GATEWAY_URL}/checkout/${p.gateway_session_id}/pay`, { method: 'POST', redirect: 'manual' });
  const done = await statusBecomes(c.token, o.id, 'completed');
  t.ok(done, 'order completed');
  t.match(done.payments, [{ id: p.id, status: 'succeeded', escrow: 'released' }]);
  t.same(await itemRow(it.id), { available: 8, held: 0, sold: 2, stocked: 10 });
  t.same(await ledgerOf(o.id), [
    { account: 'customer', amount: -2500, kind: 'capture' }, { account: 'escrow', amount: 2500, kind: 'capture' },
    { account: 'escrow', amount: -2500, kind: 'release' }, { account: 'merchant', amount: 2500, kind: 'release' },
  ]);
  const session = await sim(GATEWAY_URL, 'GET', `/v1/sessions/${p.gateway_session_id}`);
  t.equal(session.status, 401, 'the merchant API needs the key');
  await ledgerBalanced(t);
  await invariantsHold(t, { items: [it.id], customers: [c.id] });
});

t.test('QR happy path', async (t) => {
  const { c, o } = await buy();
  const p = await pay(c.token, o.id, 'qr');
  t.match(p.qr_payload, /^GWQR\|gws_/);
  t.equal(p.redirect_url, undefined);
  await complete(p.gateway_session_id, 'succeeded');
  t.ok(await statusBecomes(c.token, o.id, 'completed'));
  const got = await api('GET', `/v1/payments/${p.id}`, { token: c.token });
  t.match(got.body, { status: 'succeeded', escrow: 'released' });
  await ledgerBalanced(t);
});

t.test('a decline leaves the order payable; a second payment can succeed; stock held once', async (t) => {
  const { it, c, o } = await buy();
  const p1 = await pay(c.token, o.id);
  await complete(p1.gateway_session_id, 'declined');
  t.ok(await eventually(async () => (await api('GET', `/v1/payments/${p1.id}`, { token: c.token })).body.status === 'failed'));
  t.equal((await orderOf(c.token, o.id)).status, 'awaiting_payment');
  t.same(await itemRow(it.id), { available: 9, held: 1, sold: 0, stocked: 10 });
  const p2 = await pay(c.token, o.id);
  t.not(p2.id, p1.id);
  await complete(p2.gateway_session_id, 'succeeded');
  t.ok(await statusBecomes(c.token, o.id, 'completed'));
  t.same(await itemRow(it.id), { available: 9, held: 0, sold: 1, stocked: 10 });
  await ledgerBalanced(t);
});

t.test('one live payment per order: a second request returns the pending one', async (t) => {
  const { c, o } = await buy();
  const p1 = await pay(c.token, o.id);
  const again = await api('POST', `/v1/orders/${o.id}/payments`, { token: c.token, body: { method: 'card' } });
  t.equal(again.status, 200);
  t.equal(again.body.id, p1.id);
  const other = await customer();
  t.equal((await api('POST', `/v1/orders/${o.id}/payments`, { token: other.token, body: { method: 'card' } })).status, 404);
  t.equal((await api('GET', `/v1/payments/${p1.id}`, { token: other.token })).status, 404);
});

t.test('forged, stale and wrong-amount webhooks are rejected and change nothing', async (t) => {
  const { c, o } = await buy();
  const p = await pay(c.token, o.id);
  const data = { session_id: p.gateway_session_id, merchant_ref: p.id, status: 'succeeded', escrow: 'held', amount_cents: p.amount_cents, currency: 'USD' };
  const ev = { id: `evt_${uniq()}`, type: 'payment.succeeded', created: 1, data };
  const raw = JSON.stringify(ev);
  const forged = await postEvent(ev, sign(raw, undefined, 'not-the-secret'));
  const stale = await postEvent(ev, sign(raw, Math.floor(Date.now() / 1000) - 600));
  const missing = await api('POST', '/v1/webhooks/gateway', { raw, headers: { 'content-type': 'application/json' } });
  const wrongAmount = await postEvent({ ...ev, id: `evt_${uniq()}`, data: { ...data, amount_cents: 1 } });
  const wrongCurrency = await postEvent({ ...ev, id: `evt_${uniq()}`, data: { ...data, currency: 'EUR' } });
  t.equal(forged.status, 401);
  t.equal(stale.status, 401);
  t.equal(missing.status, 401);
  t.equal(wrongAmount.status, 400);
  t.equal(wrongCurrency.status, 400);
  t.match(await orderOf(c.token, o.id), { status: 'awaiting_payment', payments: [{ status: 'pending' }] });
  const events = await onShard(shardOf(o.id), 'SELECT count(*)::int AS n FROM gateway_events WHERE payment_id = $1', [localId(p.id)]);
  t.equal(events[0].n, 0, 'no event recorded');
});

t.test('a payment that arrives after the hold expired is refunded by the cron', async (t) => {
  const { it, c, o } = await buy();
  const p = await pay(c.token, o.id);
  await onShard(shardOf(o.id), "UPDATE orders SET hold_expires_at = now() - interval '1 second' WHERE id = $1", [localId(o.id)]);
  await onShard(shardOf(o.id), "UPDATE holds SET expires_at = now() - interval '1 second' WHERE order_id = $1", [localId(o.id)]);
  t.ok(await statusBecomes(c.token, o.id, 'expired'), 'the hold expired first');
  await complete(p.gateway_session_id, 'succeeded');
  const refunded = await eventually(async () => (await api('GET', `/v1/payments/${p.id}`, { token: c.token })).body.status === 'refunded');
  t.ok(refunded, 'money given back');
  const session = (await api('GET', `/v1/sessions/${p.gateway_session_id}`, { base: GATEWAY_URL, headers: { authorization: 'Bearer gw_test_key' } })).body;
  t.match(session, { status: 'refunded', escrow: 'refunded' });
  t.equal((await orderOf(c.token, o.id)).status, 'expired');
  t.same(await itemRow(it.id), { available: 10, held: 0, sold: 0, stocked: 10 });
  await ledgerBalanced(t);
  await invariantsHold(t, { items: [it.id], customers: [c.id] });
});

t.test('canceling a paid, unshipped order refunds it exactly once', async (t) => {
  const { it, c, o } = await buy({ fulfillment: 'shipment' });
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  t.ok(await statusBecomes(c.token, o.id, 'paid'), 'shipment orders wait in paid');
  const [a, b] = await Promise.all([api('POST', `/v1/orders/${o.id}/cancel`, { token: c.token }), api('POST', `/v1/orders/${o.id}/cancel`, { token: c.token })]);
  t.ok([a.status, b.status].includes(200));
  const final = await eventually(async () => { const x = await orderOf(c.token, o.id); return x.payments[0].status === 'refunded' ? x : null; });
  t.match(final, { status: 'canceled', payments: [{ status: 'refunded', escrow: 'refunded' }] });
  t.equal((await ledgerOf(o.id)).filter((e) => e.kind === 'refund').length, 2, 'one refund transfer');
  t.same(await itemRow(it.id), { available: 10, held: 0, sold: 0, stocked: 10 });
  await ledgerBalanced(t);
  await invariantsHold(t, { items: [it.id], customers: [c.id] });
});

t.test('every transition is a notice in the outbox, delivered to the sink', async (t) => {
  const { c, o } = await buy();
  const p = await pay(c.token, o.id);
  await complete(p.gateway_session_id, 'succeeded');
  await statusBecomes(c.token, o.id, 'completed');
  const delivered = await eventually(async () => {
    const rows = await onShard(shardOf(o.id), "SELECT payload->>'to' AS to, delivered_at IS NOT NULL AS done FROM outbox WHERE (payload->>'order_id')::bigint = $1 ORDER BY id", [localId(o.id)]);
    return rows.length === 3 && rows.every((r) => r.done) ? rows : null;
  });
  t.same(delivered?.map((r) => r.to), ['awaiting_payment', 'paid', 'completed']);
});
