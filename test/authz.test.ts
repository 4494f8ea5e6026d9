// Who may do what, over every route the engine publishes (GET /openapi.json at run
// time: `security: []` is public, anything else needs a bearer token):
//   - no token, a garbage token, a revoked token (logged out), an expired token (its
//     session row made past-due in SQL on the user's shard) and a deleted user's token:
//     401 on every protected route, on the stream upgrade, and in the stream's auth message;
//   - a customer on admin routes: 403, nothing changed;
//   - a customer on another customer's orders and payments: 404 (never 403: not even
//     existence leaks), nothing changed, and no response carries the other's ids;
//   - mass assignment (role, price_cents, status, customer_id, available, sold, ...) in
//     any body: 400 unknown_field, nothing changed;
//   - webhooks: a replay of the real event after success, signed late events of another
//     kind, a body changed after signing, another payment's session: nothing changes.
import { createHash, createHmac } from 'node:crypto';
import t from 'tap';
import { sleep } from '../tools/lib/wait.js';
import { admin, api, customer, eventually, item, localId, onShard, order, shardOf, shardOfToken, sim, uniq, type Customer } from './helpers/api.js';
import { connect } from './helpers/live.js';
import { GATEWAY_URL } from './setup/env.js';

type Schema = Record<string, any>;
interface Route { method: string; path: string; params: string[]; body: Schema | null; open: boolean }

async function routes(): Promise<Route[]> {
  const doc = (await api('GET', '/openapi.json')).body;
  const out: Route[] = [];
  for (const [path, ops] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      out.push({
        method: method.toUpperCase(), path, params: ((op.parameters ?? []) as { name: string; in: string }[]).filter((p) => p.in === 'path').map((p) => p.name),
        body: op.requestBody?.content?.['application/json']?.schema ?? null, open: Array.isArray(op.security) && op.security.length === 0,
      });
    }
  }
  return out;
}

/** The routes only an admin may call (plus everything under /v1/admin/). */
const ADMIN_ONLY = new Set(['POST /v1/categories', 'POST /v1/items', 'PATCH /v1/items/{id}', 'POST /v1/items/{id}/stock', 'POST /v1/orders/{id}/ship', 'POST /v1/orders/{id}/deliver']);
const isAdminRoute = (r: Route) => ADMIN_ONLY.has(`${r.method} ${r.path}`) || r.path.startsWith('/v1/admin/');
const MASS_FIELDS: [string, unknown][] = [['role', 'admin'], ['price_cents', 1], ['status', 'paid'], ['customer_id', 'us_0'], ['available', 1_000_000], ['sold', 0], ['amount_cents', 1], ['held', 0], ['stocked', 1], ['user_id', 'us_0'], ['id', 'it_01']];

/** A body the route's schema accepts, so what is judged is who calls, not what they send. */
function validBody(s: Schema, hints: Record<string, () => unknown>): unknown {
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum)) return s.enum[0];
  const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes('object')) {
    return Object.fromEntries((s.required ?? []).map((p: string) => [p, hints[p]?.() ?? validBody(s.properties?.[p] ?? {}, hints)]));
  }
  if (types.includes('array')) return [validBody(s.items ?? {}, hints)];
  if (types.includes('string')) return uniq('authz');
  if (types.includes('integer') || types.includes('number')) return Math.max(1, s.minimum ?? 1);
  if (types.includes('boolean')) return true;
  return null;
}

const tokenHash = (token: string) => createHash('sha256').update(token).digest();

async function expiredToken(): Promise<string> {
  const c = await customer();
  await onShard(shardOfToken(c.token), "UPDATE sessions SET expires_at = now() - interval '1 minute' WHERE token_hash = $1", [tokenHash(c.token)]);
  return c.token;
}

async function revokedToken(): Promise<string> {
  const c = await customer();
  const out = await api('DELETE', '/v1/sessions/current', { token: c.token });
  if (out.status !== 204) throw new Error(`logout answered ${out.status}`);
  return c.token;
}

interface World {
  adminToken: string; a: Customer; b: Customer; itemId: string; aOrder: string; aPayment: string; bOrder: string;
  flag: { name: string; enabled: boolean } | null;
}

