// Cached list answers: search pages and the category list, each kept in a Redis hash
// (one field per query) under a generation counter. An invalidation bumps the counter
// and drops the hash; a fill that read Postgres before the bump is refused
// (store.setIfGeneration), so after a write returns, no reader gets the old list.
//
// Search pages (GET /v1/items?...) hold many items each, so they are invalidated only
// by what changes which items a page lists (an item created, renamed, (de)activated,
// repriced: catalog writes), not by stock moves: their `available` counts live
// CACHE_SEARCH_TTL_MS (default 2 s) and are at most that old. The item page and the
// stream are the fresh views of a count. Pages of one category live with its shard's
// keys; searches across all categories share one hash on shard 0's Redis.
//
// The category list changes only when an admin creates a category: cached for
// CACHE_CATEGORY_TTL_MS (default 60 s), invalidated by the create.
import { createHash } from 'node:crypto';
import { pack, unpack } from './codec.js';
import { counters } from './counters.js';
import { SingleFlight } from './single-flight.js';
import { KEY_PREFIX, type CacheStore } from './store.js';

export interface PageCacheOptions { enabled: boolean; searchTtlMs: number; categoryTtlMs: number }

interface Family { shard: number; gen: string; hash: string; ttlMs: number; kind: 'search' | 'categories' }

export class PageCache {
  private readonly flight = new SingleFlight<unknown>();

  constructor(private readonly store: CacheStore, private readonly opts: PageCacheOptions) {}

  get enabled(): boolean { return this.opts.enabled; }

  /** A search page; `category` (with its shard) when the search names one. */
  search<T>(category: { id: string; shard: number } | null, query: Record<string, unknown>,
    load: () => Promise<T>): Promise<T> {
    const field = createHash('sha1').update(JSON.stringify(query)).digest('base64url');
    return this.cached(this.searchFamily(category), field, load);
  }

  categories<T>(field: string, load: () => Promise<T>): Promise<T> {
    return this.cached(family('categories', 0, 'cat', this.opts.categoryTtlMs), field, load);
  }

  /** After an item is created or changed in a way lists show. Best effort (Redis may be down). */
  async itemListed(category: { id: string; shard: number }): Promise<void> {
    if (!this.opts.enabled) return;
    await Promise.all([this.searchFamily(category), this.searchFamily(null)].map((f) => this.invalidate(f)));
  }

  async categoriesChanged(): Promise<void> {
    if (!this.opts.enabled) return;
    await this.invalidate(family('categories', 0, 'cat', this.opts.categoryTtlMs));
  }

  private searchFamily(category: { id: string; shard: number } | null): Family {
    return category
      ? family('search', category.shard, `s:c${category.id}`, this.opts.searchTtlMs)
      : family('search', 0, 's:all', this.opts.searchTtlMs);
  }

  private async cached<T>(f: Family, field: string, load: () => Promise<T>): Promise<T> {
    if (!this.opts.enabled) return load();
    const got = await this.store.hgetWithGen(f.shard, f.gen, f.hash, field);
    if (got?.value) {
      counters.cache_hits_total[f.kind]++;
      return unpack<T>(got.value);
    }
    counters.cache_misses_total[f.kind]++;
    // Keyed by generation too: a reader after an invalidation never joins an older load.
    return this.flight.run(`${f.hash}:${got?.gen ?? '-'}:${field}`, async () => {
      counters.cache_loads_total[f.kind]++;
      const value = await load();
      if (got) void this.store.setIfGeneration(f.shard, f.gen, f.hash, got.gen, field, pack(value), f.ttlMs);
      return value;
    }) as Promise<T>;
  }

  private async invalidate(f: Family): Promise<void> {
    await this.store.bumpGeneration(f.shard, f.gen, f.hash).catch(() => undefined);
  }
}

function family(kind: Family['kind'], shard: number, name: string, ttlMs: number): Family {
  return { kind, shard, gen: `${KEY_PREFIX}${name}:gen`, hash: `${KEY_PREFIX}${name}:pages`, ttlMs };
}
