// Per-process counters of the read path, shipped as metrics by the worker (labelled
// with its pid) so tests and operators can see hits, misses and database loads.
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

export type Counters = typeof counters;

/** Flattens the counters into `name{labels}` -> value. */
export function counterSamples(extraLabels: string): [string, number][] {
  const out: [string, number][] = [];
  for (const [name, v] of Object.entries(counters)) {
    if (typeof v === 'number') out.push([`${name}{${extraLabels}}`, v]);
    else for (const [kind, n] of Object.entries(v)) out.push([`${name}{kind="${kind}",${extraLabels}}`, n]);
  }
  return out;
}
