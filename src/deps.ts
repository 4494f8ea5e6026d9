// What the engine's code needs from the process that runs it, as a few capabilities.
// Each process builds exactly its own set (src/engine.ts), every field present:
//
//   worker: WorkerDeps = Core & Remote & ReadSide & Sessions
//   cron:   CronDeps   = Core & Remote
//   tools:  ToolDeps   = Core
//
// A function asks for the capabilities it uses (`deps: Core & Remote`), so calling it
// from a process that lacks one is a compile error, not a check at run time.
import type { AuthCache } from './accounts/auth-cache.js';
import type { LoginLimiter } from './accounts/login-limits.js';
import type { ReadCache } from './cache/index.js';
import type { Gate } from './cache/gate.js';
import type { CachedItem } from './catalog/model.js';
import type { Config } from './config.js';
import type { FlagState } from './flags/state.js';
import type { Provider } from './fulfillment/provider.js';
import type { Order } from './orders/model.js';
import type { Gateway } from './payments/gateway.js';
import type { Directory } from './router/directory.js';
import type { Lane, Shards, ShardSet } from './shard/shards.js';

export interface ItemChange { id: string; shard: number; available: number; reason: string }

export interface OrderChange { id: string; shard: number; status: string; customer_id: string }

/** Called after commit; implementations must never throw or block (Redis may be down). */
export interface Hooks {
  /**
   * An item row changed (price, stock, hold, release, sale). The promise settles (never
   * rejects) once the read cache holds a read taken after the change, or gave up; a
   * writer awaits it before answering so its client reads its own write.
   */
  itemChanged(change: ItemChange): Promise<void>;
  /**
   * An admin wrote an item: the cache holds it again before the answer goes out, and a
   * `listed` change (a new item, a new name) starts its category's search pages afresh.
   */
  itemWritten(item: { shard: number; local: number; categoryId: string }, listed: boolean): Promise<void>;
  /** A category was created: cached category pages are dropped. */
  categoryAdded(): Promise<void>;
  /** A new order (streamed); its cached copy is written through, nothing cached can be stale. */
  orderCreated(shard: number, local: number, order: Order, owner: string): Promise<void>;
  /**
   * An order moved to a new status (streamed). Like orderTouched, the promise settles
   * once the order's cached copy is gone.
   */
  orderChanged(change: OrderChange): Promise<void>;
  /** An order's payments or shipment changed, its status did not: the cached copy goes. */
  orderTouched(shard: number, local: number): Promise<void>;
  /** A feature flag was switched here: every process re-reads the flags (src/flags/sync.ts). */
  flagSwitched(name: string): Promise<void>;
}

/** Tools: nobody reads through a cache or listens to a stream of theirs. */
export const NO_HOOKS: Hooks = {
  itemChanged: () => Promise.resolve(), itemWritten: () => Promise.resolve(), categoryAdded: () => Promise.resolve(),
  orderCreated: () => Promise.resolve(), orderChanged: () => Promise.resolve(), orderTouched: () => Promise.resolve(),
  flagSwitched: () => Promise.resolve(),
};

/**
 * Every process: config, the shards and the directory that routes to them, its feature flags, and
 * the hooks after commit.
 */
export interface Core {
  cfg: Config;
  flags: FlagState;
  /** The connections of this work's lane (see inLane); `pools` holds every lane. */
  shards: ShardSet;
  pools: Shards;
  dir: Directory;
  hooks: Hooks;
}

/** Third parties, each behind an interface with its own breaker (one per process): workers and the cron. */
export interface Remote { gateway: Gateway; provider: Provider }

/** The read cache and the sold-out gate (OPEN_GATE when SOLD_OUT_GATE is off): workers, which answer reads. */
export interface ReadSide { cache: ReadCache<CachedItem>; gate: Gate }

/** Resolved bearer tokens and the login and registration limits: workers, which authenticate. */
export interface Sessions { authCache: AuthCache; loginLimits: LoginLimiter }

export type WorkerDeps = Core & Remote & ReadSide & Sessions;
export type CronDeps = Core & Remote;
export type ToolDeps = Core;

/** The same dependencies, drawing connections from one lane (bulkheads, src/shard/pools.ts). */
export function inLane<D extends Core>(deps: D, lane: Lane): D {
  return { ...deps, shards: deps.pools.forLane(lane) };
}
