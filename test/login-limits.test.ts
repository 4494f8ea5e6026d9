// Brute force: failed logins are limited per account and per address; successes are not.
import { Redis } from 'ioredis';
import t from 'tap';
import { api, customer, uniq } from './helpers/api.js';
import { startReady, stop } from './helpers/engine.js';
import { OWN_PORTS } from './setup/env.js';

t.test('ten failures lock the account with 429 + Retry-After; other accounts still log in', async (t) => {
  const victim = await customer();
  const bystander = await customer();
  for (let i = 0; i < 10; i++) {
    t.equal((await api('POST', '/v1/sessions', { body: { email: victim.email, password: `wrong-${i}-pw` } })).status, 401);
  }
  const locked = await api('POST', '/v1/sessions', { body: { email: victim.email, password: victim.password } });
  t.equal(locked.status, 429, 'even the right password waits');
  t.equal(locked.body.error.type, 'rate_limited');
  t.ok(Number(locked.headers.get('retry-after')) > 0, 'Retry-After says when');
  t.equal((await api('POST', '/v1/sessions', { body: { email: bystander.email, password: bystander.password } })).status, 201);
});

t.test('successful logins are never throttled', async (t) => {
  const c = await customer();
  const results = await Promise.all(Array.from({ length: 30 }, () => api('POST', '/v1/sessions', { body: { email: c.email, password: c.password } })));
  t.ok(results.every((r) => r.status === 201));
});

t.test('failures from one address across many accounts hit the address limit', async (t) => {
  // Its own engine and Redis keyspace: the address here is 127.0.0.1, shared by the suite.
  const port = OWN_PORTS.loginLimitsEngine;
  const scratch = new Redis('redis://127.0.0.1:6391/7');
  await scratch.flushdb();
  scratch.disconnect();
  const engine = await startReady(port, { REDIS_URLS: 'redis://127.0.0.1:6391/7', LOGIN_MAX_FAILS_ADDRESS: '5', WORKERS: '1' });
  t.teardown(() => stop(engine));
  for (let i = 0; i < 5; i++) {
    const res = await api('POST', '/v1/sessions', { base: engine.url, body: { email: `${uniq('nobody')}@example.com`, password: 'whatever-pw' } });
    t.equal(res.status, 401);
  }
  const blocked = await api('POST', '/v1/sessions', { base: engine.url, body: { email: `${uniq('other')}@example.com`, password: 'whatever-pw' } });
  t.equal(blocked.status, 429);
  t.ok(Number(blocked.headers.get('retry-after')) > 0);
});
