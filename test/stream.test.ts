// The live stream (GET /v1/stream) against the suite's engine (2 workers):
// changes made through HTTP on one worker reach subscribers on every worker through
// Redis pub/sub; orders stream only to their owner (or an admin).
import { pack } from 'msgpackr';
import t from 'tap';
import { admin, api, customer, item, order } from './helpers/api.js';
import { connect, workerOf, type Frame, type StreamClient } from './helpers/live.js';

const isItemEvent = (id: string, available?: number) => (f: Frame) =>
  f.op === 'event' && f.topic === `items/${id}` && f.type === 'item.available' && (available === undefined || f.data.available === available);

/** Sockets until at least two workers hold one (SO_REUSEPORT spreads connections). */
async function socketsOnTwoWorkers(t: { teardown(fn: () => void): void }, min = 4): Promise<StreamClient[]> {
  const socks: StreamClient[] = [];
  while (socks.length < min || new Set(socks.map((s) => s.worker)).size < 2) {
    if (socks.length >= 40) throw new Error('40 sockets all landed on one worker');
    socks.push(await connect());
  }
  t.teardown(() => socks.forEach((s) => s.close()));
  return socks;
}

t.test('a hold made through HTTP reaches item subscribers on every worker', async (t) => {
  const it = await item({ stock: 9 });
  const socks = await socketsOnTwoWorkers(t);
  for (const s of socks) {
    const sub = await s.subscribe([`items/${it.id}`]);
    t.same(sub, { op: 'subscribed', topics: [`items/${it.id}`], refused: [] });
    await s.next(isItemEvent(it.id, 9)); // the current state comes first
  }
  const c = await customer();
  const res = await order(c.token, [{ item_id: it.id, quantity: 2 }]);
  t.equal(res.status, 201);
  const writer = workerOf(res.headers);
  const got = await Promise.all(socks.map((s) => s.next(isItemEvent(it.id, 7))));
  t.equal(got.length, socks.length, 'every socket got the change');
  t.same(got[0], { op: 'event', topic: `items/${it.id}`, type: 'item.available', data: { id: it.id, available: 7 } });
  const others = socks.filter((s) => s.worker !== writer);
  t.ok(others.length > 0, `sockets on a worker other than the writer (${writer}) got it too: ${others.map((s) => s.worker)}`);
});

t.test('a cancel and a restock stream too, in order, ending on the true count', async (t) => {
  const it = await item({ stock: 3 });
  const [s] = await socketsOnTwoWorkers(t, 1);
  await s!.subscribe([`items/${it.id}`]);
  const c = await customer();
  const made = await order(c.token, [{ item_id: it.id, quantity: 3 }]);
  await s!.next(isItemEvent(it.id, 0));
  let from = s!.frames.length;
  await api('POST', `/v1/orders/${made.body.orders[0].id}/cancel`, { token: c.token, body: {} });
  await s!.next(isItemEvent(it.id, 3), 5000, from);
  from = s!.frames.length;
  await api('POST', `/v1/items/${it.id}/stock`, { token: await admin(), body: { delta: 4 } });
  await s!.next(isItemEvent(it.id, 7), 5000, from);
  const counts = s!.frames.filter(isItemEvent(it.id)).map((f) => f.data.available);
  t.same(counts, [3, 0, 3, 7], 'snapshot, hold, cancel, restock; no duplicates, no old count last');
});

t.test('own orders: accepted with their status, then status changes; another customer is refused', async (t) => {
  const it = await item({ stock: 5 });
  const owner = await customer();
  const stranger = await customer();
  const made = await order(owner.token, [{ item_id: it.id, quantity: 1 }]);
  const id = made.body.orders[0].id as string;

  const mine = await connect({ token: owner.token });
  const theirs = await connect({ token: stranger.token });
  const anon = await connect();
  t.teardown(() => [mine, theirs, anon].forEach((s) => s.close()));

  t.same(await theirs.subscribe([`orders/${id}`, `items/${it.id}`]), { op: 'subscribed', topics: [`items/${it.id}`], refused: [`orders/${id}`] },
    "another customer's order is refused; the public item is fine");
  t.same(await anon.subscribe([`orders/${id}`]), { op: 'subscribed', topics: [], refused: [`orders/${id}`] }, 'no token, no orders');
  t.same(await mine.subscribe([`orders/${id}`]), { op: 'subscribed', topics: [`orders/${id}`], refused: [] });
  await mine.next((f) => f.op === 'event' && f.type === 'order.status' && f.data.status === 'awaiting_payment');

  await api('POST', `/v1/orders/${id}/cancel`, { token: owner.token, body: {} });
  const ev = await mine.next((f) => f.op === 'event' && f.type === 'order.status' && f.data.status === 'canceled');
  t.same(ev, { op: 'event', topic: `orders/${id}`, type: 'order.status', data: { id, status: 'canceled' } });
  t.notOk(theirs.frames.some((f) => f.topic === `orders/${id}`), 'the stranger saw nothing of the order');
});

