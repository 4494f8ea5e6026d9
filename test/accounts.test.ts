import { createHash } from 'node:crypto';
import t from 'tap';
import { sleep } from '../tools/lib/wait.js';
import { admin, api, customer, onShard, shardOfToken, uniq } from './helpers/api.js';
import { refusal, startCluster, stop } from './helpers/engine.js';
import { OWN_PORTS } from './setup/env.js';

t.test('register, log in, use the token, log out, and the token stops working', async (t) => {
  const email = `${uniq('u')}@example.com`;
  const reg = await api('POST', '/v1/users', { body: { email, password: 'long-enough-pw', name: 'Ann' } });
  t.equal(reg.status, 201);
  t.match(reg.body, { id: /^us_[0-9a-z][0-9a-f]{32}$/, email });
  const login = await api('POST', '/v1/sessions', { body: { email, password: 'long-enough-pw' } });
  t.equal(login.status, 201);
  t.equal(login.body.role, 'customer');
  const token = login.body.token;
  t.equal((await api('DELETE', '/v1/sessions/current', { token })).status, 204);
  const after = await api('DELETE', '/v1/sessions/current', { token });
  t.equal(after.status, 401);
  t.equal(after.body.error.type, 'authentication');
});

t.test('wrong password and unknown email are the same 401', async (t) => {
  const c = await customer();
  const wrong = await api('POST', '/v1/sessions', { body: { email: c.email, password: 'not-the-password' } });
  const unknown = await api('POST', '/v1/sessions', { body: { email: `${uniq('nobody')}@example.com`, password: 'whatever-pw' } });
  t.equal(wrong.status, 401);
  t.equal(unknown.status, 401);
  t.same(wrong.body, unknown.body);
});

t.test('an email registers once across all shards', async (t) => {
  const email = `${uniq('dup')}@example.com`;
  t.equal((await api('POST', '/v1/users', { body: { email, password: 'long-enough-pw' } })).status, 201);
  const again = await api('POST', '/v1/users', { body: { email: email.toUpperCase(), password: 'long-enough-pw' } });
  t.equal(again.status, 409);
  t.equal(again.body.error.code, 'email_taken');
});

t.test('a customer on an admin route gets 403; no token gets 401', async (t) => {
  const c = await customer();
  const asCustomer = await api('POST', '/v1/categories', { token: c.token, body: { name: 'x' } });
  t.equal(asCustomer.status, 403);
  t.equal(asCustomer.body.error.type, 'forbidden');
  t.equal((await api('POST', '/v1/categories', { body: { name: 'x' } })).status, 401);
  t.equal((await api('POST', '/v1/categories', { token: 's0.' + 'A'.repeat(43), body: { name: 'x' } })).status, 401);
  t.ok(await admin());
});

/** The shard a token names (`s<shard>.<secret>`) and the hash its session row is stored under. */
function sessionKey(token: string): { shard: number; hash: Buffer } {
  return { shard: shardOfToken(token), hash: createHash('sha256').update(token).digest() };
}

t.test('an expired session token is refused with 401, also by workers that cached it', async (t) => {
  const c = await customer();
  const probe = () => api('POST', '/v1/categories', { token: c.token, body: { name: 'never-created' } });
  const { shard, hash } = sessionKey(c.token);
  // The session ends 1.5 s from now; using it first puts it in the workers' token caches.
  const rows = await onShard(shard, `UPDATE sessions SET expires_at = now() + interval '1500 milliseconds' WHERE token_hash = $1 RETURNING expires_at`, [hash]);
  t.equal(rows.length, 1, 'the session row is on the shard the token names');
  for (let i = 0; i < 4; i++) t.equal((await probe()).status, 403, 'while valid, the token authenticates (a customer is forbidden here)');
  await sleep(Math.max(0, new Date(rows[0].expires_at).getTime() - Date.now()) + 100);
  const expired = await probe();
  t.equal(expired.status, 401);
  t.match(expired.body.error, { type: 'authentication', code: 'unauthenticated' });
  t.equal((await api('DELETE', '/v1/sessions/current', { token: c.token })).status, 401, 'an expired token cannot log out either');
});

t.test('a token with its shard prefix changed or out of range is 401, never 500', async (t) => {
  const c = await customer();
  const { shard } = sessionKey(c.token);
  const secret = c.token.slice(3);
  const forged = [
    ...[0, 1, 2].filter((s) => s !== shard).map((s) => `s${s}.${secret}`),
    `s9.${secret}`, `sz.${secret}`, `s${shard}.${secret.slice(1)}`, `s${shard}.${secret}x`, `${c.token}%`, 'Bearer', '',
  ];
  for (const token of forged) {
    const res = await api('POST', '/v1/categories', { headers: { authorization: `Bearer ${token}` }, body: { name: 'never-created' } });
    t.equal(res.status, 401, `token ${JSON.stringify(token.slice(0, 8))}... is 401`);
  }
  t.equal((await api('POST', '/v1/categories', { token: c.token, body: { name: 'never-created' } })).status, 403, 'the real token still works');
});

t.test('logout answers a bare 204: no body, no bogus Content-Length to hang a keep-alive client', async (t) => {
  const c = await customer();
  const res = await api('DELETE', '/v1/sessions/current', { token: c.token });
  t.equal(res.status, 204);
  t.ok([null, '0'].includes(res.headers.get('content-length')), `content-length is ${res.headers.get('content-length')}`);
  t.equal(res.body, null);
  t.equal((await api('GET', '/healthz')).status, 200, 'the next request on the pool is answered');
});

t.test('an account registered with the admin email first is never promoted: the engine refuses to start', async (t) => {
  const squatter = await customer();
  const engine = startCluster(OWN_PORTS.adminClaimEngine, { ADMIN_EMAIL: squatter.email, ADMIN_PASSWORD: 'the-operators-password', WORKERS: '1' });
  t.teardown(() => stop(engine));
  const outcome = await refusal(engine);
  t.not(outcome, 'ready', 'it never serves');
  t.ok(typeof outcome === 'object' && outcome.code !== 0 && outcome.code !== null, `it exits non-zero (${JSON.stringify(outcome)})`);
  const refused = engine.out().split('\n').find((l) => l.startsWith('engine: ')) ?? '';
  t.match(refused, /ADMIN_EMAIL/, 'and says why on stderr, naming ADMIN_EMAIL');
  t.ok(refused.includes(squatter.email), refused);
  const again = await api('POST', '/v1/sessions', { body: { email: squatter.email, password: squatter.password } });
  t.equal(again.status, 201);
  t.equal(again.body.role, 'customer', 'the account is still a customer');
  t.equal((await api('POST', '/v1/categories', { token: again.body.token, body: { name: 'x' } })).status, 403, 'with no admin rights');
  t.equal((await api('POST', '/v1/sessions', { body: { email: squatter.email, password: 'the-operators-password' } })).status, 401,
    'and the configured admin password opens nothing');
});
