// What a worker or the cron process exports from the objects it holds, read when
// scraped: its connection pools per shard and lane, whether it reaches each shard and
// Redis, its circuit breakers, its cache counters; and a worker's admission slots.
import { counters } from '../cache/counters.js';
import type { Core, Remote } from '../deps.js';
import type { RedisSet } from '../redis/set.js';
import type { Admission } from '../http/admission.js';
import type { Shard } from '../shard/pools.js';
import { app, collected, type Sample } from './registry.js';

export type Role = 'worker' | 'cron';

export function exportEngine(engine: { deps: Core & Remote; redis: RedisSet }, role: Role): void {
  const { pools, gateway, provider } = engine.deps;
  // The cron process has one pool per shard that all its jobs share: lane "cron".
  const each = (read: (shard: Shard) => number): Sample[] =>
    pools.all().flatMap((set) => set.list.map((s) =>
      ({ labels: { shard: s.index, lane: set.lane === 'all' ? role : set.lane }, value: read(s) })));

  collected(app, 'bf_pg_pool_connections',
    'Connections open in a pool, per shard and lane (read, write, payment; cron)', 'gauge',
      () => each((s) => s.pool.totalCount));
  collected(app, 'bf_pg_pool_idle_connections', 'Open connections not checked out, per shard and lane', 'gauge',
    () => each((s) => s.pool.idleCount));
  collected(app, 'bf_pg_pool_max_connections',
    'The most connections a pool may open (its share of PG_POOL_SIZE), per shard and lane', 'gauge',
      () => each((s) => s.stats().max));
  collected(app, 'bf_pg_pool_waiting', 'Checkouts queued for a connection right now, per shard and lane', 'gauge',
    () => each((s) => s.pool.waitingCount));
  collected(app, 'bf_pg_round_trips_total', 'Database round trips (every query, BEGIN and COMMIT), per shard and lane',
    'counter', () => each((s) => s.usage.round_trips));
  collected(app, 'bf_pg_checkouts_total', 'Connections checked out of a pool, per shard and lane', 'counter',
    () => each((s) => s.usage.checkouts));
  collected(app, 'bf_pg_checkout_wait_seconds_total', 'Time checkouts waited for a connection, per shard and lane',
    'counter', () => each((s) => s.usage.checkout_wait_ms / 1000));
  collected(app, 'bf_pg_query_seconds_total', 'Time from sending a query to its answer, per shard and lane', 'counter',
    () => each((s) => s.usage.query_ms / 1000));
  // min over processes: 0 as soon as one process of the host finds the shard down.
  collected(app, 'bf_pg_shard_up', 'Whether every process of this host reaches the shard (1) or one finds it down (0)',
    'gauge', () => {
    const up = new Map<number, number>();
    for (const set of pools.all()) for (const s of set.list) up.set(s.index,
      Math.min(up.get(s.index) ?? 1, s.state === 'up' ? 1 : 0));
    return [...up].map(([shard, value]) => ({ labels: { shard }, value }));
  }, 'min');
  collected(app, 'bf_redis_up',
    'Whether every process of this host has its connection to the Redis ready (1) or not (0)', 'gauge',
    () => engine.redis.clients.map((c, i) => ({ labels: { redis: i }, value: c.status === 'ready' ? 1 : 0 })), 'min');
  collected(app, 'bf_breaker_state',
    'Processes whose circuit breaker to a dependency is in each state (closed, open, half_open)', 'gauge', () =>
    [['gateway', gateway.breakerState], ['provider', provider.breakerState]].flatMap(([dependency, now]) =>
      ['closed', 'open', 'half_open'].map((state) =>
        ({ labels: { dependency: dependency!, state }, value: now === state ? 1 : 0 }))));
  exportCacheCounters();
}

/** A worker's admission slots (src/http/admission.ts). */
export function exportAdmission(admission: Admission, maxInflight: number): void {
  const gauge = (name: string, help: string, read: () => number) =>
    collected(app, name, help, 'gauge', () => [{ labels: {}, value: read() }]);
  gauge('bf_http_inflight_requests',
    'Admission slots held: HTTP requests in progress (the scrape reading this included) and WebSocket topic checks',
    () => admission.inflight());
  gauge('bf_http_inflight_limit', 'Admission slots available (MAX_INFLIGHT per worker)', () => maxInflight);
  gauge('bf_stream_inflight_checks', 'Admission slots held by WebSocket topic checks (at most half of MAX_INFLIGHT)',
    () => admission.streamInflight());
}

/** The read path's plain counters (src/cache/counters.ts), incremented with no label hashing. */
function exportCacheCounters(): void {
  const byKind = (name: string, help: string, of: Record<string, number>) =>
    collected(app, name, help, 'counter', () => Object.entries(of).map(([kind, value]) =>
      ({ labels: { kind }, value })));
  const single = (name: string, help: string, read: () => number) =>
    collected(app, name, help, 'counter', () => [{ labels: {}, value: read() }]);
  byKind('bf_cache_hits_total', 'Reads answered from the Redis cache, by kind', counters.cache_hits_total);
  byKind('bf_cache_misses_total', 'Reads the Redis cache could not answer, by kind', counters.cache_misses_total);
  byKind('bf_cache_loads_total',
    'Database reads made for the cache: misses after single-flight, and refreshes after writes',
      counters.cache_loads_total);
  single('bf_cache_redis_errors_total', 'Redis commands of the read path that failed or timed out',
    () => counters.cache_redis_errors_total);
  single('bf_sold_out_gate_blocked_total', 'Checkouts the sold-out gate refused without a database round trip',
    () => counters.gate_blocked_total);
  single('bf_sold_out_gate_passed_total', 'Checkouts the sold-out gate let through to Postgres',
    () => counters.gate_passed_total);
  single('bf_sold_out_gate_verifications_total', 'Re-reads from Postgres of an item the gate holds as sold out',
    () => counters.gate_verify_total);
  single('bf_bus_published_total', 'Messages published to the Redis pub/sub bus', () => counters.bus_published_total);
  single('bf_bus_received_total', 'Messages received from the Redis pub/sub bus', () => counters.bus_received_total);
}