async function world(all: Route[]): Promise<World> {
  const adminToken = await admin();
  const it = await item({ stock: 100, fulfillment: 'shipment' });
  const [a, b] = [await customer(), await customer()];
  const aOrder = (await order(a.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0].id as string;
  const bOrder = (await order(b.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0].id as string;
  const pay = await api('POST', `/v1/orders/${aOrder}/payments`, { token: a.token, body: { method: 'card' }, headers: { 'idempotency-key': uniq('pay') } });
  if (pay.status !== 201) throw new Error(`payment ${pay.status} ${JSON.stringify(pay.body)}`);
  let flag: World['flag'] = null;
  if (all.some((r) => r.path === '/v1/admin/flags/{name}')) {
    const list = await api('GET', '/v1/admin/flags', { token: adminToken });
    const first = (list.body?.data ?? list.body?.flags ?? [])[0];
    if (first) flag = { name: first.name as string, enabled: first.enabled as boolean };
  }
  return { adminToken, a, b, itemId: it.id, aOrder, aPayment: pay.body.id as string, bOrder, flag };
}

function pathFor(r: Route, w: World, orderId: string, paymentId: string): string {
  return r.path.replace(/\{([a-z_]+)\}/g, (_, p: string) => {
    if (p === 'item_id' || r.path.startsWith('/v1/items/')) return w.itemId;
    if (p === 'name') return w.flag?.name ?? 'no-such-flag';
    if (r.path.startsWith('/v1/payments/')) return paymentId;
    if (r.path.startsWith('/v1/orders/')) return orderId;
    return 'x';
  });
}

function hintsFor(w: World): Record<string, () => unknown> {
  return {
    email: () => `${uniq('authz')}@example.com`, password: () => 'authz-password-1', new_password: () => 'authz-password-2', current_password: () => 'authz-password-0',
    currency: () => 'USD', category_id: () => '1', item_id: () => w.itemId, quantity: () => 1, method: () => 'card', delta: () => 1,
    name: () => uniq('authz'), price_cents: () => 100, stock: () => 1, enabled: () => w.flag?.enabled ?? true, carrier: () => 'AuthzPost', tracking: () => 'TRK1',
  };
}

/** What a refused request must leave as it was: both customers' orders and payments, the item, roles, the flag. */
async function snapshot(w: World): Promise<string> {
  const rows: unknown[] = [];
  for (const id of [w.aOrder, w.bOrder]) {
    rows.push(await onShard(shardOf(id), 'SELECT status, total_cents, payment_id FROM orders WHERE id = $1', [localId(id)]));
    rows.push(await onShard(shardOf(id), 'SELECT id, status, amount_cents, escrow FROM payments WHERE order_id = $1 ORDER BY id', [localId(id)]));
  }
  rows.push(await onShard(shardOf(w.itemId), 'SELECT available, held, sold, stocked, price_cents, name, active FROM items WHERE id = $1', [localId(w.itemId)]));
  for (const c of [w.a, w.b]) {
    rows.push(await onShard(shardOfToken(c.token), 'SELECT u.role, u.name, u.deleted_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1', [tokenHash(c.token)]));
  }
  if (w.flag) rows.push((await api('GET', `/v1/admin/flags/${w.flag.name}`, { token: w.adminToken })).body);
  return JSON.stringify(rows);
}

t.test('authorization matrix over every route: refused, nothing changed, nothing leaked', async (t) => {
  const all = await routes();
  const w = await world(all);
  const hints = hintsFor(w);
  const before = await snapshot(w);
  const counts = { unauthenticated: 0, customer_on_admin: 0, cross_customer: 0, mass_assignment: 0 };
  const wrong: string[] = [];
  const call = (r: Route, token: string | null, path: string, body?: unknown) => api(r.method, path, { token, body: body ?? (r.body ? validBody(r.body, hints) : undefined) });

  // 1. No token, garbage, revoked, expired, deleted user: 401 on every protected route.
  const bad: [string, string | null][] = [['no token', null], ['garbage', `s0.${'A'.repeat(43)}`], ['revoked', await revokedToken()], ['expired', await expiredToken()]];
  if (all.some((r) => r.method === 'DELETE' && r.path === '/v1/users/me')) {
    const gone = await customer();
    t.equal((await api('DELETE', '/v1/users/me', { token: gone.token })).status, 204, 'a customer deletes their account');
    bad.push(['deleted user', gone.token]);
  }
  const protectedRoutes = all.filter((r) => !r.open);
  t.ok(protectedRoutes.length >= 15, `${protectedRoutes.length} protected routes`);
  for (const r of protectedRoutes) {
    for (const [label, token] of bad) {
      const res = await call(r, token, pathFor(r, w, w.aOrder, w.aPayment));
      counts.unauthenticated++;
      if (res.status !== 401 || res.body?.error?.type !== 'authentication') wrong.push(`${label}: ${r.method} ${r.path} -> ${res.status} ${JSON.stringify(res.body).slice(0, 120)}`);
    }
  }

  // 2. A customer on admin routes: 403.
  for (const r of all.filter(isAdminRoute)) {
    const res = await call(r, w.a.token, pathFor(r, w, w.aOrder, w.aPayment));
    counts.customer_on_admin++;
    if (res.status !== 403 || res.body?.error?.type !== 'forbidden') wrong.push(`customer on admin: ${r.method} ${r.path} -> ${res.status}`);
  }

  // 3. Customer B on customer A's orders and payments: 404, and no answer names A's things.
  const aIds = [w.aOrder, w.aPayment, w.a.id, w.a.email];
  const leaks: string[] = [];
  for (const r of all.filter((x) => !x.open && x.params.length > 0 && !isAdminRoute(x) && /^\/v1\/(orders|payments)\//.test(x.path))) {
    const res = await call(r, w.b.token, pathFor(r, w, w.aOrder, w.aPayment));
    counts.cross_customer++;
    if (res.status !== 404 || res.body?.error?.type !== 'not_found') wrong.push(`customer B on A's: ${r.method} ${r.path} -> ${res.status}`);
    const text = JSON.stringify(res.body);
    for (const id of aIds) if (text.includes(id)) leaks.push(`${r.method} ${r.path} named ${id}`);
  }
  for (const r of all.filter((x) => x.method === 'GET' && !x.open && x.params.length === 0 && !isAdminRoute(x))) {
    const res = await call(r, w.b.token, r.path);
    counts.cross_customer++;
    const text = JSON.stringify(res.body);
    for (const id of aIds) if (text.includes(id)) leaks.push(`GET ${r.path} named ${id}`);
  }
  const bList = await api('GET', '/v1/orders?limit=100', { token: w.b.token });
  t.ok(bList.body.data.some((o: { id: string }) => o.id === w.bOrder) && !bList.body.data.some((o: { id: string }) => o.id === w.aOrder), "B's list has B's order, not A's");

  // 4. Mass assignment: every body route refuses fields the contract does not name.
  for (const r of all.filter((x) => x.body)) {
    const token = isAdminRoute(r) ? w.adminToken : w.a.token;
    const base = validBody(r.body!, hints) as Record<string, unknown>;
    const path = pathFor(r, w, w.aOrder, w.aPayment);
    const extras = MASS_FIELDS.filter(([f]) => !(f in (r.body!.properties ?? {})));
    for (const [field, value] of extras) {
      const res = await call(r, token, path, { ...base, [field]: value });
      counts.mass_assignment++;
      if (res.status !== 400 || res.body?.error?.code !== 'unknown_field') wrong.push(`mass assignment ${field}: ${r.method} ${r.path} -> ${res.status} ${res.body?.error?.code}`);
    }
    const lines = Object.entries<Schema>(r.body!.properties ?? {}).find(([, s]) => s.type === 'array' && s.items?.properties);
    if (lines && Array.isArray(base[lines[0]])) {
      for (const [field, value] of MASS_FIELDS.filter(([f]) => !(f in (lines[1].items.properties ?? {})))) {
        const res = await call(r, token, path, { ...base, [lines[0]]: [{ ...(base[lines[0]] as Record<string, unknown>[])[0], [field]: value }] });
        counts.mass_assignment++;
        if (res.status !== 400 || res.body?.error?.code !== 'unknown_field') wrong.push(`mass assignment ${lines[0]}[0].${field}: ${r.method} ${r.path} -> ${res.status}`);
      }
    }
  }
  const promoted = `${uniq('authz-role')}@example.com`;
  const reg = await api('POST', '/v1/users', { body: { email: promoted, password: 'authz-password-1', role: 'admin' } });
  t.equal(reg.status, 400, 'registering with a role is refused');
  t.equal((await api('POST', '/v1/sessions', { body: { email: promoted, password: 'authz-password-1' } })).status, 401, 'and no such user was created');

  t.same(wrong, [], `${wrong.length} wrong answers`);
  t.same(leaks, [], "no answer to B names A's order, payment, id or email");
  t.equal(await snapshot(w), before, 'orders, payments, the item, both users and the flag are unchanged');
  t.comment(`authz matrix: ${JSON.stringify(counts)} over ${all.length} routes`);
});

t.test('the stream refuses bad tokens and other customers\' orders', async (t) => {
  const owner = await customer();
  const other = await customer();
  const it = await item({ stock: 5 });
  const id = (await order(owner.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0].id as string;
  // The stream is part of the contract: an upgrade refused (404 included) fails here
  // rather than skipping every check below.
  const probe = await connect().catch((err: { status?: number; message?: string }) => {
    t.fail(`an anonymous upgrade of /v1/stream is served (got ${err.status ?? err.message})`);
    return null;
  });
  if (!probe) return;
  probe.close();
  for (const [label, token] of [['revoked', await revokedToken()], ['expired', await expiredToken()], ['garbage', `s0.${'A'.repeat(43)}`]] as const) {
    const refused = await connect({ token }).then(() => null, (err: { status?: number }) => err.status);
    t.equal(refused, 401, `${label} token refused at the upgrade`);
    const s = await connect();
    s.send({ op: 'auth', token });
    const err = await s.next((f) => f.op === 'error');
    t.equal(err.error.type, 'authentication', `${label} token refused by the auth message`);
    t.equal((await s.waitClosed()).code, 4401, 'and the socket closed');
  }
  const stranger = await connect({ token: other.token });
  const anon = await connect();
  t.teardown(() => { stranger.close(); anon.close(); });
  t.same((await stranger.subscribe([`orders/${id}`])).refused, [`orders/${id}`], "another customer's order refused");
  t.same((await anon.subscribe([`orders/${id}`])).refused, [`orders/${id}`], 'no token, no orders');
  // A socket whose session ends stops being that customer.
  const mine = await connect({ token: owner.token });
  t.teardown(() => mine.close());
  t.same((await mine.subscribe([`orders/${id}`])).refused, [], 'the owner may watch it');
  const sizeBefore = mine.frames.length;
  t.equal((await api('DELETE', '/v1/sessions/current', { token: owner.token })).status, 204, 'the owner logs out');
  // The logout may have been served by another worker: the news travels over Redis.
  const ended = await mine.next((f) => f.op === 'unsubscribed', 5000, sizeBefore);
  t.same(ended, { op: 'unsubscribed', topics: [`orders/${id}`], reason: 'session_ended' }, 'the open subscription ends with the session');
  const afterEnd = mine.frames.length;
  t.equal((await api('POST', `/v1/orders/${id}/cancel`, { token: await admin() })).status, 200, 'an admin cancels the order');
  await sleep(500);
  t.same(mine.frames.slice(afterEnd).filter((f) => f.topic === `orders/${id}`), [], 'and its status change no longer reaches the socket');
  const later = (await order((await customer()).token, [{ item_id: it.id, quantity: 1 }])).body.orders[0].id as string;
  const second = (await order(other.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0].id as string;
  t.same((await mine.subscribe([`orders/${later}`, `orders/${second}`])).refused, [`orders/${later}`, `orders/${second}`], 'others\' orders stay refused');
  const own = (await api('GET', `/v1/orders/${id}`, { token: owner.token })).status;
  t.equal(own, 401, 'the logged-out token reads nothing over HTTP');
  const resub = await mine.subscribe([`orders/${id}`]);
  t.same(resub.refused, [`orders/${id}`], 'nor subscribes again over a socket opened before the logout');
});

const SECRET = 'whsec_test';
function sign(body: string, ts = Math.floor(Date.now() / 1000)) {
  return `t=${ts},v1=${createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex')}`;
}
const post = (raw: string, signature: string) => api('POST', '/v1/webhooks/gateway', { raw, headers: { 'content-type': 'application/json', 'gateway-signature': signature } });

t.test('webhooks: replays, late events of another kind and tampered bodies change nothing after success', async (t) => {
  const it = await item({ stock: 5, price_cents: 1234 });
  const c = await customer();
  const o = (await order(c.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0];
  const other = (await order(c.token, [{ item_id: it.id, quantity: 1 }])).body.orders[0];
  const pay = async (orderId: string) => (await api('POST', `/v1/orders/${orderId}/payments`, { token: c.token, body: { method: 'card' }, headers: { 'idempotency-key': uniq('pay') } })).body;
  const p = await pay(o.id);
  const q = await pay(other.id);
  await sim(GATEWAY_URL, 'POST', `/v1/sessions/${p.gateway_session_id}/complete`, { outcome: 'succeeded' });
  const done = await eventually(async () => (await api('GET', `/v1/orders/${o.id}`, { token: c.token })).body.status === 'completed');
  t.ok(done, 'paid and completed through the real webhook');
  const state = async () => JSON.stringify([
    await onShard(shardOf(o.id), 'SELECT account, amount_cents, kind FROM ledger_entries WHERE order_id = ANY($1) ORDER BY id', [[localId(o.id), localId(other.id)]]),
    await onShard(shardOf(o.id), 'SELECT id, status, escrow FROM payments WHERE order_id = ANY($1) ORDER BY id', [[localId(o.id), localId(other.id)]]),
    await onShard(shardOf(o.id), 'SELECT id, status FROM orders WHERE id = ANY($1) ORDER BY id', [[localId(o.id), localId(other.id)]]),
  ]);
  const before = await state();
  const [event] = await onShard(shardOf(p.id), "SELECT event_id FROM gateway_events WHERE payment_id = $1 AND type = 'payment.succeeded'", [localId(p.id)]);
  t.ok(event, 'the real event is recorded');
  const data = { session_id: p.gateway_session_id, merchant_ref: p.id, status: 'succeeded', escrow: 'held', amount_cents: p.amount_cents, currency: 'USD' };
  const raw = (ev: unknown) => JSON.stringify(ev);

  const replay = raw({ id: event.event_id, type: 'payment.succeeded', created: 1, data });
  const r1 = await post(replay, sign(replay));
  t.equal(r1.status, 200, 'a replay of the real event is acknowledged');
  t.equal(r1.body.duplicate, true, 'as a duplicate');
  for (const [type, status] of [['payment.succeeded', 'succeeded'], ['payment.declined', 'declined'], ['payment.expired', 'expired'], ['payment.refunded', 'refunded']]) {
    const late = raw({ id: `evt_${uniq()}`, type, created: 1, data: { ...data, status } });
    t.equal((await post(late, sign(late))).status, 200, `a signed, new ${type} after success is acknowledged`);
  }
  const signed = raw({ id: `evt_${uniq()}`, type: 'payment.succeeded', created: 1, data: { ...data, merchant_ref: q.id } });
  const tampered = signed.replace(`"amount_cents":${p.amount_cents}`, '"amount_cents":1');
  t.equal((await post(tampered, sign(signed))).status, 401, 'a body changed after signing is refused');
  const stolen = raw({ id: `evt_${uniq()}`, type: 'payment.succeeded', created: 1, data: { ...data, merchant_ref: q.id } });
  t.equal((await post(stolen, sign(stolen))).status, 400, "another payment's session cannot pay this one");
  const oldSig = sign(replay, Math.floor(Date.now() / 1000) - 3600);
  t.equal((await post(replay, oldSig)).status, 401, 'a captured signature replayed an hour later is refused');
  const noRef = raw({ id: `evt_${uniq()}`, type: 'payment.succeeded', created: 1, data: { ...data, merchant_ref: 'pa_0zzzzzz' } });
  t.equal((await post(noRef, sign(noRef))).status, 404, 'an unknown payment is 404');
  t.equal(await state(), before, 'ledger, payments and orders unchanged');
  const ledger = await api('GET', '/v1/admin/ledger', { token: await admin() });
  t.equal(ledger.body.balanced, true, 'the ledger balances');
});
