// NODE_ENV=production refuses to start on the test defaults: secrets that every checkout
// of this repository knows, and a password hash cheaper than the production cost. And any
// invalid variable refuses to start the same way (exit 78, naming it).
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { refusal, startCluster, stop } from './helpers/engine.js';
import { OWN_PORTS } from './setup/env.js';

const SECRETS = ['ADMIN_PASSWORD', 'GATEWAY_API_KEY', 'GATEWAY_WEBHOOK_SECRET', 'PROVIDER_API_KEY'];

/** Starts an engine that must refuse; returns its exit and its stderr line (`engine: ...`). */
async function refused(t: { teardown(fn: () => unknown): void }, overrides: Record<string, string>) {
  const engine = startCluster(OWN_PORTS.productionEngine, { WORKERS: '1', ...overrides });
  t.teardown(() => stop(engine));
  const outcome = await refusal(engine);
  const line = engine.out().split('\n').find((l) => l.startsWith('engine: ')) ?? '';
  return { outcome, line };
}

t.test('production with the secrets unset exits 78 and names every one of them', async (t) => {
  const unset = Object.fromEntries([...SECRETS, 'ADMIN_EMAIL'].map((n) => [n, '']));
  const { outcome, line } = await refused(t, { NODE_ENV: 'production', PASSWORD_SCRYPT_N: '131072', ...unset });
  t.same(outcome, { code: 78 }, 'EX_CONFIG, which systemd does not restart');
  for (const name of [...SECRETS, 'ADMIN_EMAIL']) t.match(line, name, `names ${name}`);
});

t.test('production with the test values given explicitly, or a cheaper password hash, exits 78 naming them', async (t) => {
  const { outcome, line } = await refused(t, {
    NODE_ENV: 'production', ADMIN_EMAIL: 'ops@shop.example', ADMIN_PASSWORD: 'admin-password', GATEWAY_API_KEY: 'gw_test_key',
    GATEWAY_WEBHOOK_SECRET: 'whsec_test', PROVIDER_API_KEY: 'pv_test_key', PASSWORD_SCRYPT_N: '16384',
  });
  t.same(outcome, { code: 78 });
  for (const name of [...SECRETS, 'PASSWORD_SCRYPT_N']) t.match(line, name, `names ${name}`);
  t.notMatch(line, 'ADMIN_EMAIL', 'a real admin email passes');
});

t.test('a password cost that is not a power of two is refused anywhere', async (t) => {
  const { outcome, line } = await refused(t, { PASSWORD_SCRYPT_N: '100000' });
  t.same(outcome, { code: 78 });
  t.match(line, /PASSWORD_SCRYPT_N=100000/);
});

t.test('LOG_LEVEL is validated like every other variable', async (t) => {
  t.equal(loadConfig({}).logLevel, 'info', 'info by default');
  t.equal(loadConfig({ LOG_LEVEL: 'warn' }).logLevel, 'warn');
  t.throws(() => loadConfig({ LOG_LEVEL: 'WARN' }), { message: /^LOG_LEVEL=WARN is invalid/ }, 'levels are lower-case, as logged');
  t.ok((() => { try { loadConfig({ LOG_LEVEL: 'trace' }); } catch (err) { return err instanceof ConfigError; } return false; })(), 'a ConfigError, as every invalid variable');
  const { outcome, line } = await refused(t, { LOG_LEVEL: 'verbose' });
  t.same(outcome, { code: 78 }, 'a level that does not exist refuses to start, not a silent fallback');
  t.match(line, 'LOG_LEVEL=verbose is invalid: expected one of debug, info, warn, error');
});
