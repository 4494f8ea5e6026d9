// What each process opens for itself (src/deps.ts names the capabilities): pools to
// every shard sized for its role, the directory, and then only what its role uses.
//   worker: Redis, the read side with the stream's hub listening to the bus, sessions, third parties
//   cron:   Redis (leader election, the bus to publish on), the read side's hooks, third parties
//   tool:   Postgres alone; nothing reads through a cache of its, so its hooks do nothing
// Each returns what it opened with one close().
import type { Config } from './config.js';
import { laneSizes } from './config.js';
import { AuthCache } from './accounts/auth-cache.js';
import { hashSlots } from './accounts/hash-slots.js';
import { LoginLimiter } from './accounts/login-limits.js';
import type { CachedItem } from './catalog/model.js';
import { loadItemsVersioned } from './catalog/service.js';
import { inLane, NO_HOOKS, type Core, type CronDeps, type Remote, type ToolDeps, type WorkerDeps } from './deps.js';
import { FlagState } from './flags/state.js';
import { FlagSync } from './flags/sync.js';
import { HttpProvider } from './fulfillment/provider.js';
import { HttpGateway } from './payments/gateway.js';
import { createLive, type Live } from './realtime/live.js';
import { RedisSet } from './redis/set.js';
import { Directory } from './router/directory.js';
import { Shards } from './shard/shards.js';

export interface WorkerProcess { deps: WorkerDeps; redis: RedisSet; live: Live<CachedItem>; close(): Promise<void> }
export interface CronProcess { deps: CronDeps; redis: RedisSet; close(): Promise<void> }
export interface ToolProcess { deps: ToolDeps; close(): Promise<void> }

type Role = 'worker' | 'cron' | 'tool';

function openShards(cfg: Config, role: Role): Omit<Core, 'hooks'> {
  const sizes = role === 'worker' ? laneSizes(cfg.pgPoolSize) : role === 'cron' ? cfg.cronPoolSize : 2;
  const shards = new Shards(cfg.pgShards, {
    statementTimeoutMs: cfg.pgStatementTimeoutMs,
    lockTimeoutMs: cfg.pgLockTimeoutMs,
    connectTimeoutMs: cfg.pgConnectTimeoutMs,
    idleTxTimeoutMs: cfg.pgIdleTxTimeoutMs,
    maxWaiting: cfg.pgMaxWaiting,
    downCooldownMs: cfg.shardDownCooldownMs,
    probeTimeoutMs: cfg.pgPrimaryProbeTimeoutMs,
    probeEveryMs: cfg.pgPrimaryProbeEveryMs,
    appName: `engine-${role}`,
  }, sizes);
  const dir = new Directory(shards.count, cfg.categoryShardMap, cfg.directoryVersion);
  return { cfg, shards, pools: shards, dir, flags: new FlagState() };
}

const remote = (cfg: Config): Remote => ({ gateway: new HttpGateway(cfg), provider: new HttpProvider(cfg) });

/** The read side of a worker or the cron (only workers listen to the bus). */
function openLive(base: Omit<Core, 'hooks'>, redis: RedisSet, listen: boolean): Live<CachedItem> {
  return createLive<CachedItem>({
    cfg: base.cfg, redis, shardCount: base.shards.count, listen,
    // Refreshes follow writes (a writer waits for its own): the write lane's connections.
    load: (shard, locals) => loadItemsVersioned(inLane({ ...base, hooks: NO_HOOKS }, 'write'), shard, locals),
  });
}

/** Feature flags follow Postgres in every worker and cron process; tools keep the defaults. */
function syncFlags(base: Omit<Core, 'hooks'>, redis: RedisSet): FlagSync {
  const sync = new FlagSync(base.shards, base.flags, redis);
  sync.start(base.cfg.flagsRefreshMs);
  return sync;
}

/** What a worker and the cron share: Redis, the read side's hooks and flags kept in step. */
function openServing(cfg: Config, role: 'worker' | 'cron') {
  const base = openShards(cfg, role);
  const redis = new RedisSet(cfg.redisUrls, `engine-${role}`, cfg.redisNamespace);
  const live = openLive(base, redis, role === 'worker');
  const flags = syncFlags(base, redis);
  const core: Core = { ...base, hooks: { ...live.hooks, flagSwitched: (name) => flags.announce(name) } };
  const close = async () => {
    await flags.close();
    await live.close();
    await Promise.allSettled([base.pools.end(), redis.end()]);
  };
  return { core, redis, live, close };
}

export function openWorker(cfg: Config): WorkerProcess {
  const { core, redis, live, close } = openServing(cfg, 'worker');
  const authCache = new AuthCache(cfg.authCacheMs, redis);
  hashSlots.configure(cfg.passwordHashing);
  const deps: WorkerDeps = {
    ...core, ...remote(cfg), cache: live.cache, gate: live.gate, authCache, loginLimits: new LoginLimiter(redis, cfg),
  };
  authCache.listen();
  return {
    deps, redis, live,
    close: async () => {
      authCache.close();
      await close();
    },
  };
}

export function openCron(cfg: Config): CronProcess {
  const { core, redis, close } = openServing(cfg, 'cron');
  return { deps: { ...core, ...remote(cfg) }, redis, close };
}

/** Migrations' neighbours: the first admin, the demo catalog, a test's direct calls. */
export function openTool(cfg: Config): ToolProcess {
  const base = openShards(cfg, 'tool');
  return { deps: { ...base, hooks: NO_HOOKS }, close: () => base.pools.end() };
}
