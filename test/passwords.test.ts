// Passwords are hashed with scrypt at a configured cost (2^17 by default); a login whose
// stored hash is cheaper than that is rehashed at the current cost, and never downgraded.
// Hashes run a few at a time per process, so they never fill libuv's threads, which new
// database connections need for their SCRAM handshake.
import { webcrypto } from 'node:crypto';
import t from 'tap';
import { hashSlots } from '../src/accounts/hash-slots.js';
import { hashPassword } from '../src/accounts/password.js';
import { loadConfig } from '../src/config.js';
import { api, customer, onShard, shardOf, uniq } from './helpers/api.js';
import { startReady, stop } from './helpers/engine.js';
import { OWN_PORTS } from './setup/env.js';

const loginAt = (base: string | undefined, email: string, password: string) => api('POST', '/v1/sessions', { base, body: { email, password } });

t.test('a login on an engine of a higher cost rehashes the stored password; the password still works everywhere', async (t) => {
  const c = await customer(); // the suite's engine hashes at 2^14 (test/setup/env.ts)
  const storedHash = async () => (await onShard(shardOf(c.id), 'SELECT password_hash FROM users WHERE email = $1', [c.email]))[0].password_hash as string;
  t.match(await storedHash(), /^scrypt\$16384\$8\$1\$/, 'registered at the suite\'s cost');

  // The default cost: the suite's override is removed, so this engine runs at 2^17 (~128 MiB a hash).
  const engine = await startReady(OWN_PORTS.rehashEngine, { PASSWORD_SCRYPT_N: '', WORKERS: '1' });
  t.teardown(() => stop(engine));
  t.equal((await loginAt(engine.url, c.email, 'not-the-password')).status, 401, 'a wrong password changes nothing');
  t.match(await storedHash(), /^scrypt\$16384\$/);
  t.equal((await loginAt(engine.url, c.email, c.password)).status, 201);
  const upgraded = await storedHash();
  t.match(upgraded, /^scrypt\$131072\$8\$1\$/, 'stored again at 2^17');

  t.equal((await loginAt(engine.url, c.email, c.password)).status, 201, 'the same password opens the new hash');
  t.equal((await loginAt(undefined, c.email, c.password)).status, 201, 'also on an engine of a lower cost');
  t.equal(await storedHash(), upgraded, 'which never downgrades it');
  t.equal((await loginAt(engine.url, c.email, 'not-the-password')).status, 401);
});

/** What pg's SCRAM handshake runs on libuv's pool for each new connection: PBKDF2, 4096 rounds. */
async function scramKeyDerivation(): Promise<void> {
  const key = await webcrypto.subtle.importKey('raw', new TextEncoder().encode('db-password'), 'PBKDF2', false, ['deriveBits']);
  await webcrypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(16), iterations: 4096 }, key, 256);
}

t.test('a burst of password hashes leaves libuv threads free: a new connection\'s SCRAM work does not queue behind them', async (t) => {
  let hashed = 0;
  const burst = Array.from({ length: 12 }, () => hashPassword('burst-password', 2 ** 15).then(() => { hashed++; }));
  await scramKeyDerivation();
  const hashedMeanwhile = hashed;
  await Promise.all(burst);
  t.ok(hashedMeanwhile <= 2, `the key derivation finished while ${hashedMeanwhile} of 12 hashes had (queued behind them, at least 8 would have)`);
  t.ok(hashSlots.peak <= 2, `at most 2 hashes ran at once (${hashSlots.peak})`);
  t.equal(hashSlots.queued, 0, 'none left waiting');
});

t.test('past PASSWORD_HASH_QUEUE_MAX a hash is refused at once (503 overloaded), and the slots come back', async (t) => {
  hashSlots.configure({ concurrency: 1, queueMax: 2 });
  t.teardown(() => hashSlots.configure({ concurrency: 2, queueMax: 64 }));
  const results = await Promise.allSettled(Array.from({ length: 5 }, () => hashPassword('queued-password', 2 ** 12)));
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 3, 'one ran and two waited');
  t.match(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason),
    [{ code: 'overloaded', retryAfterS: 1 }, { code: 'overloaded', retryAfterS: 1 }], 'the other two were refused, with Retry-After');
  t.equal(hashSlots.queued, 0);
  t.match(await hashPassword('after-the-burst', 2 ** 12), /^scrypt\$4096\$/, 'the next hash runs');
});

t.test('PASSWORD_HASH_CONCURRENCY stays below libuv\'s threads', async (t) => {
  t.same(loadConfig({}).passwordHashing, { concurrency: 2, queueMax: 64 });
  t.throws(() => loadConfig({ PASSWORD_HASH_CONCURRENCY: '4' }), /fewer than UV_THREADPOOL_SIZE \(4\)/);
  t.same(loadConfig({ PASSWORD_HASH_CONCURRENCY: '4', UV_THREADPOOL_SIZE: '8' }).passwordHashing, { concurrency: 4, queueMax: 64 });
  t.same(loadConfig({ UV_THREADPOOL_SIZE: '2' }).passwordHashing.concurrency, 1, 'a smaller pool lowers the default');
  t.throws(() => loadConfig({ UV_THREADPOOL_SIZE: '1' }), /UV_THREADPOOL_SIZE=1 is invalid/, 'one thread leaves none to share');
});

t.test('a registration burst past the queue: refused ones are 503 with Retry-After and leave no account; counted as shed', async (t) => {
  const engine = await startReady(OWN_PORTS.hashSlotsEngine, {
    PASSWORD_SCRYPT_N: '', PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE_MAX: '1', WORKERS: '1',
  });
  t.teardown(() => stop(engine));
  const emails = Array.from({ length: 6 }, () => `${uniq('burst')}@example.com`);
  const register = (email: string) => api('POST', '/v1/users', { base: engine.url, body: { email, password: 'long-enough-pw' } });
  const answers = await Promise.all(emails.map(register));
  const refused = emails.filter((_, i) => answers[i]!.status === 503);
  t.equal(answers.filter((a) => a.status === 201).length + refused.length, 6, 'each got 201 or 503');
  t.ok(refused.length >= 1, `${refused.length} of 6 refused (one hashing at 2^17, one waiting)`);
  for (const a of answers.filter((x) => x.status === 503)) {
    t.match([a.body.error, a.headers.get('retry-after')], [{ type: 'unavailable', code: 'overloaded' }, '1']);
  }
  const metrics = String((await api('GET', '/metrics', { base: engine.url })).body);
  const shed = Number(/^bf_admission_shed_total\{reason="password_queue_full"\} (\d+)/m.exec(metrics)?.[1]);
  t.equal(shed, refused.length, 'bf_admission_shed_total{reason="password_queue_full"} counts them');
  for (const email of refused) t.equal((await register(email)).status, 201, 'a refused email was never registered: it registers now');
});
