// Requests by route and status, and their latency, recorded by hand on the hot path.
// Measured (bench/micro/metrics-record.ts, this 2-core box): a prom-client Counter.inc
// plus Histogram.observe with labels costs 850-950 ns per request (label objects hashed
// to strings each time), the old hand-written recorder ~100 ns, this one ~50 ns: one series
// per (route, status) found by two Map lookups, one bucket found by binary search. Both
// exported families are derived from those series when scraped:
//   bf_http_requests_total{route,status}                 counter
//   bf_http_request_duration_seconds{route,status_class} histogram (status_class "2xx".."5xx")
import { app, collected, type Sample } from './registry.js';

/** Upper bounds in seconds: 1 ms (a cached read) to 10 s (a request stuck behind a lock). */
export const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Series { count: number; sumS: number;
  /** per bucket, not cumulative; the last one is above every bound */ buckets: Float64Array }

// Module-level on purpose: one process, one set of request series (like the prom-client
// registries); the hot path finds them without an object to carry.
const routes = new Map<string, Map<number, Series>>();

function series(route: string, status: number): Series {
  let byStatus = routes.get(route);
  if (!byStatus) routes.set(route, (byStatus = new Map()));
  let s = byStatus.get(status);
  if (!s) byStatus.set(status, (s = { count: 0, sumS: 0, buckets: new Float64Array(LATENCY_BUCKETS_S.length + 1) }));
  return s;
}

export function observeRequest(route: string, status: number, seconds: number): void {
  const s = series(route, status);
  s.count++;
  s.sumS += seconds;
  let lo = 0;
  let hi = LATENCY_BUCKETS_S.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (seconds <= LATENCY_BUCKETS_S[mid]!) hi = mid;
    else lo = mid + 1;
  }
  s.buckets[lo]!++;
}

/** Counter series that exist (at zero) before their first request, so rate() and alerts see them from the start. */
export function zeroRequests(route: string, statuses: number[]): void {
  for (const status of statuses) series(route, status);
}

function requestSamples(): Sample[] {
  const out: Sample[] = [];
  for (const [route, byStatus] of routes) for (const [status,
    s] of byStatus) out.push({ labels: { route, status: String(status) }, value: s.count });
  return out;
}

function latencySamples(): Sample[] {
  const out: Sample[] = [];
  const name = 'bf_http_request_duration_seconds';
  for (const [route, byStatus] of routes) {
    const classes = new Map<string, Series>();
    for (const [status, s] of byStatus) {
      const cls = `${Math.floor(status / 100)}xx`;
      const c = classes.get(cls) ?? { count: 0, sumS: 0, buckets: new Float64Array(LATENCY_BUCKETS_S.length + 1) };
      c.count += s.count;
      c.sumS += s.sumS;
      for (let i = 0; i < c.buckets.length; i++) c.buckets[i]! += s.buckets[i]!;
      classes.set(cls, c);
    }
    for (const [cls, c] of classes) {
      // Zeroed series stay out of the histogram: its quantiles need no zeros, and they would be most of the text.
      if (c.count === 0) continue;
      let acc = 0;
      LATENCY_BUCKETS_S.forEach((le, i) => {
        acc += c.buckets[i]!;
        out.push({ metricName: `${name}_bucket`, labels: { route, status_class: cls, le }, value: acc });
      });
      out.push({ metricName: `${name}_bucket`, labels: { route, status_class: cls, le: '+Inf' }, value: c.count });
      out.push({ metricName: `${name}_sum`, labels: { route, status_class: cls }, value: c.sumS });
      out.push({ metricName: `${name}_count`, labels: { route, status_class: cls }, value: c.count });
    }
  }
  return out;
}

collected(app, 'bf_http_requests_total', 'HTTP requests answered, by route and status (499: the client hung up first)',
  'counter', requestSamples);
collected(app, 'bf_http_request_duration_seconds',
  'HTTP request latency from the request line to the answer, by route and status class', 'histogram', latencySamples);
