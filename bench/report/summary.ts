// The headline numbers of a run, as ratios against the ceiling measured in the same
// run, and where they stand against the targets of the issue.
import type { ScenarioResult } from '../context.js';
import { count5xx } from '../load.js';
import type { PgbenchResult } from '../pgbench.js';
import type { CacheHalf, GateHalf } from '../scenarios/reads.js';

export const TARGETS = {
  seed: { reads_per_s: 2500, writes_per_s: 500, connections: 3000 },
  stretch: { reads_per_s: 10_000, writes_per_s: 2000, p99_ms: 100, errors: 0, holds_vs_pgbench: 0.5 },
};

export interface Summary {
  black_friday: null | {
    reads_ok_per_s: number; writes_ok_per_s: number; orders_created_per_s: number; payments_per_s: number;
    reads_p99_ms: number; writes_p99_ms: number; errors: number; timeouts: number; server_errors: number; achieved_mix: string;
    /** CPU milliseconds per answered request (all kinds), from the cores each group used: what a machine of N cores would serve. */
    cpu_ms_per_request: { engine: number; postgres: number; redis: number; load_generators: number } | null;
  };
  flash_sale: null | { holds_per_s: number; sold_out_per_s: number; p50_ms: number; p99_ms: number; hot_verified: boolean };
  /** The reads scenario: each half, and why a half was not measured (null: it was). */
  reads: null | {
    cache_on: CacheHalf; cache_off: CacheHalf | null; cache_off_skipped: string | null;
    gate_on: GateHalf; gate_off: GateHalf | null; gate_off_skipped: string | null; hot_not_oversold: boolean;
  };
  ceiling: null | { pgbench_tps: number; uws_rps: number; single_row_tps: number | null };
  ratios: {
    orders_vs_pgbench: number | null; flash_holds_vs_pgbench: number | null; reads_vs_uws: number | null;
    /**
     * Flash-sale holds/s over pgbench's one-row ceiling: what group commit buys on a hot row
     * (a hot-item measure when run with --flash-hot-share 1 and a large --flash-stock).
     */
    flash_holds_vs_single_row: number | null;
    /** reads scenario: successful item reads/s with the cache on over off; sold_out answers/s with the gate on over off. */
    reads_cache_on_vs_off: number | null; sold_out_gate_on_vs_off: number | null;
  };
  targets: Record<string, { goal: string; actual: string; met: boolean | null }>;
  /** Cores other processes of the machine took during the scenarios (a shared machine is noisy). */
  noise: { other_cores_max: number; steal_cores_max: number };
}

/** Above this many cores of foreign work the run is flagged as not representative. */
export const NOISY_CORES = 0.3;

type Cores = Record<string, number>;

/**
 * A scenario's `cores_used`: one set of groups, or one per part of it (the ceiling's
 * pgbench and bare uWS runs, the reads scenario's halves), by part name.
 */
export function coreSamples(s: ScenarioResult): [string | null, Cores][] {
  const c = s.extra.cores_used as Record<string, unknown> | null | undefined;
  if (!c) return [];
  if (Object.values(c).every((v) => typeof v === 'number')) return [[null, c as Cores]];
  return Object.entries(c).filter((e): e is [string, Cores] => !!e[1] && typeof e[1] === 'object');
}

function noise(scenarios: ScenarioResult[]): Summary['noise'] {
  const samples = scenarios.flatMap((s) => coreSamples(s).map(([, c]) => c));
  return {
    other_cores_max: Math.max(0, ...samples.map((c) => c.other ?? 0)),
    steal_cores_max: Math.max(0, ...samples.map((c) => c.machine_steal ?? 0)),
  };
}

const r3 = (v: number) => Math.round(v * 1000) / 1000;
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? r3(a / b) : null);

function cpuPerRequest(cores: Record<string, number> | null | undefined, rps: number): { engine: number; postgres: number; redis: number; load_generators: number } | null {
  if (!cores || rps <= 0) return null;
  const ms = (c: number | undefined) => Math.round(((c ?? 0) * 1000 / rps) * 1000) / 1000;
  // autocannon runs in this process; wrk is a child reaped inside the window.
  return { engine: ms(cores.engine), postgres: ms(cores.postgres), redis: ms(cores.redis), load_generators: ms((cores.load_generator ?? 0) + (cores.bench_children ?? 0)) };
}

const serverErrors = (s: ScenarioResult) => Object.values(s.kinds).reduce((n, k) => n + count5xx(k), 0);

