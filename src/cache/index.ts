// The read side of one process: the item cache (with its refresher), the list caches
// and the sold-out gate, built from config. Workers' domains see them through deps
// (ReadSide in src/deps.ts).
import type { Config } from '../config.js';
import { SoldOutGate, type Gate } from './gate.js';
import { ItemCache, Refresher, type ItemLoader, type StockView } from './items.js';
import { OrderCache } from './orders.js';
import { PageCache } from './pages.js';
import type { RedisSet } from '../redis/set.js';
import { CacheStore } from './store.js';

export interface ReadCache<T extends StockView> {
  /** CACHE_ENABLED: false sends every read to Postgres (the bench compares both). */
  readonly enabled: boolean;
  readonly items: ItemCache<T>;
  readonly pages: PageCache;
  readonly orders: OrderCache;
}

export interface CacheLayer<T extends StockView> {
  cache: ReadCache<T>;
  refresher: Refresher<T>;
  /** Null when SOLD_OUT_GATE is off. */
  gate: SoldOutGate<T> | null;
}

export function createCacheLayer<T extends StockView>(cfg: Config, redis: RedisSet, shardCount: number,
  load: ItemLoader<T>): CacheLayer<T> {
  const store = new CacheStore(redis, cfg.cacheTtlJitterPct);
  const items = new ItemCache<T>(store, { enabled: cfg.cacheEnabled, ttlMs: cfg.cacheItemTtlMs,
    refreshMinMs: cfg.cacheRefreshMinMs }, load);
  const pages = new PageCache(store, { enabled: cfg.cacheEnabled, searchTtlMs: cfg.cacheSearchTtlMs,
    categoryTtlMs: cfg.cacheCategoryTtlMs });
  const orders = new OrderCache(store, { enabled: cfg.cacheEnabled, ttlMs: cfg.cacheOrderTtlMs });
  const refresher = new Refresher(items);
  redis.onReady(() => refresher.redisReady());
  const gate = cfg.soldOutGate ? new SoldOutGate<T>(items, cfg.soldOutGateTtlMs) : null;
  return { cache: { enabled: cfg.cacheEnabled, items, pages, orders }, refresher, gate };
}

export type { Gate, StockView };
