// The dependencies one engine process holds: pools to every shard, the directory,
// and the Redis clients. Shared by workers, the cron process and tools.
import { laneSizes, type Config } from './config.js';
import { RedisSet } from './cache/redis.js';
import type { CachedItem } from './catalog/model.js';
import { loadItemsVersioned } from './catalog/service.js';
import { inLane, NO_HOOKS, type Deps, type Hooks } from './deps.js';
import { createLive, type Live } from './realtime/live.js';
import { startFlagSync } from './flags/index.js';
import { Directory } from './router/directory.js';
import { Shards } from './shard/pools.js';
import { HttpGateway } from './payments/gateway.js';
import { LoginLimiter } from './accounts/login-limits.js';
import { AuthCache } from './accounts/auth-cache.js';
import { HttpProvider } from './fulfillment/provider.js';

export interface Engine { deps: Deps; redis: RedisSet; live: Live<CachedItem> | null; close(): Promise<void> }

/**
 * Workers and the cron process get the read side (cache, gate, pub/sub; only workers
 * listen to the bus); tools read Postgres directly. `hooks` replaces the default ones.
 */
export function createEngine(cfg: Config, role: 'worker' | 'cron' | 'tool', hooks?: Hooks): Engine {
  const shards = new Shards(cfg.pgShards, {
    statementTimeoutMs: cfg.pgStatementTimeoutMs,
    lockTimeoutMs: cfg.pgLockTimeoutMs,
    connectTimeoutMs: cfg.pgConnectTimeoutMs,
    idleTxTimeoutMs: cfg.pgIdleTxTimeoutMs,
    maxWaiting: cfg.pgMaxWaiting,
    downCooldownMs: cfg.shardDownCooldownMs,
    appName: `engine-${role}`,
  }, role === 'worker' ? laneSizes(cfg.pgPoolSize) : role === 'cron' ? cfg.cronPoolSize : 2);
  const dir = new Directory(shards.count, cfg.categoryShardMap, cfg.directoryVersion);
  const redis = new RedisSet(cfg.redisUrls, `engine-${role}`, cfg.redisNamespace);
  const live = role === 'tool' ? null : createLive<CachedItem>({
    cfg, redis, shardCount: shards.count, listen: role === 'worker', // Refreshes follow writes (a writer waits for its own): the write lane's connections.
    load: (shard, locals) => loadItemsVersioned(inLane(deps, 'write'), shard, locals),
  });
  const deps: Deps = { cfg, shards, pools: shards, dir, hooks: hooks ?? live?.hooks ?? NO_HOOKS, cache: live?.cache, gate: live?.gate, loginLimits: role === 'worker' ? new LoginLimiter(redis, cfg) : undefined,
    authCache: role === 'tool' ? undefined : new AuthCache(role === 'worker' ? cfg.authCacheMs : 0, redis), gateway: new HttpGateway(cfg), provider: new HttpProvider(cfg) };
  // Feature flags follow Postgres in every worker and cron process; tools use the defaults.
  const flags = role === 'tool' ? null : startFlagSync(deps, redis);
  if (role === 'worker') deps.authCache?.listen();
  return {
    deps, redis, live,
    close: async () => { deps.authCache?.close(); await flags?.close(); await live?.close(); await Promise.allSettled([shards.end(), redis.end()]); },
  };
}
