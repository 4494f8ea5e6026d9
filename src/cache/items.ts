// Items in the read cache, and how they stay fresh.
//
// A read is Redis GET, else one database read per key per process (single-flight)
// that fills the key. Every committed change to an item (price, stock, hold, release,
// sale, expiry) calls hooks.itemChanged in the process that made it (a worker or the
// cron process); that process marks the item dirty and the Refresher re-reads the
// dirty items of a shard in one statement, at most once per CACHE_REFRESH_MIN_MS per
// shard, and writes them with the snapshot version (version.ts): whatever order the
// writes of several processes reach Redis in, the newest read stays. The refreshed
// states also feed the sold-out gate and the live stream (realtime/).
//
// Staleness bound: a change is in the cache CACHE_REFRESH_MIN_MS (default 25 ms)
// plus one primary-key read and one Redis round trip after its commit; the test
// (test/cache.test.ts) measures this under concurrent holds on two workers. Only
// when that refresh cannot run (its process dies between commit and refresh, or Redis
// is unreachable and comes back with its old data) does a stale value last until the
// key's TTL: CACHE_ITEM_TTL_MS (default 30 s, +-10 % jitter). Writes Redis missed are
// retried when it is back.
import { log } from '../log.js';
import { pack, unpack } from './codec.js';
import { counters } from './counters.js';
import { SingleFlight } from './single-flight.js';
import { KEY_PREFIX, stripVersion, type CacheStore } from './store.js';
import type { Version } from './version.js';

/** What the gate reads of an item. `reclaimable`: expired holds await the sweeper (a hold would reclaim them). */
export interface StockView { available: number; active: boolean; reclaimable?: boolean }

/** What one read of one item saw: the item (null: no such item) and the read's version. */
export interface ItemState<T> { shard: number; local: number; version: Version; item: T | null }

export type ItemLoader<T> = (shard: number, locals: number[]) => Promise<{ version: Version; items: Map<number, T> }>;

export type StateSource = 'read' | 'refresh';
export type StateListener<T> = (state: ItemState<T>, source: StateSource) => void;

export interface ItemCacheOptions { enabled: boolean; ttlMs: number; refreshMinMs: number }

/** A missing item is cached briefly, so a storm on a bogus id is not a storm on Postgres. */
const MISSING_TTL_MS = 5000;
/** Ids re-read in one statement. */
const REFRESH_BATCH_MAX = 200;
/** Dirty ids waiting per shard; past this a change is left to the TTL (and logged). */
const DIRTY_MAX = 50_000;
/** After a failed refresh (shard down) the shard's dirty ids wait this long. */
const RETRY_PAUSE_MS = 1000;

export const itemKey = (shard: number, local: number) => `${KEY_PREFIX}it:${shard}:${local}`;

export class ItemCache<T extends StockView> {
  private readonly flight = new SingleFlight<ItemState<T>>();
  private readonly listeners: StateListener<T>[] = [];

  constructor(readonly store: CacheStore, readonly opts: ItemCacheOptions, readonly load: ItemLoader<T>) {}

  onState(fn: StateListener<T>): void { this.listeners.push(fn); }

  emit(state: ItemState<T>, source: StateSource): void {
    for (const fn of this.listeners) fn(state, source);
  }

  /** The cached state, else one database read per key per process. */
  async read(shard: number, local: number): Promise<ItemState<T>> {
    const key = itemKey(shard, local);
    if (this.opts.enabled) {
      const buf = await this.store.get(shard, key);
      if (buf) {
        counters.cache_hits_total.item++;
        const { version, payload } = stripVersion(buf);
        return { shard, local, version, item: unpack<T | null>(payload) };
      }
      counters.cache_misses_total.item++;
    }
    return this.flight.run(key, async () => {
      // A miss that lost the race with the previous load's fill: that fill is the answer.
      const filled = this.opts.enabled ? await this.store.get(shard, key) : null;
      if (filled) {
        const { version, payload } = stripVersion(filled);
        return { shard, local, version, item: unpack<T | null>(payload) };
      }
      return this.loadOne(shard, local, 'item');
    });
  }

  /** Straight from Postgres (single-flight too), written back and announced. */
  fresh(shard: number, local: number): Promise<ItemState<T>> {
    return this.flight.run(`fresh:${itemKey(shard, local)}`, () => this.loadOne(shard, local, 'refresh'));
  }

  /**
   * After a write this process made and before it answers: read again (never joining a
   * load that may have started before the commit) and wait for the cache write, so the
   * writer's next read sees its own change.
   */
  async reload(shard: number, local: number): Promise<void> {
    counters.cache_loads_total.refresh++;
    const { version, items } = await this.load(shard, [local]);
    const state: ItemState<T> = { shard, local, version, item: items.get(local) ?? null };
    this.emit(state, 'refresh');
    await this.write([state]);
  }

