// Configuration comes from environment variables, is validated once at start, and
// every default runs the local stack. A bad value fails start with the variable's name.
import os from 'node:os';
import { parseShardUrl, ShardUrlError, splitShardList } from './shard/hosts.js';
import { LOG_LEVELS } from './log.js';

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, def: string): string {
  const v = env[name];
  return v === undefined || v === '' ? def : v;
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${raw} is invalid: expected an integer in ${min}..${max}`);
  }
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name}=${raw} is invalid: expected true or false`);
}

function oneOf<T extends string>(env: Env, name: string, def: T, allowed: readonly T[]): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name}=${raw} is invalid: expected one of ${allowed.join(', ')}`);
  return raw as T;
}

function urls(env: Env, name: string, def: string, scheme: RegExp, split = (raw: string) => raw.split(',').map((s) => s.trim()).filter(Boolean)): string[] {
  const list = split(str(env, name, def));
  for (const u of list) {
    if (!scheme.test(u)) throw new ConfigError(`${name} has an invalid URL: ${u}`);
  }
  if (list.length === 0) throw new ConfigError(`${name} must list at least one URL`);
  return list;
}

function namespace(env: Env, name: string): string {
  const v = str(env, name, '');
  if (!/^[A-Za-z0-9_.:-]{0,40}$/.test(v)) throw new ConfigError(`${name}=${v} is invalid: expected up to 40 of A-Z a-z 0-9 _ . : -`);
  return v;
}

/** `CATEGORY_SHARD_MAP=12:0,15:2` moves categories away from the default `id mod N`. */
function shardOverrides(env: Env, shardCount: number): Map<number, number> {
  const map = new Map<number, number>();
  const raw = str(env, 'CATEGORY_SHARD_MAP', '');
  for (const pair of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+):(\d+)$/.exec(pair);
    const shard = m ? Number(m[2]) : -1;
    if (!m || shard >= shardCount) {
      throw new ConfigError(`CATEGORY_SHARD_MAP entry "${pair}" is invalid: expected <category_id>:<shard 0..${shardCount - 1}>`);
    }
    map.set(Number(m[1]), shard);
  }
  return map;
}

/**
 * Defaults that run the local stack and its simulators. They are published with the code,
 * so none of them is a secret: production refuses every one (see refuseTestDefaults).
 */
const SHIPPED = {
  ADMIN_EMAIL: 'admin@example.com', ADMIN_PASSWORD: 'admin-password',
  GATEWAY_API_KEY: 'gw_test_key', GATEWAY_WEBHOOK_SECRET: 'whsec_test', PROVIDER_API_KEY: 'pv_test_key',
} as const;

/** scrypt's N (OWASP: 2^17 with r=8, p=1; ~128 MiB and a few hundred ms per hash). */
export const SCRYPT_N_DEFAULT = 2 ** 17;
/** Below this, production refuses to start: cheaper hashes are for test runs only. */
export const SCRYPT_N_PRODUCTION_MIN = 2 ** 17;

function scryptN(env: Env): number {
  const n = int(env, 'PASSWORD_SCRYPT_N', SCRYPT_N_DEFAULT, 2 ** 10, 2 ** 20);
  if ((n & (n - 1)) !== 0) throw new ConfigError(`PASSWORD_SCRYPT_N=${n} is invalid: expected a power of two (2^10..2^20), e.g. 131072 = 2^17`);
  return n;
}

/**
 * Password hashes at once per process, and how many may wait (src/accounts/hash-slots.ts).
 * Fewer than libuv's threads (UV_THREADPOOL_SIZE, 4 unless set), which new Postgres
 * connections need for their SCRAM handshake.
 */
function passwordHashing(env: Env): { concurrency: number; queueMax: number } {
  // At least 2: one thread would leave hashing or new connections none.
  const threads = int(env, 'UV_THREADPOOL_SIZE', 4, 2, 1024);
  const concurrency = int(env, 'PASSWORD_HASH_CONCURRENCY', Math.min(2, threads - 1), 1, 1024);
  if (concurrency >= threads) {
    throw new ConfigError(`PASSWORD_HASH_CONCURRENCY=${concurrency} is invalid: expected fewer than UV_THREADPOOL_SIZE (${threads}), which new database connections need too`);
  }
  return { concurrency, queueMax: int(env, 'PASSWORD_HASH_QUEUE_MAX', 64, 0, 100_000) };
}

export const DEFAULT_PG_SHARDS =
  'postgres://postgres@127.0.0.1:55431/engine,postgres://postgres@127.0.0.1:55432/engine,postgres://postgres@127.0.0.1:55433/engine';

/**
 * Each shard is one URL; a shard with standbys names its hosts in libpq's multi-host
 * form (postgres://user:pass@h1:5432,h2:5432/db, optionally ?target_session_attrs=read-write)
 * and the engine follows whichever of them takes writes (src/shard/primary.ts).
 */
function pgShardUrls(env: Env): string[] {
  const list = urls(env, 'PG_SHARDS', DEFAULT_PG_SHARDS, /^postgres(ql)?:\/\//, splitShardList);
  if (list.length > 36) throw new ConfigError('PG_SHARDS lists more than 36 shards; ids encode the shard in one base-36 digit');
  list.forEach((url, i) => {
    try {
      parseShardUrl(url);
    } catch (err) {
      if (err instanceof ShardUrlError) throw new ConfigError(`PG_SHARDS shard ${i}: ${err.message}`);
      throw err;
    }
  });
  return list;
}

export function loadConfig(env: Env = process.env) {
  const pgShards = pgShardUrls(env);
  const cfg = {
    host: str(env, 'HOST', '127.0.0.1'),
    port: int(env, 'PORT', 8080, 1, 65535),
    workers: int(env, 'WORKERS', os.availableParallelism(), 1, 256),
    appServers: int(env, 'APP_SERVERS', 1, 1, 64),
    pgShards,
    pgPoolSize: int(env, 'PG_POOL_SIZE', 16, 1, 1000),
    cronPoolSize: int(env, 'CRON_POOL_SIZE', 4, 1, 100),
    pgReservedConnections: int(env, 'PG_RESERVED_CONNECTIONS', 10, 0, 1000),
    pgMaxConnections: int(env, 'PG_MAX_CONNECTIONS', 250, 1, 100000),
    pgStatementTimeoutMs: int(env, 'PG_STATEMENT_TIMEOUT_MS', 5000, 100, 600000),
    pgLockTimeoutMs: int(env, 'PG_LOCK_TIMEOUT_MS', 2000, 10, 600000),
    pgConnectTimeoutMs: int(env, 'PG_CONNECT_TIMEOUT_MS', 3000, 100, 60000),
    pgIdleTxTimeoutMs: int(env, 'PG_IDLE_TX_TIMEOUT_MS', 10000, 100, 600000),
    pgMaxWaiting: int(env, 'PG_MAX_WAITING', 1000, 1, 100000),
    // A shard of several hosts (src/shard/primary.ts): how long a probe of one host may
    // take (connect and check), and how often this process may probe a shard's hosts.
    pgPrimaryProbeTimeoutMs: int(env, 'PG_PRIMARY_PROBE_TIMEOUT_MS', 1000, 100, 60000),
    pgPrimaryProbeEveryMs: int(env, 'PG_PRIMARY_PROBE_EVERY_MS', 1000, 50, 600000),
    // Group commit of checkouts (src/orders/checkout.ts says how the bounds were chosen).
    checkoutBatchMax: int(env, 'CHECKOUT_BATCH_MAX', 50, 1, 60),
    checkoutBatchInflight: int(env, 'CHECKOUT_BATCH_INFLIGHT', 2, 1, 64),
    shardDownCooldownMs: int(env, 'SHARD_DOWN_COOLDOWN_MS', 1000, 50, 60000),
    redisUrls: urls(env, 'REDIS_URLS', 'redis://127.0.0.1:6391', /^rediss?:\/\//),
    // Prefix of every key and pub/sub channel, so two engines (or environments) can share a Redis.
    redisNamespace: namespace(env, 'REDIS_NAMESPACE'),
    categoryShardMap: new Map<number, number>(),
    publicUrl: '',
    directoryVersion: int(env, 'DIRECTORY_VERSION', 1, 1, 1_000_000),
    adminEmail: str(env, 'ADMIN_EMAIL', SHIPPED.ADMIN_EMAIL).toLowerCase(),
    adminPassword: str(env, 'ADMIN_PASSWORD', SHIPPED.ADMIN_PASSWORD),
    // Stored hashes of a lower cost are rehashed at this one on the user's next login.
    passwordScryptN: scryptN(env),
    passwordHashing: passwordHashing(env),
    loginWindowS: int(env, 'LOGIN_WINDOW_S', 900, 1, 86400),
    loginMaxFailsAccount: int(env, 'LOGIN_MAX_FAILS_ACCOUNT', 10, 1, 100000),
    loginMaxFailsAddress: int(env, 'LOGIN_MAX_FAILS_ADDRESS', 100, 1, 1000000),
    // Registrations per client address per LOGIN_WINDOW_S: each one costs an scrypt call.
    registerMaxAddress: int(env, 'REGISTER_MAX_ADDRESS', 100, 1, 1000000),
    trustProxy: bool(env, 'TRUST_PROXY', false),
    authCacheMs: int(env, 'AUTH_CACHE_MS', 1000, 0, 60_000),
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 65536, 1024, 16 * 1024 * 1024),
    // A body must arrive whole within this, from its request's headers; uWS closes an
    // unfinished upload after 10-14 s anyway, so a longer deadline would never be reached.
    bodyTimeoutMs: int(env, 'BODY_TIMEOUT_MS', 10_000, 100, 10_000),
    sessionTtlS: int(env, 'SESSION_TTL_S', 86400, 60, 90 * 86400),
    holdTtlS: int(env, 'HOLD_TTL_S', 600, 1, 86400),
    idempotencyLockS: int(env, 'IDEMPOTENCY_LOCK_S', 15, 1, 3600),
    expiryBatchSize: int(env, 'EXPIRY_BATCH_SIZE', 500, 1, 100000),
    expiryEveryMs: int(env, 'EXPIRY_EVERY_MS', 2000, 50, 600000),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 10000, 100, 300000),
    migrateOnStart: bool(env, 'MIGRATE_ON_START', true),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', LOG_LEVELS),
    logRequests: bool(env, 'LOG_REQUESTS', false),
    gatewayUrl: str(env, 'GATEWAY_URL', 'http://127.0.0.1:8090'),
    gatewayApiKey: str(env, 'GATEWAY_API_KEY', SHIPPED.GATEWAY_API_KEY),
    // Idempotency keys sent to the gateway are payment ids, unique per database only: two
    // environments on one gateway account need distinct prefixes or their keys collide.
    gatewayKeyPrefix: namespace(env, 'GATEWAY_KEY_PREFIX'),
    gatewayWebhookSecret: str(env, 'GATEWAY_WEBHOOK_SECRET', SHIPPED.GATEWAY_WEBHOOK_SECRET),
    webhookToleranceS: int(env, 'WEBHOOK_TOLERANCE_S', 300, 1, 86400),
    providerUrl: str(env, 'PROVIDER_URL', 'http://127.0.0.1:8091'),
    providerApiKey: str(env, 'PROVIDER_API_KEY', SHIPPED.PROVIDER_API_KEY),
    remoteTimeoutMs: int(env, 'REMOTE_TIMEOUT_MS', 3000, 50, 120000),
    remoteRetries: int(env, 'REMOTE_RETRIES', 2, 0, 10),
    remoteBackoffMs: int(env, 'REMOTE_BACKOFF_MS', 100, 1, 60000),
    breakerThreshold: int(env, 'BREAKER_THRESHOLD', 5, 1, 1000),
    breakerOpenMs: int(env, 'BREAKER_OPEN_MS', 5000, 10, 600000),
    verifyAttempts: int(env, 'PROVIDER_VERIFY_ATTEMPTS', 3, 1, 20),
    verifyBackoffMs: int(env, 'PROVIDER_VERIFY_BACKOFF_MS', 200, 1, 60000),
    reconcileAfterS: int(env, 'PAYMENT_RECONCILE_AFTER_S', 30, 1, 86400),
    unclaimedAfterS: int(env, 'UNCLAIMED_REFUND_AFTER_S', 10, 0, 86400),
    stuckOrderAfterS: int(env, 'STUCK_ORDER_AFTER_S', 30, 1, 86400),
    paymentsEveryMs: int(env, 'PAYMENTS_CRON_EVERY_MS', 2000, 50, 600000),
    outboxLeaseS: int(env, 'OUTBOX_LEASE_S', 30, 1, 3600),
    outboxEveryMs: int(env, 'OUTBOX_EVERY_MS', 500, 20, 600000),
    // Retention (cron): delivered notices and idempotency keys are deleted after these windows.
    retentionEveryMs: int(env, 'RETENTION_EVERY_MS', 60_000, 100, 86_400_000),
    outboxRetentionS: int(env, 'OUTBOX_RETENTION_S', 7 * 86400, 1, 365 * 86400),
    idempotencyRetentionS: int(env, 'IDEMPOTENCY_RETENTION_S', 86400, 60, 365 * 86400),
    // How often each cron process reads the outbox backlog, hold-expiry lag and overdue
    // refunds off every shard for /metrics (one cheap statement per shard, on indexes).
    metricsSampleMs: int(env, 'METRICS_SAMPLE_MS', 15_000, 100, 600_000),
    notifyFile: str(env, 'NOTIFY_FILE', ''),
    notifyWebhookUrl: str(env, 'NOTIFY_WEBHOOK_URL', ''),
    maxInflight: int(env, 'MAX_INFLIGHT', 5000, 1, 1_000_000),
    // Runtime feature flags (src/flags): the Postgres re-read that backs up Redis pub/sub.
    flagsRefreshMs: int(env, 'FLAGS_REFRESH_MS', 5000, 100, 600_000),
    // Reads (src/cache): read-through Redis cache and the sold-out admission gate.
    cacheEnabled: bool(env, 'CACHE_ENABLED', true),
    cacheItemTtlMs: int(env, 'CACHE_ITEM_TTL_MS', 30_000, 100, 3_600_000),
    cacheSearchTtlMs: int(env, 'CACHE_SEARCH_TTL_MS', 2000, 100, 600_000),
    cacheOrderTtlMs: int(env, 'CACHE_ORDER_TTL_MS', 60_000, 100, 3_600_000),
    cacheCategoryTtlMs: int(env, 'CACHE_CATEGORY_TTL_MS', 60_000, 100, 3_600_000),
    cacheTtlJitterPct: int(env, 'CACHE_TTL_JITTER_PCT', 10, 0, 50),
    cacheRefreshMinMs: int(env, 'CACHE_REFRESH_MIN_MS', 25, 0, 5000),
    soldOutGate: bool(env, 'SOLD_OUT_GATE', true),
    soldOutGateTtlMs: int(env, 'SOLD_OUT_GATE_TTL_MS', 1000, 50, 2000),
    // The live stream (GET /v1/stream), bounded per socket and per worker.
    streamMaxTopics: int(env, 'STREAM_MAX_TOPICS', 200, 1, 10_000),
    streamMaxMessageBytes: int(env, 'STREAM_MAX_MESSAGE_BYTES', 16_384, 256, 1_048_576),
    streamMaxBackpressureBytes: int(env, 'STREAM_MAX_BACKPRESSURE_BYTES', 262_144, 1024, 64 * 1_048_576),
    streamMaxSockets: int(env, 'STREAM_MAX_SOCKETS', 20_000, 1, 1_000_000),
    streamIdleTimeoutS: int(env, 'STREAM_IDLE_TIMEOUT_S', 60, 8, 960),
  };
  cfg.categoryShardMap = shardOverrides(env, pgShards.length);
  cfg.publicUrl = str(env, 'ENGINE_PUBLIC_URL', `http://127.0.0.1:${cfg.port}`);
  if (cfg.adminPassword.length < 8) throw new ConfigError('ADMIN_PASSWORD must be at least 8 characters');
  if (env.NODE_ENV === 'production') refuseTestDefaults(cfg);
  return cfg;
}

