// Counting what clients saw, per label (e.g. "write/shard2/down"): answers by status,
// and latencies kept in a bounded reservoir so a long run cannot grow without limit.
import type { Answer } from '../lib/http.js';

/** Latency samples kept per label; past this, reservoir sampling keeps a fair subset. */
const SAMPLES_MAX = 50_000;

export interface Summary {
  n: number; rps: number; ok: number; statuses: Record<string, number>;
  p50_ms: number; p95_ms: number; p99_ms: number; max_ms: number;
}

class Series {
  n = 0;
  ok = 0;
  maxMs = 0;
  readonly statuses = new Map<string, number>();
  readonly samples: number[] = [];
  firstMs = Infinity;
  lastMs = 0;

  add(status: string, ms: number, ok: boolean): void {
    this.n++;
    if (ok) this.ok++;
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    if (ms > this.maxMs) this.maxMs = ms;
    const now = performance.now();
    if (now < this.firstMs) this.firstMs = now;
    this.lastMs = now;
    if (this.samples.length < SAMPLES_MAX) this.samples.push(ms);
    else {
      const j = Math.floor(Math.random() * this.n);
      if (j < SAMPLES_MAX) this.samples[j] = ms;
    }
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const round = (x: number) => Math.round(x * 10) / 10;

export class Recorder {
  private readonly series = new Map<string, Series>();

  /** One answer under a label; `ok` defaults to 2xx. The status key is e.g. "201", "503", "0:ECONNRESET". */
  record(label: string, r: Pick<Answer, 'status' | 'ms' | 'error'>, ok = r.status >= 200 && r.status < 300): void {
    const key = r.status === 0 ? `0:${r.error ?? 'error'}` : String(r.status);
    let s = this.series.get(label);
    if (!s) this.series.set(label, (s = new Series()));
    s.add(key, r.ms, ok);
  }

  labels(): string[] { return [...this.series.keys()].sort(); }

  /** Summary of every label that matches (all labels when no filter); rps over `seconds` when given. */
  summary(filter: (label: string) => boolean = () => true, seconds?: number): Summary {
    const picked = [...this.series.entries()].filter(([l]) => filter(l)).map(([, s]) => s);
    const statuses: Record<string, number> = {};
    let n = 0, ok = 0, maxMs = 0, first = Infinity, last = 0;
    const samples: number[] = [];
    for (const s of picked) {
      n += s.n;
      ok += s.ok;
      maxMs = Math.max(maxMs, s.maxMs);
      first = Math.min(first, s.firstMs);
      last = Math.max(last, s.lastMs);
      for (const [k, v] of s.statuses) statuses[k] = (statuses[k] ?? 0) + v;
      for (const x of s.samples) samples.push(x);
    }
    samples.sort((a, b) => a - b);
    const span = seconds ?? (n > 1 ? (last - first) / 1000 : 0);
    return {
      n, ok, statuses, rps: span > 0 ? round(n / span) : 0,
      p50_ms: round(percentile(samples, 50)), p95_ms: round(percentile(samples, 95)), p99_ms: round(percentile(samples, 99)), max_ms: round(maxMs),
    };
  }
}

/**
 * Runs `clients` loops of `step` until the deadline or `maxSteps` steps in all, whichever
 * comes first. Every loop is bounded in time and count.
 */
export async function runClients(clients: number, durationMs: number, maxSteps: number, step: (client: number, n: number) => Promise<void>): Promise<number> {
  const deadline = Date.now() + durationMs;
  let steps = 0;
  await Promise.all(Array.from({ length: clients }, async (_, client) => {
    while (Date.now() < deadline && steps < maxSteps) {
      const n = steps++;
      await step(client, n);
    }
  }));
  return steps;
}