  private async loadOne(shard: number, local: number, kind: 'item' | 'refresh'): Promise<ItemState<T>> {
    counters.cache_loads_total[kind]++;
    const { version, items } = await this.load(shard, [local]);
    const state: ItemState<T> = { shard, local, version, item: items.get(local) ?? null };
    this.emit(state, kind === 'item' ? 'read' : 'refresh');
    await this.write([state]); // before the flight ends, so a late miss finds the fill
    return state;
  }

  /** Writes states unless Redis has newer ones; false when Redis was unreachable. */
  async write(states: ItemState<T>[]): Promise<boolean> {
    if (!this.opts.enabled) return true;
    const done = await Promise.all(states.map((s) =>
      this.store.setVersioned(s.shard, itemKey(s.shard, s.local), s.version, pack(s.item),
        s.item ? this.opts.ttlMs : Math.min(MISSING_TTL_MS, this.opts.ttlMs))));
    return done.every(Boolean);
  }
}

/** Re-reads changed items per shard in batches; see the header for the bound it gives. */
export class Refresher<T extends StockView> {
  private readonly dirty = new Map<number, Set<number>>();
  private readonly running = new Set<number>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly nextStartMs = new Map<number, number>();
  /** Items whose refresh Redis did not take: written again when Redis is back. */
  private readonly missedWrites = new Map<number, Set<number>>();
  /** Writers waiting for the next refresh of an item (per shard, per item). */
  private readonly waiters = new Map<number, Map<number, (() => void)[]>>();
  private lastWarnMs = 0;
  private closed = false;

  constructor(private readonly cache: ItemCache<T>) {}

  /**
   * Queues a re-read of the item; the promise settles after the refresh that took it
   * from the queue wrote (or failed), never before: a refresh already running may have
   * read before the caller's commit, so a mark made meanwhile waits for the next one.
   */
  mark(shard: number, local: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!add(this.dirty, shard, local)) {
      this.warn('refresh queue full; the item is left to its cache TTL', { shard });
      return Promise.resolve();
    }
    this.schedule(shard);
    return new Promise((resolve) => {
      let byItem = this.waiters.get(shard);
      if (!byItem) this.waiters.set(shard, (byItem = new Map()));
      byItem.get(local)?.push(resolve) ?? byItem.set(local, [resolve]);
    });
  }

  /** The waiters of the items a refresh is about to read, taken with them. */
  private takeWaiters(shard: number, locals: number[]): (() => void)[] {
    const byItem = this.waiters.get(shard);
    if (!byItem) return [];
    const taken: (() => void)[] = [];
    for (const local of locals) {
      const w = byItem.get(local);
      if (w) taken.push(...w);
      byItem.delete(local);
    }
    return taken;
  }

  /** Redis came back: what it missed is read and written again. */
  redisReady(): void {
    for (const [shard, locals] of this.missedWrites) {
      for (const local of locals) add(this.dirty, shard, local);
      this.schedule(shard);
    }
    this.missedWrites.clear();
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const byItem of this.waiters.values()) for (const w of byItem.values()) for (const settle of w) settle();
    this.waiters.clear();
  }

  private schedule(shard: number): void {
    if (this.closed || this.running.has(shard) || this.timers.has(shard)) return;
    const waitMs = Math.max(0, (this.nextStartMs.get(shard) ?? 0) - Date.now());
    const t = setTimeout(() => void this.run(shard), waitMs);
    t.unref();
    this.timers.set(shard, t);
  }

  private async run(shard: number): Promise<void> {
    this.timers.delete(shard);
    const set = this.dirty.get(shard);
    if (!set || set.size === 0) return;
    const locals: number[] = [];
    for (const local of set) {
      locals.push(local);
      set.delete(local);
      if (locals.length === REFRESH_BATCH_MAX) break;
    }
    this.running.add(shard);
    this.nextStartMs.set(shard, Date.now() + this.cache.opts.refreshMinMs);
    const waiting = this.takeWaiters(shard, locals);
    try {
      counters.cache_loads_total.refresh++;
      const { version, items } = await this.cache.load(shard, locals);
      const states = locals.map((local): ItemState<T> => ({ shard, local, version, item: items.get(local) ?? null }));
      for (const s of states) this.cache.emit(s, 'refresh');
      if (!(await this.cache.write(states))) for (const local of locals) add(this.missedWrites, shard, local);
    } catch (err) {
      for (const local of locals) add(this.dirty, shard, local);
      this.nextStartMs.set(shard, Date.now() + RETRY_PAUSE_MS);
      this.warn('cache refresh failed; retrying', { shard, err });
    } finally {
      // Settled after a failure too: the answer must not wait on a down shard or Redis.
      for (const settle of waiting) settle();
      this.running.delete(shard);
      if ((this.dirty.get(shard)?.size ?? 0) > 0) this.schedule(shard);
    }
  }

  private warn(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastWarnMs < 10_000) return;
    this.lastWarnMs = now;
    log.warn(msg, fields);
  }
}

function add(map: Map<number, Set<number>>, shard: number, local: number): boolean {
  let set = map.get(shard);
  if (!set) map.set(shard, (set = new Set()));
  if (set.size >= DIRTY_MAX && !set.has(local)) return false;
  set.add(local);
  return true;
}
