// Wires one process's read side together: the hooks domains call after commit, the
// cache and its refresher, the sold-out gate, the pub/sub bus and (in workers) the
// stream hub.
//
//   hook itemChanged ──> gate (own state, at once) + refresher.mark
//   refresher read ────> cache (versioned) + gate + hub + bus ──> every other process
//   bus item event ────> gate + hub          bus order event ──> hub
//   hook orderChanged ─> hub (at once) + bus         hook orderCreated ─> hub + bus + cache
//   hook itemWritten, categoryAdded ─> cache (the writer waits for it)
import { createCacheLayer, type ReadCache } from '../cache/index.js';
import { OPEN_GATE, type Gate } from '../cache/gate.js';
import type { ItemLoader, ItemState, StockView } from '../cache/items.js';
import type { RedisSet } from '../redis/set.js';
import type { Config } from '../config.js';
import type { Hooks } from '../deps.js';
import type { TemplatedApp } from '../http/uws.js';
import { log } from '../log.js';
import { decodeRow, encodeRow } from '../router/ids.js';
import { Bus, type BusEvent, type ItemEvent } from './bus.js';
import { StreamHub } from './hub.js';

export interface Live<T extends StockView> {
  /** Every hook but a flag's switch (the process's flag sync tells that one). */
  hooks: Omit<Hooks, 'flagSwitched'>;
  cache: ReadCache<T>;
  /** OPEN_GATE when SOLD_OUT_GATE is off. */
  gate: Gate;
  hub: StreamHub;
  attach(app: TemplatedApp): void;
  close(): Promise<void>;
}

export interface LiveOptions<T> { cfg: Config; redis: RedisSet; shardCount: number; load: ItemLoader<T>;
  listen: boolean }

/**
 * The longest a writer waits for the cache to take its change before answering. The
 * refresh normally lands within CACHE_REFRESH_MIN_MS plus one read; past this bound
 * (a backed-up shard) the answer goes out and the refresh still follows.
 */
const SETTLE_WAIT_MS = 1000;

function bounded(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); timer.unref(); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Item topics re-read per batch after the bus was down. */
const RESYNC_BATCH = 50;

export function createLive<T extends StockView>(o: LiveOptions<T>): Live<T> {
  const layer = createCacheLayer<T>(o.cfg, o.redis, o.shardCount, o.load);
  const { cache, refresher, gate } = layer;
  const hub = new StreamHub();
  const bus = new Bus(o.redis);

  const apply = (s: ItemState<T>) => {
    gate?.noteState(s);
    hub.item(encodeRow('item', s.shard, s.local), s.version, available(s));
  };
  cache.items.onState((s, source) => {
    if (source === 'read') {
      gate?.noteState(s);
      return;
    }
    apply(s);
    bus.publish({ k: 'i', s: s.shard, l: s.local, v: s.version, a: available(s), act: s.item?.active ?? false,
      r: s.item?.reclaimable ?? false });
  });

  const forgetOrder = (id: string) => {
    try {
      const { shard, local } = decodeRow('order', id, o.shardCount);
      return bounded(cache.orders.changed(shard, local), SETTLE_WAIT_MS);
    } catch (err) {
      log.error('orderChanged hook failed', { id, err });
      return Promise.resolve();
    }
  };
  const onBus = (ev: BusEvent) => {
    if (ev.k === 'i') apply(stateOf<T>(ev));
    else if (ev.k === 'o' && ev.o !== bus.origin) hub.order(ev.id, ev.st);
  };
  if (o.listen) bus.listen({ event: onBus, reconnected: () => void resync(cache, hub, o.shardCount) });

  const hooks: Live<T>['hooks'] = {
    itemChanged: (c) => {
      try {
        const { shard, local } = decodeRow('item', c.id, o.shardCount);
        gate?.noteHook(shard, local, c.available);
        const cached = refresher.mark(shard, local);
        // Without the cache, reads go to Postgres: nothing to wait for.
        return o.cfg.cacheEnabled ? bounded(cached, SETTLE_WAIT_MS) : Promise.resolve();
      } catch (err) {
        log.error('itemChanged hook failed', { id: c.id, err });
        return Promise.resolve();
      }
    },
    // Read-your-writes for an admin's write: the cache holds it before the answer goes out.
    itemWritten: (item, listed) => {
      if (!o.cfg.cacheEnabled) return Promise.resolve();
      const category = { id: item.categoryId, shard: item.shard };
      return Promise.all([cache.items.reload(item.shard, item.local), listed ? cache.pages.itemListed(category) : null])
        .then(() => undefined, () => undefined); // the write is committed; the refresher and the TTLs bound the rest
    },
    categoryAdded: () => cache.pages.categoriesChanged().catch(() => undefined),
    orderCreated: (shard, local, order, owner) => {
      hub.order(order.id, order.status);
      bus.publish({ k: 'o', id: order.id, st: order.status, o: bus.origin });
      return cache.orders.created(shard, local, { order, owner }).catch(() => undefined);
    },
    orderChanged: (c) => {
      hub.order(c.id, c.status);
      bus.publish({ k: 'o', id: c.id, st: c.status, o: bus.origin });
      return forgetOrder(c.id);
    },
    orderTouched: (shard, local) => bounded(cache.orders.changed(shard, local), SETTLE_WAIT_MS),
  };

  return {
    hooks, cache, gate: gate ?? OPEN_GATE, hub,
    attach: (app) => hub.attach(app),
    close: async () => {
      refresher.close();
      await bus.close();
    },
  };
}

const available = (s: ItemState<StockView>) => (s.item ? s.item.available : -1);

/** Bus events carry only what the gate and the stream need. */
function stateOf<T extends StockView>(ev: ItemEvent): ItemState<T> {
  const item = ev.a < 0 ? null : ({ available: ev.a, active: ev.act, reclaimable: ev.r } as T);
  return { shard: ev.s, local: ev.l, version: ev.v, item };
}

/** After an outage of the bus: what this worker's subscribers watch is read again (and published). */
async function resync<T extends StockView>(cache: ReadCache<T>, hub: StreamHub, shardCount: number): Promise<void> {
  const ids = hub.listenedItems();
  for (let i = 0; i < ids.length; i += RESYNC_BATCH) {
    await Promise.all(ids.slice(i, i + RESYNC_BATCH).map(async (id) => {
      try {
        const { shard, local } = decodeRow('item', id, shardCount);
        await cache.items.fresh(shard, local);
      } catch {
        /* the next change or resync brings it */
      }
    }));
  }
}
