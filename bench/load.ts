// Drives autocannon instances and keeps the per-kind view autocannon does not:
// every response is attributed to the kind its request set in the connection's
// context (item read, search, order, payment...), into a latency histogram per kind
// for the whole run and per second for the timeline.
import autocannon, { type Client, type RequestSpec, type Result } from 'autocannon';
import { Hist, type LatencySummary } from './hist.js';

interface Acc { n: number; hist: Hist; status: Map<number, number>; codes: Map<string, number> }
const newAcc = (): Acc => ({ n: 0, hist: new Hist(), status: new Map(), codes: new Map() });

export interface KindSecond { rps: number; p50_ms: number; p99_ms: number; non2xx: number }
export interface Tick { t_s: number; kinds: Record<string, KindSecond> }

export interface KindStats {
  requests: number; rps: number; ok: number; ok_rps: number; latency: LatencySummary;
  status: Record<string, number>; codes: Record<string, number>;
}

/** A cap on timeline length: one point a second for at most an hour. */
const MAX_TICKS = 3600;

export class Recorder {
  private readonly total = new Map<string, Acc>();
  private second = new Map<string, Acc>();
  readonly timeline: Tick[] = [];
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private lastTick = 0;
  private stoppedAt = 0;

  start(): void {
    this.startedAt = this.lastTick = performance.now();
    this.timer = setInterval(() => this.roll(), 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.roll();
    this.stoppedAt = performance.now();
  }

  get seconds(): number {
    return ((this.stoppedAt || performance.now()) - this.startedAt) / 1000;
  }

  record(kind: string, status: number, ms: number, code?: string): void {
    for (const map of [this.total, this.second]) {
      let a = map.get(kind);
      if (!a) map.set(kind, (a = newAcc()));
      a.n++;
      a.hist.record(ms);
      a.status.set(status, (a.status.get(status) ?? 0) + 1);
      if (code) a.codes.set(code, (a.codes.get(code) ?? 0) + 1);
    }
  }

  private roll(): void {
    const now = performance.now();
    const dt = (now - this.lastTick) / 1000;
    if (dt < 0.2 && this.second.size === 0) return;
    this.lastTick = now;
    const kinds: Record<string, KindSecond> = {};
    for (const [k, a] of this.second) {
      let non2xx = 0;
      for (const [s, n] of a.status) if (s < 200 || s > 299) non2xx += n;
      kinds[k] = { rps: Math.round(a.n / Math.max(dt, 0.001)), p50_ms: round(a.hist.quantileMs(0.5)), p99_ms: round(a.hist.quantileMs(0.99)), non2xx };
    }
    if (this.timeline.length < MAX_TICKS) this.timeline.push({ t_s: round((now - this.startedAt) / 1000), kinds });
    this.second = new Map();
  }

  kinds(): string[] { return [...this.total.keys()]; }

  stats(kinds: string[] = this.kinds()): KindStats {
    const merged = newAcc();
    for (const k of kinds) {
      const a = this.total.get(k);
      if (!a) continue;
      merged.n += a.n;
      merged.hist.add(a.hist);
      for (const [s, n] of a.status) merged.status.set(s, (merged.status.get(s) ?? 0) + n);
      for (const [c, n] of a.codes) merged.codes.set(c, (merged.codes.get(c) ?? 0) + n);
    }
    let ok = 0;
    for (const [s, n] of merged.status) if (s >= 200 && s <= 299) ok += n;
    const secs = Math.max(this.seconds, 0.001);
    return {
      requests: merged.n, rps: round(merged.n / secs), ok, ok_rps: round(ok / secs), latency: merged.hist.summary(),
      status: Object.fromEntries([...merged.status].sort((a, b) => a[0] - b[0]).map(([s, n]) => [String(s), n])),
      codes: Object.fromEntries(merged.codes),
    };
  }

  count(kind: string, status: number): number {
    return this.total.get(kind)?.status.get(status) ?? 0;
  }
}

export const round = (v: number) => Math.round(v * 100) / 100;

/** Answers with a 5xx status. */
export const count5xx = (k: KindStats) => Object.entries(k.status).filter(([c]) => Number(c) >= 500).reduce((n, [, c]) => n + c, 0);

export interface InstanceSummary {
  title: string; connections: number; duration_s: number; requests: number; rps: number;
  latency_ms: { mean: number; p50: number; p97_5: number; p99: number; max: number };
  errors: number; timeouts: number; non2xx: number; status: Record<string, number>;
}

export function summarize(title: string, r: Result): InstanceSummary {
  const total = Object.values(r.statusCodeStats).reduce((s, v) => s + v.count, 0);
  return {
    title, connections: r.connections, duration_s: r.duration, requests: total, rps: round(total / Math.max(r.duration, 0.001)),
    latency_ms: { mean: round(r.latency.mean), p50: r.latency.p50, p97_5: r.latency.p97_5, p99: r.latency.p99, max: r.latency.max },
    errors: r.errors, timeouts: r.timeouts, non2xx: r.non2xx,
    status: Object.fromEntries(Object.entries(r.statusCodeStats).map(([s, v]) => [s, v.count])),
  };
}

export interface CannonSpec {
  title: string; url: string; connections: number; duration_s: number; timeout_s: number;
  requests: RequestSpec[]; defaultKind: string;
  /** Requests per second over all connections (open loop); absent: as fast as answered. */
  overall_rate?: number;
}

/**
 * One autocannon instance; each response lands in the recorder under the kind its
 * request left in the context (`ctx.kind`), with the error code onResponse parsed
 * (`ctx.code`) for non-2xx answers.
 */
export async function cannon(spec: CannonSpec, rec: Recorder): Promise<InstanceSummary> {
  const inst = autocannon({
    url: spec.url, title: spec.title, connections: spec.connections, duration: spec.duration_s, timeout: spec.timeout_s,
    requests: spec.requests, ...(spec.overall_rate ? { overallRate: spec.overall_rate } : {}),
  });
  inst.on('response', (client: Client, status: number, _bytes: number, ms: number) => {
    const ctx = client.requestIterator.context;
    rec.record((ctx.kind as string | undefined) ?? spec.defaultKind, status, ms, ctx.code as string | undefined);
    ctx.code = undefined;
  });
  const result = await inst;
  return summarize(spec.title, result);
}

/** An `onResponse` that keeps the answer's error code for the recorder, and nothing else. */
export const keepErrorCode = (status: number, body: string, ctx: Record<string, unknown>): void => { ctx.code = errorCode(status, body); };

/** The `error.code` of an engine error body, for telling sold_out from other 409s. */
export function errorCode(status: number, body: string): string | undefined {
  if (status < 400) return undefined;
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : `http_${status}`;
  } catch {
    return `http_${status}`;
  }
}
