// Per-process counters of the read path: plain increments on the hot path, exported as
// bf_cache_* / bf_sold_out_gate_* / bf_bus_* when /metrics is scraped (src/metrics/engine.ts).
// A module-level singleton on purpose: a process has one set of counters, like the
// prom-client registry they are exported to, and the hot path reads no object to find them.
export const counters = {
  cache_hits_total: { item: 0, search: 0, categories: 0, order: 0 },
  cache_misses_total: { item: 0, search: 0, categories: 0, order: 0 },
  /** Database reads the cache made: misses (after single-flight) and refreshes. */
  cache_loads_total: { item: 0, search: 0, categories: 0, order: 0, refresh: 0 },
  cache_redis_errors_total: 0,
  gate_blocked_total: 0,
  gate_passed_total: 0,
  gate_verify_total: 0,
  bus_published_total: 0,
  bus_received_total: 0,
};
