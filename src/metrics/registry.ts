// The two registries every engine process keeps, and families read at scrape time.
//
// `app` holds what is summed over an app server's processes: no per-process label, so a
// respawned worker continues its predecessor's series instead of starting a new one.
// `perProcess` holds what only means something per process (CPU, memory, heap, event
// loop), labelled with a stable `worker` ("0".."WORKERS-1", "cron", "primary"), never a
// pid. The primary merges every process's registries per scrape (fleet.ts).
import client from 'prom-client';

export const app = new client.Registry();
export const perProcess = new client.Registry();

export type Labels = Record<string, string | number>;
export interface Sample { labels: Labels; value: number; metricName?: string }
export type Kind = 'counter' | 'gauge' | 'histogram';
export type Aggregator = 'sum' | 'min' | 'max' | 'first';

/**
 * A family whose samples are read when scraped, from numbers the code keeps anyway
 * (pool sizes, usage totals, plain counters incremented on hot paths): nothing is
 * recorded twice and nothing is hashed per event. `aggregator` says how the primary
 * merges one label set across processes.
 */
export function collected(reg: client.Registry, name: string, help: string, type: Kind, read: () => Sample[],
  aggregator: Aggregator = 'sum'): void {
  const family = {
    name, help, type, aggregator,
    get: async () => ({ name, help, type, aggregator, values: read() }),
    reset: () => undefined,
  };
  reg.registerMetric(family as unknown as client.Metric);
}
