// What recording one request costs, in ns/op: the figure that decided how the engine's
// per-request metrics are written (src/http/metrics.ts). Each way records a counter
// (route, status) and a latency histogram (route, status class) per request, over the
// same mix of 40 routes x 5 statuses, in rounds taken alternately so a busy machine
// slows every way alike. Run: `npm run build && node dist/bench/micro/metrics-record.js`.
import client from 'prom-client';

const ROUTES = Array.from({ length: 40 }, (_, i) => `route_${i}`);
const STATUSES = [200, 201, 404, 409, 503];
const N = 2_000_000;
const ROUNDS = 5;
const BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BUCKETS_MS = BUCKETS_S.map((b) => b * 1000);

// The same pseudo-random request mix for every way.
const mix = Array.from({ length: 4096 }, (_, i) => ({
  route: ROUTES[(i * 7919) % ROUTES.length]!, status: STATUSES[(i * 104729) % STATUSES.length]!, ms: ((i * 2654435761) % 20000) / 100,
}));

type Record = (route: string, status: number, ms: number) => void;

/** The code before this change: a string key per request, a linear bucket walk. */
function before(): Record {
  const requests: { [k: string]: { count: number; sumMs: number; buckets: number[] } } = {};
  return (route, status, ms) => {
    const key = `${route}|${status}`;
    const s = (requests[key] ??= { count: 0, sumMs: 0, buckets: BUCKETS_MS.map(() => 0) });
    s.count++;
    s.sumMs += ms;
    for (let i = 0; i < BUCKETS_MS.length; i++) if (ms <= BUCKETS_MS[i]!) s.buckets[i]!++;
  };
}

const classOf = (status: number) => `${Math.floor(status / 100)}xx`;

/** prom-client as documented: a Counter and a Histogram, labels by object. */
function promClient(): Record {
  const registry = new client.Registry();
  const requests = new client.Counter({ name: 'r_total', help: 'r', labelNames: ['route', 'status'], registers: [registry] });
  const latency = new client.Histogram({ name: 'd_seconds', help: 'd', labelNames: ['route', 'status_class'], buckets: BUCKETS_S, registers: [registry] });
  return (route, status, ms) => {
    requests.inc({ route, status: String(status) });
    latency.observe({ route, status_class: classOf(status) }, ms / 1000);
  };
}

/** prom-client with label children bound once per (route, status) and cached. */
function promClientBound(): Record {
  const registry = new client.Registry();
  const requests = new client.Counter({ name: 'r_total', help: 'r', labelNames: ['route', 'status'], registers: [registry] });
  const latency = new client.Histogram({ name: 'd_seconds', help: 'd', labelNames: ['route', 'status_class'], buckets: BUCKETS_S, registers: [registry] });
  const bound = new Map<string, Map<number, { inc: () => void; observe: (v: number) => void }>>();
  return (route, status, ms) => {
    let byStatus = bound.get(route);
    if (!byStatus) bound.set(route, (byStatus = new Map()));
    let b = byStatus.get(status);
    if (!b) {
      const c = requests.labels(route, String(status));
      const h = latency.labels(route, classOf(status));
      b = { inc: () => c.inc(), observe: (v) => h.observe(v) };
      byStatus.set(status, b);
    }
    b.inc();
    b.observe(ms / 1000);
  };
}

/** For scale: one prom-client Counter.inc with one label, what a business event (an order, a refund) costs. */
function promClientEventCounter(): Record {
  const registry = new client.Registry();
  const events = new client.Counter({ name: 'e_total', help: 'e', labelNames: ['reason'], registers: [registry] });
  return (route) => events.inc({ reason: route });
}

/** By hand, the new conventions: series found by route then status (no string built), buckets by binary search. */
function byHand(): Record {
  const series = new Map<string, Map<number, { count: number; sum: number; buckets: Float64Array }>>();
  return (route, status, ms) => {
    let byStatus = series.get(route);
    if (!byStatus) series.set(route, (byStatus = new Map()));
    let s = byStatus.get(status);
    if (!s) byStatus.set(status, (s = { count: 0, sum: 0, buckets: new Float64Array(BUCKETS_S.length + 1) }));
    const v = ms / 1000;
    s.count++;
    s.sum += v;
    let lo = 0;
    let hi = BUCKETS_S.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v <= BUCKETS_S[mid]!) hi = mid;
      else lo = mid + 1;
    }
    s.buckets[lo]!++;
  };
}

function time(record: Record): number {
  for (let i = 0; i < 50_000; i++) { const r = mix[i & 4095]!; record(r.route, r.status, r.ms); }
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) { const r = mix[i & 4095]!; record(r.route, r.status, r.ms); }
  return Number(process.hrtime.bigint() - t) / N;
}

const ways: [string, () => Record][] = [
  ['before (hand, string key)', before], ['prom-client', promClient], ['prom-client, bound labels', promClientBound],
  ['by hand, new conventions', byHand], ['one Counter.inc (an event)', promClientEventCounter],
];
const results = new Map<string, number[]>(ways.map(([name]) => [name, []]));
for (let round = 0; round < ROUNDS; round++) for (const [name, make] of ways) results.get(name)!.push(time(make()));
for (const [name, ns] of results) {
  const sorted = [...ns].sort((a, b) => a - b);
  console.log(`${name.padEnd(30)} median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ns/op  (rounds: ${ns.map((x) => x.toFixed(0)).join(', ')})`);
}
