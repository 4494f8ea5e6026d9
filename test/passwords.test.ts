// Passwords are hashed with scrypt at a configured cost (2^17 by default); a login whose
// stored hash is cheaper than that is rehashed at the current cost, and never downgraded.
import t from 'tap';
import { api, customer, onShard, shardOf } from './helpers/api.js';
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
