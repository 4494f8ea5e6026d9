import t from 'tap';
import { admin, api, customer, item, login, onShard, order, shardOf, uuidOf } from './helpers/api.js';

const me = (token: string) => api('GET', '/v1/users/me', { token });
const patch = (token: string, body: unknown) => api('PATCH', '/v1/users/me', { token, body });
const address = { line1: '1 Main Street', line2: 'Flat 2', city: 'Springfield', postal_code: 'SP1 2AB', country: 'GB' };

t.test('a customer reads and changes their profile; bad values are 400 and change nothing', async (t) => {
  const c = await customer();
  const first = await me(c.token);
  t.equal(first.status, 200);
  t.match(first.body, { id: c.id, email: c.email, name: null, phone: null, address: null, role: 'customer' });
  const changed = await patch(c.token, { name: 'Ada Lovelace', phone: '+447911123456', address });
  t.equal(changed.status, 200);
  t.match(changed.body, { name: 'Ada Lovelace', phone: '+447911123456', address });
  t.same((await me(c.token)).body.address, address, 'stored');
  const bad: [unknown, string][] = [
    [{ phone: '07911123456' }, 'phone'], [{ phone: '+0123456789' }, 'phone'], [{ phone: '+12 345' }, 'phone'], [{ phone: '+1234' }, 'phone'],
    [{ address: { ...address, country: 'gb' } }, 'address'], [{ address: { ...address, country: 'GBR' } }, 'address'],
    [{ address: { line1: 'x', postal_code: '12345', country: 'US' } }, 'address'], [{ address: { ...address, planet: 'Mars' } }, 'address'],
    [{ address: { ...address, postal_code: '' } }, 'address'], [{ name: '' }, 'name'], [{ email: 'x@example.com' }, 'email'],
    [{ role: 'admin' }, 'role'],
  ];
  for (const [body, field] of bad) {
    const res = await patch(c.token, body);
    t.equal(res.status, 400, JSON.stringify(body));
    t.match(res.body.error.field, field);
  }
  t.match((await me(c.token)).body, { name: 'Ada Lovelace', phone: '+447911123456', address, role: 'customer' }, 'nothing changed');
  const cleared = await patch(c.token, { phone: null, address: null });
  t.match(cleared.body, { name: 'Ada Lovelace', phone: null, address: null }, 'null clears; absent fields stay');
  t.equal((await me('s0.not-a-token')).status, 401);
});

t.test('changing the password revokes the other sessions and keeps this one', async (t) => {
  const c = await customer();
  const other = await login(c.email, c.password);
  const wrong = await api('POST', '/v1/users/me/password', { token: c.token, body: { current_password: 'not-my-password', new_password: 'a-new-long-password' } });
  t.equal(wrong.status, 403);
  t.equal(wrong.body.error.code, 'wrong_password');
  t.equal((await me(other)).status, 200, 'a wrong current password changes nothing');
  const short = await api('POST', '/v1/users/me/password', { token: c.token, body: { current_password: c.password, new_password: 'short' } });
  t.equal(short.status, 400);
  const ok = await api('POST', '/v1/users/me/password', { token: c.token, body: { current_password: c.password, new_password: 'a-new-long-password' } });
  t.equal(ok.status, 200);
  t.equal(ok.body.revoked_sessions, 1);
  t.equal((await me(c.token)).status, 200, 'this session stays');
  t.equal((await me(other)).status, 401, 'the other one is revoked');
  t.equal((await api('POST', '/v1/sessions', { body: { email: c.email, password: c.password } })).status, 401, 'the old password no longer logs in');
  t.equal((await api('POST', '/v1/sessions', { body: { email: c.email, password: 'a-new-long-password' } })).status, 201);
});

t.test('deleting an account anonymizes it, revokes its sessions, keeps its orders, and frees the email', async (t) => {
  const it = await item({ stock: 5 });
  const c = await customer();
  const other = await login(c.email, c.password);
  await patch(c.token, { name: 'Grace Hopper', phone: '+15551234567', address: { ...address, country: 'US' } });
  const made = await order(c.token, [{ item_id: it.id, quantity: 1 }]);
  const orderId = made.body.orders[0].id;
  await api('POST', '/v1/cart/items', { token: c.token, body: { item_id: it.id, quantity: 2 } });

  const del = await api('DELETE', '/v1/users/me', { token: c.token });
  t.equal(del.status, 204);
  t.equal((await me(c.token)).status, 401, 'this session is revoked');
  t.equal((await me(other)).status, 401, 'every session is revoked');
  t.equal((await api('POST', '/v1/sessions', { body: { email: c.email, password: c.password } })).status, 401, 'the old password no longer logs in');

  const uuid = uuidOf(c.id);
  const [row] = await onShard(shardOf(c.id), 'SELECT email, name, phone, address, deleted_at FROM users WHERE id = $1', [uuid]);
  t.match(row, { email: `deleted:${uuid}`, name: null, phone: null, address: null });
  t.ok(row.deleted_at, 'marked deleted');
  const cart = await onShard(shardOf(c.id), 'SELECT count(*)::int AS n FROM cart_lines WHERE customer_id = $1', [uuid]);
  t.equal(cart[0].n, 0, 'the cart is gone');

  const seen = await api('GET', `/v1/orders/${orderId}`, { token: await admin() });
  t.equal(seen.status, 200, 'the admin still reads the order');
  t.equal(seen.body.customer_id, c.id);

  const again = await api('POST', '/v1/users', { body: { email: c.email, password: 'another-long-password' } });
  t.equal(again.status, 201, 'the email can register again');
  t.not(again.body.id, c.id, 'as a new user');
  const token = await login(c.email, 'another-long-password');
  t.same((await api('GET', '/v1/orders', { token })).body.data, [], 'who sees none of the old orders');
  t.equal((await api('DELETE', '/v1/users/me', { token: await admin() })).status, 403, 'an admin cannot delete itself here');
});
