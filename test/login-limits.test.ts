// Brute force: failed logins are limited per account and per address, registrations per
// address; successes are not counted. A burst sent at once meets the same limits as the
// same attempts sent one at a time, with Redis and, per worker, without it.
import { randomInt } from 'node:crypto';
import t from 'tap';
import { waitForUrl } from '../tools/lib/wait.js';
import { api, customer, uniq, type Res } from './helpers/api.js';
import { startCluster, startReady, stop, type Spawned } from './helpers/engine.js';
import { OWN_PORTS } from './setup/env.js';

/** A client address of this run only (the own engines trust X-Forwarded-For), so reruns start clean. */
const address = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

function loginAs(email: string, password: string, opts: { base?: string; from?: string } = {}): Promise<Res> {
  return api('POST', '/v1/sessions', { base: opts.base, body: { email, password }, headers: opts.from ? { 'x-forwarded-for': opts.from } : {} });
}

function registerAs(opts: { base?: string; from?: string } = {}): Promise<Res> {
  const body = { email: `${uniq('reg')}@example.com`, password: 'long-enough-pw' };
  return api('POST', '/v1/users', { base: opts.base, body, headers: opts.from ? { 'x-forwarded-for': opts.from } : {} });
}

function statuses(results: Res[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const r of results) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
}

/**
 * n wrong passwords at once; the right one follows as soon as the first of them is
 * refused 429, while the rest are still in flight. Not a fixed delay, nor the first
 * answer of any kind: on a loaded machine one worker may check its few wrong ones and
 * answer 401 before the other has reserved its share, and the right one would then
 * take a slot a wrong one still on its way would have taken. A 429 means every slot
 * was taken then; failures keep theirs, so none frees before the right one arrives.
 */
async function burst(email: string, password: string, n: number, opts: { base?: string; from?: (i: number) => string } = {}) {
  const wrong = Array.from({ length: n }, (_, i) => loginAs(email, `wrong-${i}-pw`, { base: opts.base, from: opts.from?.(i) }));
  await new Promise<void>((resolve) => {
    for (const w of wrong) void w.then((r) => { if (r.status === 429) resolve(); }, () => undefined);
    void Promise.allSettled(wrong).then(() => resolve()); // none refused: the statuses tell
  });
  const right = await loginAs(email, password, { base: opts.base, from: opts.from?.(n) });
  return { wrong: await Promise.all(wrong), right };
}

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

t.test('successful logins are not counted: thirty of them, then the account still has its ten tries', async (t) => {
  // Five at a time: every attempt in flight holds one of the account's ten slots until it is decided.
  const c = await customer();
  for (let round = 0; round < 6; round++) {
    const results = await Promise.all(Array.from({ length: 5 }, () => loginAs(c.email, c.password)));
    t.same(statuses(results), { 201: 5 }, `round ${round + 1}`);
  }
  for (let i = 0; i < 9; i++) t.equal((await loginAs(c.email, `wrong-${i}-pw`)).status, 401);
  t.equal((await loginAs(c.email, c.password)).status, 201, 'nine failures leave the right password working');
});

t.test('a burst of wrong passwords sent at once meets the account limit, and the right one sent with them is refused', async (t) => {
  const victim = await customer();
  const { wrong, right } = await burst(victim.email, victim.password, 60);
  t.same(statuses(wrong), { 401: 10, 429: 50 }, 'exactly ten passwords were checked, as if sent one at a time');
  t.equal(right.status, 429, 'the right password past the limit is not even checked');
  t.ok(Number(right.headers.get('retry-after')) > 0);
  t.equal((await loginAs(victim.email, victim.password)).status, 429, 'and the account stays locked');
});

t.test('on an engine with address limits of 5 (its own Redis keyspace, trusting X-Forwarded-For)', async (t) => {
  const port = OWN_PORTS.loginLimitsEngine;
  const engine = await startReady(port, {
    REDIS_URLS: 'redis://127.0.0.1:6391/7', REDIS_NAMESPACE: `t${port}:`, TRUST_PROXY: 'true',
    LOGIN_MAX_FAILS_ADDRESS: '5', REGISTER_MAX_ADDRESS: '5', WORKERS: '2',
  });
  t.teardown(() => stop(engine));
  const base = engine.url;

  t.test('failures from one address across many accounts hit the address limit', async (t) => {
    const from = address();
    for (let i = 0; i < 5; i++) {
      t.equal((await loginAs(`${uniq('nobody')}@example.com`, 'whatever-pw', { base, from })).status, 401);
    }
    const blocked = await loginAs(`${uniq('other')}@example.com`, 'whatever-pw', { base, from });
    t.equal(blocked.status, 429);
    t.ok(Number(blocked.headers.get('retry-after')) > 0);
    t.equal((await loginAs(`${uniq('other')}@example.com`, 'whatever-pw', { base, from: address() })).status, 401, 'another address is not blocked');
  });

  t.test('thirty failures from one address at once: five are checked, two workers or not', async (t) => {
    const from = address();
    const results = await Promise.all(Array.from({ length: 30 }, () => loginAs(`${uniq('nobody')}@example.com`, 'whatever-pw', { base, from })));
    t.same(statuses(results), { 401: 5, 429: 25 });
  });

  t.test('twenty registrations from one address at once: five accounts, the rest 429 + Retry-After', async (t) => {
    const from = address();
    const results = await Promise.all(Array.from({ length: 20 }, () => registerAs({ base, from })));
    t.same(statuses(results), { 201: 5, 429: 15 });
    const refused = results.find((r) => r.status === 429)!;
    t.equal(refused.body.error.type, 'rate_limited');
    t.ok(Number(refused.headers.get('retry-after')) > 0);
    t.equal((await registerAs({ base, from })).status, 429, 'one more, later, is refused too');
    t.equal((await registerAs({ base, from: address() })).status, 201, 'another address still registers');
  });
});

t.test('with Redis unreachable, each worker meets the limits just as atomically', async (t) => {
  // Nothing listens on the deadRedis port: every limit falls back to the worker's own count.
  const engine: Spawned = startCluster(OWN_PORTS.loginLimitsNoRedisEngine, {
    REDIS_URLS: `redis://127.0.0.1:${OWN_PORTS.deadRedis}`, TRUST_PROXY: 'true',
    LOGIN_MAX_FAILS_ADDRESS: '5', REGISTER_MAX_ADDRESS: '5', WORKERS: '1',
  });
  t.teardown(() => stop(engine));
  await waitForUrl(`${engine.url}/healthz`, 30_000); // not /readyz: that answers 503 without Redis
  const base = engine.url;

  const victim = await customer(); // on the suite's engine: same databases
  // One address per attempt, so only the account limit applies.
  const { wrong, right } = await burst(victim.email, victim.password, 40, { base, from: () => address() });
  t.same(statuses(wrong), { 401: 10, 429: 30 }, 'the account: ten checked');
  t.equal(right.status, 429);

  const from = address();
  const failures = await Promise.all(Array.from({ length: 20 }, () => loginAs(`${uniq('nobody')}@example.com`, 'whatever-pw', { base, from })));
  t.same(statuses(failures), { 401: 5, 429: 15 }, 'an address: five checked');

  const regFrom = address();
  const regs = await Promise.all(Array.from({ length: 12 }, () => registerAs({ base, from: regFrom })));
  t.same(statuses(regs), { 201: 5, 429: 7 }, 'registrations from an address: five');
});