/**
 * NODE_ENV=production (bf-engine.service sets it) refuses what only suits the local
 * stack: a secret left unset or at its shipped value, which anyone can read and so forge
 * webhooks or sign in as the admin with, and a password hash cheaper than 2^17. Every
 * offending variable is named at once, so one restart fixes them all.
 */
function refuseTestDefaults(cfg: Config): void {
  const values: Record<keyof typeof SHIPPED, string> = {
    ADMIN_EMAIL: cfg.adminEmail, ADMIN_PASSWORD: cfg.adminPassword,
    GATEWAY_API_KEY: cfg.gatewayApiKey, GATEWAY_WEBHOOK_SECRET: cfg.gatewayWebhookSecret, PROVIDER_API_KEY: cfg.providerApiKey,
  };
  const shipped = Object.entries(SHIPPED).filter(([name, def]) => values[name as keyof typeof SHIPPED] === def).map(([name]) => name);
  const problems = shipped.length > 0 ? [`set ${shipped.join(', ')} (unset or still the test default${shipped.length > 1 ? 's' : ''})`] : [];
  if (cfg.passwordScryptN < SCRYPT_N_PRODUCTION_MIN) {
    problems.push(`PASSWORD_SCRYPT_N=${cfg.passwordScryptN} is below the production minimum ${SCRYPT_N_PRODUCTION_MIN} (2^17)`);
  }
  if (problems.length > 0) throw new ConfigError(`NODE_ENV=production refuses to start: ${problems.join('; ')}`);
}

