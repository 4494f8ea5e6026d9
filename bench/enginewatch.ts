// What the engine says about itself during a scenario, sampled each second from its
// /metrics (the app server's processes merged at the moment of the scrape): how busy
// each worker's event loop was and how late it ran, and per shard the database round
// trips, the time requests waited for a pooled connection and the time queries took.
// Read next to Postgres' own view (pgwatch.ts), it says where a request's time goes:
// the loop, the pool queue, or the database.
import { request } from '../tools/lib/http.js';

export interface EngineSample {
  t_s: number;
  loop: { utilization: number[]; delay_p99_ms: number[] };
  shards: { round_trips_per_s: number; checkout_wait_ms_per_checkout: number; query_ms_per_round_trip: number }[];
}

interface Totals { round_trips: number; checkouts: number; checkout_wait_ms: number; query_ms: number }

export interface EngineMetrics {
  /** Per shard, the workers' usage totals (every lane but the cron process's, summed). */
  shards: Map<number, Totals>;
  /** Per worker slot, its event loop's busy time so far (s); utilization is its rate. */
  busy: Map<string, number>;
  /** Per worker, how late its timers fired since the previous scrape (p99, ms). */
  delay: number[];
}

const MAX_SAMPLES = 3600;
const LINE_RE = /^([a-z0-9_]+)\{([^}]*)\} ([0-9.eE+-]+|NaN)$/;
// The engine's names (src/metrics/engine.ts); seconds become the milliseconds reported here.
const USAGE: Record<string, [keyof Totals, number]> = {
  bf_pg_round_trips_total: ['round_trips', 1], bf_pg_checkouts_total: ['checkouts', 1],
  bf_pg_checkout_wait_seconds_total: ['checkout_wait_ms', 1000], bf_pg_query_seconds_total: ['query_ms', 1000],
};

const label = (labels: string, name: string) => new RegExp(`(?:^|,)${name}="([^"]*)"`).exec(labels)?.[1];

/** One scrape: per-shard usage of the workers (the cron process's lane left out) and per-worker loop figures. */
export function parseEngineMetrics(text: string): EngineMetrics {
  const shards = new Map<number, Totals>();
  const busy = new Map<string, number>();
  const delay: number[] = [];
  for (const line of text.split('\n')) {
    const m = LINE_RE.exec(line);
    if (!m) continue;
    const [, name, labels, value] = m as unknown as [string, string, string, string];
    const v = Number(value);
    const worker = label(labels, 'worker');
    const isWorker = worker !== undefined && /^\d+$/.test(worker);
    if (name === 'bf_event_loop_busy_seconds_total' && isWorker) busy.set(worker, v);
    else if (name === 'nodejs_eventloop_lag_p99_seconds' && isWorker) delay.push(Math.round(v * 10_000) / 10);
    const usage = USAGE[name];
    const shard = label(labels, 'shard');
    if (usage && shard !== undefined && label(labels, 'lane') !== 'cron') {
      const t = shards.get(Number(shard)) ?? { round_trips: 0, checkouts: 0, checkout_wait_ms: 0, query_ms: 0 };
      t[usage[0]] += v * usage[1];
      shards.set(Number(shard), t);
    }
  }
  return { shards, busy, delay };
}

export async function scrape(engineUrl: string): Promise<EngineMetrics | null> {
  const res = await request(engineUrl, 'GET', '/metrics', { timeoutMs: 2000 });
  // A sample lost under load is a gap, not a failed run.
  return res.status === 0 ? null : parseEngineMetrics(typeof res.body === 'string' ? res.body : '');
}

/** Round trips of every shard together, from one scrape. */
export function roundTrips(m: EngineMetrics): number {
  let n = 0;
  for (const t of m.shards.values()) n += t.round_trips;
  return n;
}

export class EngineWatch {
  private timer: NodeJS.Timeout | null = null;
  private last: EngineMetrics | null = null;
  private lastAt = 0;
  private startedAt = 0;
  private busy = false;
  readonly samples: EngineSample[] = [];

  constructor(private readonly engineUrl: string) {}

  async start(): Promise<void> {
    this.startedAt = performance.now();
    this.last = await scrape(this.engineUrl);
    this.lastAt = performance.now();
    this.timer = setInterval(() => void this.sample(), 1000);
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const now = await scrape(this.engineUrl);
      const at = performance.now();
      if (now && this.last && this.samples.length < MAX_SAMPLES) this.samples.push(this.diff(this.last, now, (at - this.lastAt) / 1000, at));
      if (now) {
        this.last = now;
        this.lastAt = at;
      }
    } finally {
      this.busy = false;
    }
  }

  private diff(a: EngineMetrics, b: EngineMetrics, dtS: number, at: number): EngineSample {
    const shards = [...b.shards.entries()].sort((x, y) => x[0] - y[0]).map(([i, t]) => {
      const p = a.shards.get(i) ?? { round_trips: 0, checkouts: 0, checkout_wait_ms: 0, query_ms: 0 };
      const rt = t.round_trips - p.round_trips, co = t.checkouts - p.checkouts;
      return {
        round_trips_per_s: Math.round(rt / Math.max(dtS, 0.001)),
        checkout_wait_ms_per_checkout: co > 0 ? r1((t.checkout_wait_ms - p.checkout_wait_ms) / co) : 0,
        query_ms_per_round_trip: rt > 0 ? r1((t.query_ms - p.query_ms) / rt) : 0,
      };
    });
    return { t_s: r1((at - this.startedAt) / 1000), loop: { utilization: utilization(a, b, dtS), delay_p99_ms: b.delay }, shards };
  }

  stop(): EngineSample[] {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.samples;
  }
}

/** Each worker's share of the interval its event loop was busy (a slot new in `b` counts from zero). */
function utilization(a: EngineMetrics, b: EngineMetrics, dtS: number): number[] {
  return [...b.busy].sort((x, y) => Number(x[0]) - Number(y[0])).map(([w, s]) => r3(Math.min(1, Math.max(0, (s - (a.busy.get(w) ?? 0)) / Math.max(dtS, 0.001)))));
}

/** Over the samples: mean loop utilization and the worst loop delay; per shard the mean figures. */
export function engineSummary(samples: EngineSample[]): {
  loop_utilization_mean: number; loop_delay_p99_ms_max: number;
  shards: { shard: number; round_trips_per_s: number; checkout_wait_ms: number; query_ms: number }[];
} | null {
  if (!samples.length) return null;
  const all = samples.flatMap((s) => s.loop.utilization);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 0);
  return {
    loop_utilization_mean: r3(mean(all)),
    loop_delay_p99_ms_max: Math.max(0, ...samples.flatMap((s) => s.loop.delay_p99_ms)),
    shards: samples[0]!.shards.map((_, i) => ({
      shard: i,
      round_trips_per_s: Math.round(mean(samples.map((s) => s.shards[i]?.round_trips_per_s ?? 0))),
      checkout_wait_ms: r1(mean(samples.map((s) => s.shards[i]?.checkout_wait_ms_per_checkout ?? 0))),
      query_ms: r1(mean(samples.map((s) => s.shards[i]?.query_ms_per_round_trip ?? 0))),
    })),
  };
}

const r1 = (v: number) => Math.round(v * 10) / 10;
const r3 = (v: number) => Math.round(v * 1000) / 1000;
