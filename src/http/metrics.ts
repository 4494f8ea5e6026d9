// Request counts and latency by route and status, plus pool usage per shard, in
// Prometheus text. Each worker keeps its own numbers and ships a snapshot to the
// primary every second; the primary sends back the fleet's sum, so whichever worker
// answers /metrics reports the whole process tree (at most ~2 s behind).
import cluster from 'node:cluster';

const BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

export interface Series { count: number; sumMs: number; buckets: number[] }
export interface Snapshot { requests: Record<string, Series>; gauges: Record<string, number> }

const local: Snapshot = { requests: {}, gauges: {} };
let fleet: Snapshot | null = null;

export function observe(route: string, status: number, ms: number): void {
  const key = `${route}|${status}`;
  const s = (local.requests[key] ??= { count: 0, sumMs: 0, buckets: BUCKETS_MS.map(() => 0) });
  s.count++;
  s.sumMs += ms;
  for (let i = 0; i < BUCKETS_MS.length; i++) if (ms <= BUCKETS_MS[i]!) s.buckets[i]!++;
}

export function setGauge(name: string, value: number): void { local.gauges[name] = value; }

export function merge(snaps: Snapshot[]): Snapshot {
  const out: Snapshot = { requests: {}, gauges: {} };
  for (const snap of snaps) {
    for (const [k, s] of Object.entries(snap.requests)) {
      const o = (out.requests[k] ??= { count: 0, sumMs: 0, buckets: BUCKETS_MS.map(() => 0) });
      o.count += s.count;
      o.sumMs += s.sumMs;
      s.buckets.forEach((b, i) => { o.buckets[i]! += b; });
    }
    Object.assign(out.gauges, snap.gauges);
  }
  return out;
}

/** Worker side: ship snapshots up, take the fleet sum down. */
export function startMetricsShipping(collectGauges: () => void): NodeJS.Timeout | undefined {
  if (!cluster.isWorker) return undefined;
  process.on('message', (msg: { type?: string; snapshot?: Snapshot }) => {
    if (msg?.type === 'metrics:fleet' && msg.snapshot) fleet = msg.snapshot;
  });
  const t = setInterval(() => {
    collectGauges();
    process.send?.({ type: 'metrics:worker', snapshot: local });
  }, 1000);
  t.unref();
  return t;
}

function labels(route: string, status: string): string { return `route="${route}",status="${status}"`; }

export function render(): string {
  const snap = fleet ?? local;
  const lines = ['# HELP http_requests_total Requests by route and status', '# TYPE http_requests_total counter'];
  const hist = ['# HELP http_request_duration_ms Latency by route and status', '# TYPE http_request_duration_ms histogram'];
  for (const [k, s] of Object.entries(snap.requests)) {
    const [route, status] = k.split('|') as [string, string];
    lines.push(`http_requests_total{${labels(route, status)}} ${s.count}`);
    BUCKETS_MS.forEach((le, i) => hist.push(`http_request_duration_ms_bucket{${labels(route, status)},le="${le}"} ${s.buckets[i]}`));
    hist.push(`http_request_duration_ms_bucket{${labels(route, status)},le="+Inf"} ${s.count}`);
    hist.push(`http_request_duration_ms_sum{${labels(route, status)}} ${s.sumMs.toFixed(3)}`);
    hist.push(`http_request_duration_ms_count{${labels(route, status)}} ${s.count}`);
  }
  const gauges = Object.entries(snap.gauges).map(([k, v]) => `${k} ${v}`);
  return [...lines, ...hist, '# TYPE engine_gauge gauge', ...gauges, ''].join('\n');
}