export type Config = ReturnType<typeof loadConfig>;

/**
 * How a worker's connections to one shard (PG_POOL_SIZE) are split between the lanes
 * (src/shard/pools.ts): a quarter each for reads (most are answered by the cache; what
 * reaches Postgres is misses and searches) and payments (a paid order is three
 * statements plus its creation), half for checkouts and other writes. Measured at the
 * target load (2,500 reads/s + 500 writes/s): payments with a fifth queued for seconds and were shed, reads with two
 * fifths never used them. Each lane gets at least one.
 */
export function laneSizes(total: number): { read: number; write: number; payment: number } {
  const read = Math.max(1, Math.floor(total * 0.25));
  const payment = Math.max(1, Math.floor(total * 0.25));
  return { read, payment, write: Math.max(1, total - read - payment) };
}

export interface ConnectionBudget { perDatabase: number; max: number; formula: string }

/** Connections one Postgres primary must accept from the whole configured fleet. */
export function connectionBudget(cfg: Config): ConnectionBudget {
  const lanes = laneSizes(cfg.pgPoolSize);
  const perWorker = lanes.read + lanes.write + lanes.payment;
  const workers = cfg.appServers * cfg.workers * perWorker;
  const cron = cfg.appServers * cfg.cronPoolSize;
  const perDatabase = workers + cron + cfg.pgReservedConnections;
  const split = perWorker === cfg.pgPoolSize ? '' : ` (lanes need ${perWorker})`;
  const formula = `APP_SERVERS(${cfg.appServers}) x WORKERS(${cfg.workers}) x PG_POOL_SIZE(${cfg.pgPoolSize}: read ${lanes.read} + write ${lanes.write} + payment ${lanes.payment}${split}) + ` +
    `APP_SERVERS(${cfg.appServers}) x CRON_POOL_SIZE(${cfg.cronPoolSize}) + PG_RESERVED_CONNECTIONS(${cfg.pgReservedConnections}) = ${perDatabase}`;
  return { perDatabase, max: cfg.pgMaxConnections, formula };
}

export function assertBudget(cfg: Config): ConnectionBudget {
  const b = connectionBudget(cfg);
  if (b.perDatabase > b.max) {
    throw new ConfigError(`connection budget exceeded: ${b.formula} > PG_MAX_CONNECTIONS(${b.max}) per database; ` +
      'lower PG_POOL_SIZE or WORKERS, or raise PG_MAX_CONNECTIONS to match the servers');
  }
  return b;
}