export function summarize(scenarios: Record<string, ScenarioResult>): Summary {
  const bf = scenarios['black-friday'];
  const fs = scenarios['flash-sale'];
  const ce = scenarios.ceiling;
  const per = (s: ScenarioResult, n: number) => Math.round(n / Math.max(s.duration_s, 0.001));
  const out: Summary = {
    black_friday: null, flash_sale: null, reads: null, ceiling: null, targets: {}, noise: noise(Object.values(scenarios)),
    ratios: { orders_vs_pgbench: null, flash_holds_vs_pgbench: null, reads_vs_uws: null, flash_holds_vs_single_row: null, reads_cache_on_vs_off: null, sold_out_gate_on_vs_off: null },
  };
  if (bf) {
    const reads = bf.groups.reads!, writes = bf.groups.writes!;
    out.black_friday = {
      reads_ok_per_s: Math.round(reads.ok_rps), writes_ok_per_s: Math.round(writes.ok_rps),
      orders_created_per_s: per(bf, bf.kinds.order?.status['201'] ?? 0),
      payments_per_s: per(bf, Object.entries(bf.kinds.payment?.status ?? {}).filter(([c]) => c.startsWith('2')).reduce((s, [, n]) => s + n, 0)),
      reads_p99_ms: reads.latency.p99_ms, writes_p99_ms: writes.latency.p99_ms,
      errors: bf.instances.reduce((s, i) => s + i.errors, 0), timeouts: bf.instances.reduce((s, i) => s + i.timeouts, 0),
      server_errors: serverErrors(bf),
      achieved_mix: writes.requests ? `${(reads.requests / writes.requests).toFixed(2)}:1` : 'n/a',
      cpu_ms_per_request: cpuPerRequest(bf.extra.cores_used as Record<string, number> | null | undefined, reads.rps + writes.rps),
    };
  }
  if (fs) {
    const hot = fs.extra.hot as { exactly_stock_held: boolean };
    out.flash_sale = {
      holds_per_s: fs.extra.holds_per_s as number, sold_out_per_s: fs.extra.sold_out_per_s as number,
      p50_ms: fs.groups.holds!.latency.p50_ms, p99_ms: fs.groups.holds!.latency.p99_ms, hot_verified: hot.exactly_stock_held,
    };
  }
  out.reads = readsSummary(scenarios.reads);
  if (ce) {
    const one = ce.extra.pgbench_single_row as { tps: number; error: string | null } | undefined;
    out.ceiling = { pgbench_tps: (ce.extra.pgbench as PgbenchResult).tps_sum, uws_rps: Math.round(ce.groups.uws!.ok_rps), single_row_tps: one && !one.error ? one.tps : null };
  }
  out.ratios = {
    orders_vs_pgbench: ratio(out.black_friday?.orders_created_per_s, out.ceiling?.pgbench_tps),
    flash_holds_vs_pgbench: ratio(out.flash_sale?.holds_per_s, out.ceiling?.pgbench_tps),
    reads_vs_uws: ratio(out.black_friday?.reads_ok_per_s, out.ceiling?.uws_rps),
    flash_holds_vs_single_row: ratio(out.flash_sale?.holds_per_s, out.ceiling?.single_row_tps ?? undefined),
    reads_cache_on_vs_off: ratio(out.reads?.cache_on.reads_ok_per_s, out.reads?.cache_off?.reads_ok_per_s),
    sold_out_gate_on_vs_off: ratio(out.reads?.gate_on.sold_out_per_s, out.reads?.gate_off?.sold_out_per_s),
  };
  out.targets = targets(out, bf);
  return out;
}

interface Halves<H> { on: H; off: H | null; off_skipped: string | null }

function readsSummary(rd: ScenarioResult | undefined): Summary['reads'] {
  if (!rd) return null;
  const cache = rd.extra.cache as Halves<CacheHalf>;
  const gate = rd.extra.gate as Halves<GateHalf> & { hot: { not_oversold: boolean } };
  return {
    cache_on: cache.on, cache_off: cache.off, cache_off_skipped: cache.off_skipped,
    gate_on: gate.on, gate_off: gate.off, gate_off_skipped: gate.off_skipped, hot_not_oversold: gate.hot.not_oversold,
  };
}

function targets(s: Summary, bf: ScenarioResult | undefined): Summary['targets'] {
  const t: Summary['targets'] = {};
  const b = s.black_friday;
  const at = bf ? ` at ${bf.connections} connections` : '';
  t.seed = {
    goal: `${TARGETS.seed.reads_per_s} reads/s + ${TARGETS.seed.writes_per_s} writes/s at ${TARGETS.seed.connections} connections`,
    actual: b ? `${b.reads_ok_per_s} reads/s + ${b.writes_ok_per_s} writes/s${at}` : 'not run',
    met: b && bf ? b.reads_ok_per_s >= TARGETS.seed.reads_per_s && b.writes_ok_per_s >= TARGETS.seed.writes_per_s && bf.connections >= TARGETS.seed.connections : null,
  };
  t.stretch_throughput = {
    goal: `${TARGETS.stretch.reads_per_s} reads/s + ${TARGETS.stretch.writes_per_s} writes/s`,
    actual: b ? `${b.reads_ok_per_s} + ${b.writes_ok_per_s}` : 'not run',
    met: b ? b.reads_ok_per_s >= TARGETS.stretch.reads_per_s && b.writes_ok_per_s >= TARGETS.stretch.writes_per_s : null,
  };
  t.stretch_p99 = {
    goal: `p99 < ${TARGETS.stretch.p99_ms} ms (reads and writes)`,
    actual: b ? `reads ${b.reads_p99_ms} ms, writes ${b.writes_p99_ms} ms` : 'not run',
    met: b ? Math.max(b.reads_p99_ms, b.writes_p99_ms) < TARGETS.stretch.p99_ms : null,
  };
  t.stretch_errors = {
    goal: 'zero errors (connection errors, timeouts, 5xx)',
    actual: b ? `${b.errors} errors (${b.timeouts} timeouts), ${b.server_errors} 5xx` : 'not run',
    met: b ? b.errors === 0 && b.server_errors === 0 : null,
  };
  const hv = s.ratios.flash_holds_vs_pgbench ?? s.ratios.orders_vs_pgbench;
  t.stretch_holds = {
    goal: `engine holds/s >= ${TARGETS.stretch.holds_vs_pgbench} x pgbench ceiling`,
    actual: hv === null ? 'not measured' : `flash-sale ${s.ratios.flash_holds_vs_pgbench ?? 'n/a'}, black-friday orders ${s.ratios.orders_vs_pgbench ?? 'n/a'}`,
    met: hv === null ? null : Math.max(s.ratios.flash_holds_vs_pgbench ?? 0, s.ratios.orders_vs_pgbench ?? 0) >= TARGETS.stretch.holds_vs_pgbench,
  };
  return t;
}