t.test('auth by first message; an admin may watch any order', async (t) => {
  const owner = await customer();
  const made = await order(owner.token, [{ item_id: (await item()).id, quantity: 1 }]);
  const id = made.body.orders[0].id as string;
  const s = await connect();
  t.teardown(() => s.close());
  s.send({ op: 'auth', token: await admin() });
  const ok = await s.next((f) => f.op === 'authenticated');
  t.equal(ok.role, 'admin');
  t.same(await s.subscribe([`orders/${id}`]), { op: 'subscribed', topics: [`orders/${id}`], refused: [] });
});

t.test('msgpack: binary frames both ways, same shapes', async (t) => {
  const it = await item({ stock: 4 });
  const s = await connect({ format: 'msgpack' });
  t.teardown(() => s.close());
  s.send(pack({ op: 'subscribe', topics: [`items/${it.id}`] }));
  t.same(await s.next((f) => f.op === 'subscribed'), { op: 'subscribed', topics: [`items/${it.id}`], refused: [] });
  await order((await customer()).token, [{ item_id: it.id, quantity: 1 }]);
  t.same(await s.next(isItemEvent(it.id, 3)), { op: 'event', topic: `items/${it.id}`, type: 'item.available', data: { id: it.id, available: 3 } });
});

t.test('bad input is answered, bounded, and never kills the socket or the worker', async (t) => {
  await t.rejects(connect({ token: 'not-a-token' }), { status: 401 }, 'a bad token on the upgrade is 401');
  await t.rejects(connect({ nope: '1' }), { status: 400 }, 'an unknown query field is 400');

  const s = await connect();
  t.teardown(() => s.close());
  s.send('{not json');
  t.match(await s.next((f) => f.op === 'error'), { error: { type: 'invalid_request', code: 'invalid_json' } });
  s.send({ op: 'dance' });
  t.match(await s.next((f) => f.op === 'error' && f.error.code === 'validation_failed'), { error: { type: 'invalid_request' } });
  s.send({ op: 'subscribe', topics: ['items/x'], extra: 1 });
  await s.next((f) => f.op === 'error' && f.error.code === 'unknown_field');
  t.same(await s.subscribe(['items/it_0zzzzzz', 'orders/../x', 'nothing']), { op: 'subscribed', topics: [], refused: ['items/it_0zzzzzz', 'orders/../x', 'nothing'] },
    'unknown items and malformed topics are refused');
  t.equal(s.closed, null, 'still open');

  s.send({ op: 'auth', token: 'wrong' });
  await s.next((f) => f.op === 'error' && f.error.code === 'unauthenticated');
  t.equal((await s.waitClosed()).code, 4401, 'a bad token in auth closes with 4401');

  const big = await connect();
  big.send(JSON.stringify({ op: 'subscribe', topics: ['x'.repeat(20_000)] }));
  t.ok([1006, 1009].includes((await big.waitClosed()).code), 'a message past STREAM_MAX_MESSAGE_BYTES closes the socket');
  t.equal((await api('GET', '/healthz')).status, 200, 'the workers live on');
});

t.test('a socket holds at most STREAM_MAX_TOPICS (200) topics', async (t) => {
  const it = await item({ stock: 1 });
  const owner = await customer();
  const made = await Promise.all(Array.from({ length: 3 }, () => order(owner.token, [{ item_id: it.id, quantity: 1 }])));
  t.equal(made.filter((r) => r.status === 201).length, 1, 'stock 1: exactly one of the racing orders won');
  const ids: string[] = [];
  for (let i = 0; i < 21; i++) {
    const batch = await Promise.all(Array.from({ length: 10 }, () => item({ stock: 1 })));
    ids.push(...batch.map((x) => x.id as string));
  }
  const s = await connect();
  t.teardown(() => s.close());
  const first = await s.subscribe(ids.slice(0, 100).map((id) => `items/${id}`));
  t.equal(first.topics.length, 100);
  const second = await s.subscribe(ids.slice(100, 210).slice(0, 100).map((id) => `items/${id}`));
  t.equal(second.topics.length, 100);
  const third = await s.subscribe(ids.slice(200, 210).map((id) => `items/${id}`));
  t.same(third, { op: 'subscribed', topics: [], refused: ids.slice(200, 210).map((id) => `items/${id}`) }, 'past the limit, refused');
  const again = await s.subscribe([`items/${ids[0]}`]);
  t.same(again.topics, [`items/${ids[0]}`], 'a topic already held is still fine');
});
