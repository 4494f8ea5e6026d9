// Orders in the read cache: what a buyer polls (GET /v1/orders/:id) is one Redis GET.
//
// Each order's entry sits under a generation counter. Every committed change to the
// order, its payments or its shipment bumps the counter and drops the entry before the
// writer answers (hooks.orderChanged / orderTouched), and a fill that read Postgres
// before the bump is refused, so after a write returns no reader gets the order as it
// was: a buyer always reads their own latest write. A new order is written through at
// creation (the checkout already holds all of it), so the first poll is a hit too.
//
// Staleness bound: only when Redis cannot be reached at a change (the bump fails) can
// an entry outlive the change, until CACHE_ORDER_TTL_MS (default 60 s, +-10 % jitter).
import type { Order } from '../orders/model.js';
import { pack, unpack } from './codec.js';
import { counters } from './counters.js';
import { SingleFlight } from './single-flight.js';
import { KEY_PREFIX, type CacheStore } from './store.js';

/** An order and its owner's user id (the public order names the owner by public id only). */
export interface CachedOrder { order: Order; owner: string }

export interface OrderCacheOptions { enabled: boolean; ttlMs: number }

const entryKey = (shard: number, local: number) => `${KEY_PREFIX}or:${shard}:${local}`;
const genKey = (shard: number, local: number) => `${KEY_PREFIX}og:${shard}:${local}`;

export class OrderCache {
  private readonly flight = new SingleFlight<CachedOrder | null>();

  constructor(private readonly store: CacheStore, private readonly opts: OrderCacheOptions) {}

  /** The cached order, else one database read per order per process that fills it. */
  async read(shard: number, local: number, load: () => Promise<CachedOrder | null>): Promise<CachedOrder | null> {
    if (!this.opts.enabled) return load();
    const buf = await this.store.get(shard, entryKey(shard, local));
    if (buf) {
      counters.cache_hits_total.order++;
      return unpack<CachedOrder>(buf);
    }
    counters.cache_misses_total.order++;
    return this.flight.run(entryKey(shard, local), async () => {
      const gen = await this.store.generation(shard, genKey(shard, local));
      counters.cache_loads_total.order++;
      const found = await load();
      if (found && gen !== null) await this.store.setIfKeyGeneration(shard, genKey(shard, local),
        entryKey(shard, local), gen, pack(found), this.opts.ttlMs);
      return found;
    });
  }

  /** A new order, written through: nothing can have changed it before its id was told. */
  async created(shard: number, local: number, found: CachedOrder): Promise<void> {
    if (!this.opts.enabled) return;
    await this.store.setIfKeyGeneration(shard, genKey(shard, local), entryKey(shard, local), '0', pack(found),
      this.opts.ttlMs);
  }

  /** After a committed change: later reads miss and read Postgres. Best effort (Redis may be down). */
  async changed(shard: number, local: number): Promise<void> {
    if (!this.opts.enabled) return;
    // The generation outlives any fill that may have read it (entries live ttlMs).
    await this.store.bumpKeyGeneration(shard, genKey(shard, local), entryKey(shard, local),
      2 * this.opts.ttlMs + 60_000).catch(() => {
      counters.cache_redis_errors_total++;
    });
  }
}
