import { ROOT } from '../../src/paths.js';
// Where the suite's shared processes listen. Test files read these; before.ts starts them.
export const TEST_PORT = Number(process.env.TEST_ENGINE_PORT ?? 18080);
export const GATEWAY_PORT = Number(process.env.TEST_GATEWAY_PORT ?? 18090);
export const PROVIDER_PORT = Number(process.env.TEST_PROVIDER_PORT ?? 18091);
/**
 * Ports of the engines and servers single test files start for themselves, in one
 * table so that two files running at once never share one (uWS listens with
 * SO_REUSEPORT: a second engine on a taken port silently splits the traffic).
 */
export const OWN_PORTS = {
  cacheEngine: TEST_PORT + 3, redisDownEngine: TEST_PORT + 4, redisDownRedis: TEST_PORT + 5,
  refusedEngine: TEST_PORT + 100, respawnEngine: TEST_PORT + 101, drainEngine: TEST_PORT + 102,
  outboxEngine: TEST_PORT + 300, flagsEngine: TEST_PORT + 310, loginLimitsEngine: TEST_PORT + 320,
  loginLimitsNoRedisEngine: TEST_PORT + 321, deadRedis: TEST_PORT + 322, adminClaimEngine: TEST_PORT + 323,
  productionEngine: TEST_PORT + 324, rehashEngine: TEST_PORT + 325, hashSlotsEngine: TEST_PORT + 326,
  faultsEngine: TEST_PORT + 330, faultsGateway: TEST_PORT + 331, faultsProvider: TEST_PORT + 332,
  admissionEngine: TEST_PORT + 340, readyzEngine: TEST_PORT + 341, bulkheadsEngine: TEST_PORT + 342, roundTripsEngine: TEST_PORT + 350,
  releaseEngine: TEST_PORT + 360, releaseGateway: TEST_PORT + 361, releaseProvider: TEST_PORT + 362,
  uwsNode24Engine: TEST_PORT + 370, uwsFallbackEngine: TEST_PORT + 371, uwsNativeEngine: TEST_PORT + 372,
  metricsEngine: TEST_PORT + 380,
  // A scratch Postgres primary and its standby (not the stack's shards), and the engine that follows them.
  failoverEngine: TEST_PORT + 390, failoverPrimary: TEST_PORT + 391, failoverStandby: TEST_PORT + 392,
  // Another scratch pair, for the idempotency keys a failover must give back (no engine of its own).
  idemReleasePrimary: TEST_PORT + 393, idemReleaseStandby: TEST_PORT + 394,
} as const;
export const ENGINE_URL = `http://127.0.0.1:${TEST_PORT}`;
export const GATEWAY_URL = `http://127.0.0.1:${GATEWAY_PORT}`;
export const PROVIDER_URL = `http://127.0.0.1:${PROVIDER_PORT}`;
export const NOTICES_FILE = `${ROOT}/.stack/notices-${TEST_PORT}.jsonl`;
export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'admin-password';

export function engineEnv(base: NodeJS.ProcessEnv, overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...base,
    PORT: String(TEST_PORT), WORKERS: '2', ADMIN_EMAIL, ADMIN_PASSWORD, LOG_LEVEL: 'warn',
    GATEWAY_URL: `http://127.0.0.1:${GATEWAY_PORT}`, GATEWAY_PORT: String(GATEWAY_PORT),
    PROVIDER_URL: `http://127.0.0.1:${PROVIDER_PORT}`, PROVIDER_PORT: String(PROVIDER_PORT),
    // Crons at test speed: lost webhooks are polled after 2 s, unclaimed money refunded after 1 s.
    PAYMENT_RECONCILE_AFTER_S: '2', UNCLAIMED_REFUND_AFTER_S: '1', STUCK_ORDER_AFTER_S: '2', PAYMENTS_CRON_EVERY_MS: '500',
    PROVIDER_VERIFY_BACKOFF_MS: '50', OUTBOX_EVERY_MS: '200', OUTBOX_LEASE_S: '2', NOTIFY_FILE: NOTICES_FILE, RETENTION_EVERY_MS: '500',
    // Every test logs in and registers from 127.0.0.1; the address limits are proven on
    // their own engine (login-limits.test.ts).
    LOGIN_MAX_FAILS_ADDRESS: '1000000', REGISTER_MAX_ADDRESS: '1000000',
    // The suite registers hundreds of customers on two shared cores: scrypt at the
    // production cost (2^17, ~128 MiB and a third of a second each) would dominate its
    // run time. The production cost itself is proven in passwords.test.ts.
    PASSWORD_SCRYPT_N: '16384',
    // The shard figures of /metrics (outbox backlog, hold-expiry lag) at test speed.
    METRICS_SAMPLE_MS: '1000',
    ...overrides,
  };
}
