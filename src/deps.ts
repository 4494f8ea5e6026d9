// What a domain needs from the process: config, the shards and the directory that
// routes to them, and hooks that later layers (cache, realtime) attach to.
import type { ReadCache } from './cache/index.js';
import type { Gate } from './cache/gate.js';
import type { CachedItem } from './catalog/model.js';
import type { AuthCache } from './accounts/auth-cache.js';
import type { LoginLimiter } from './accounts/login-limits.js';
import type { Config } from './config.js';
import type { Provider } from './fulfillment/provider.js';
import type { Gateway } from './payments/gateway.js';
import type { Directory } from './router/directory.js';
import type { Lane, Shards, ShardSet } from './shard/pools.js';

export interface ItemChange { id: string; shard: number; available: number; reason: string }

export interface OrderChange {
  id: string; shard: number; status: string; customer_id: string;
  /** A new order: nothing cached can be stale (its copy is written through, not dropped). */
  created?: boolean;
}

/** Called after commit; implementations must never throw or block (Redis may be down). */
export interface Hooks {
  /**
   * An item row changed (price, stock, hold, release, sale). The promise settles (never
   * rejects) once the read cache holds a read taken after the change, or gave up; a
   * writer awaits it before answering so its client reads its own write.
   */
  itemChanged(change: ItemChange): Promise<void>;
  /**
   * An order moved to a new status (streamed). Like orderTouched, the promise settles
   * once the order's cached copy is gone.
   */
  orderChanged(change: OrderChange): Promise<void>;
  /** An order's payments or shipment changed, its status did not: the cached copy goes. */
  orderTouched(shard: number, local: number): Promise<void>;
}

export const NO_HOOKS: Hooks = { itemChanged: () => Promise.resolve(), orderChanged: () => Promise.resolve(), orderTouched: () => Promise.resolve() };

export interface Deps {
  cfg: Config;
  /** The connections of this work's lane (see laneOf); `pools` holds every lane. */
  shards: ShardSet;
  pools: Shards;
  dir: Directory;
  hooks: Hooks;
  /** The read cache (src/cache); absent in tools, which read Postgres directly. */
  cache?: ReadCache<CachedItem>;
  /** The sold-out admission gate; absent when SOLD_OUT_GATE is off. */
  gate?: Gate;
  /** Resolved bearer tokens (absent in tools). */
  authCache?: AuthCache;
  /** Login and registration limits (absent in tools and the cron process). */
  loginLimits?: LoginLimiter;
  /** Third parties, each behind an interface with its own breaker (one per process). */
  gateway: Gateway;
  provider: Provider;
}

/** The same dependencies, drawing connections from one lane (bulkheads, src/shard/pools.ts). */
export function inLane(deps: Deps, lane: Lane): Deps {
  return { ...deps, shards: deps.pools.forLane(lane) };
}
