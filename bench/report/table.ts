// The compact stdout view of a run: one row per request kind, then ceilings, ratios,
// targets and invariants.
import type { InvariantReport } from '../../tools/lib/invariants.js';
import type { ScenarioResult } from '../context.js';
import type { KindStats } from '../load.js';
import type { PgbenchResult } from '../pgbench.js';
import type { KindCost } from '../scenarios/costs.js';
import { coreSamples, NOISY_CORES, type Summary } from './summary.js';

const HEAD = ['scenario', 'kind', 'req/s', '2xx/s', 'p50', 'p95', 'p99', 'max', 'non-2xx by status (code)'];

function non2xx(k: KindStats): string {
  const parts = Object.entries(k.status).filter(([s]) => !s.startsWith('2')).map(([s, n]) => `${s}:${n}`);
  const codes = Object.entries(k.codes).map(([c, n]) => `${c}:${n}`);
  return parts.length ? `${parts.join(' ')}${codes.length ? ` (${codes.join(' ')})` : ''}` : '-';
}

const ms = (v: number) => (v >= 100 ? `${Math.round(v)}` : v.toFixed(1));

function row(scenario: string, kind: string, k: KindStats): string[] {
  return [scenario, kind, String(Math.round(k.rps)), String(Math.round(k.ok_rps)), ms(k.latency.p50_ms), ms(k.latency.p95_ms), ms(k.latency.p99_ms), ms(k.latency.max_ms), non2xx(k)];
}

function render(rows: string[][]): string {
  const widths = HEAD.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i >= 2 && i <= 7 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(HEAD), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

function readsLines(summary: Summary, rd: ScenarioResult | undefined): string[] {
  const s = summary.reads;
  if (!s || !rd) return [];
  const cache = (h: NonNullable<typeof s.cache_off>) => `${h.reads_ok_per_s} reads/s (p50 ${ms(h.reads_p50_ms)}, p99 ${ms(h.reads_p99_ms)} ms), ${h.holds_per_s} holds/s`;
  const gate = (h: NonNullable<typeof s.gate_off>) => `${h.sold_out_per_s} sold_out/s (p50 ${ms(h.p50_ms)}, p99 ${ms(h.p99_ms)} ms), ${h.non_409} non-409`;
  const hot = (rd.extra.gate as { hot: Record<string, unknown> }).hot;
  return [
    `reads: cache on: ${cache(s.cache_on)}; cache off: ${s.cache_off ? cache(s.cache_off) : s.cache_off_skipped}`,
    `reads: sold-out gate on: ${gate(s.gate_on)}; gate off: ${s.gate_off ? gate(s.gate_off) : s.gate_off_skipped}`,
    `reads: hot item stock ${String(hot.stock)}: held ${String(hot.held)} + sold ${String(hot.sold)}, available ${String(hot.available)}, ` +
      `live orders carry ${String(hot.order_units)}, ${String(hot.storm_201)} storm holds answered 201 -> ${hot.not_oversold ? 'not oversold' : 'OVERSOLD'}`,
    ...((rd.extra.notes as string[]).filter((n) => n !== s.cache_off_skipped && n !== s.gate_off_skipped).map((n) => `reads: note: ${n}`)),
  ];
}

export function table(scenarios: Record<string, ScenarioResult>, summary: Summary, inv: InvariantReport | null, failures: string[]): string {
  const rows: string[][] = [HEAD];
  for (const s of Object.values(scenarios)) {
    let first = true;
    const label = () => { const l = first ? s.name : ''; first = false; return l; };
    for (const [kind, k] of Object.entries(s.kinds)) rows.push(row(label(), kind, k));
    for (const [g, k] of Object.entries(s.groups)) if (Object.keys(s.kinds).length > 1 || !s.kinds[g]) rows.push(row(label(), g.toUpperCase(), k));
  }
  const out = [render(rows), ''];
  out.push('latency in ms (the load generator shares the 2 cores with the engine: latencies include its queueing)');
  for (const s of Object.values(scenarios)) {
    const errs = s.instances.map((i) => `${i.title}: ${i.connections} conns, ${i.errors} errors, ${i.timeouts} timeouts`).join('; ');
    out.push(`${s.name}: ${s.duration_s} s; ${errs}`);
  }
  const fmtCores = (c: unknown) => Object.entries((c ?? {}) as Record<string, number>).filter(([, v]) => v > 0).map(([g, v]) => `${g} ${v}`).join(', ');
  for (const s of Object.values(scenarios)) {
    const parts = coreSamples(s);
    if (parts.length) out.push(`cores used: ${parts.map(([part, c]) => `${s.name}${part ? ` ${part}` : ''}: ${fmtCores(c)}`).join('; ')}`);
  }
  if (summary.noise.other_cores_max >= NOISY_CORES) {
    out.push(`WARNING: other processes on this machine used up to ${summary.noise.other_cores_max} cores during the run; absolute numbers are not representative, compare ratios or rerun when it is quiet`);
  }
  const bf = scenarios['black-friday'];
  if (bf) {
    const pay = bf.extra.payments as Record<string, unknown>;
    out.push(`black-friday: achieved mix ${summary.black_friday?.achieved_mix} (reads:writes), orders created ${summary.black_friday?.orders_created_per_s}/s, ` +
      (pay.available === false ? `payments not exercised (${String(pay.reason)})` : `payments ${summary.black_friday?.payments_per_s}/s, gateway completed ${String(pay.completed)} (failed ${String(pay.failed)}, left ${String(pay.left)})`));
    const cost = summary.black_friday?.cpu_ms_per_request;
    if (cost) out.push(`black-friday: CPU per answered request: engine ${cost.engine} ms, postgres ${cost.postgres} ms, redis ${cost.redis} ms, load generators ${cost.load_generators} ms`);
    const eng = bf.extra.engine as { loop_utilization_mean: number; loop_delay_p99_ms_max: number; shards: { shard: number; round_trips_per_s: number; checkout_wait_ms: number; query_ms: number }[] } | null;
    if (eng) {
      out.push(`black-friday: engine event loop busy ${eng.loop_utilization_mean} (mean of workers), timers up to ${eng.loop_delay_p99_ms_max} ms late (p99); ` +
        `per shard round trips/s, wait for a connection, query time: ${eng.shards.map((x) => `${x.shard}: ${x.round_trips_per_s}/s, ${x.checkout_wait_ms} ms, ${x.query_ms} ms`).join('; ')}`);
    }
    const rt = bf.extra.round_trips_per_request as Record<string, number | null> | null;
    if (rt) out.push(`black-friday: database round trips per request (alone, idle engine): ${Object.entries(rt).map(([k, v]) => `${k} ${v ?? 'n/a'}`).join(', ')}`);
  }
  const fs = scenarios['flash-sale'];
  if (fs) {
    const hot = fs.extra.hot as Record<string, unknown>;
    out.push(`flash-sale: ${String(fs.extra.holds_per_s)} holds/s, ${String(fs.extra.sold_out_per_s)} sold_out/s; hot item stock ${String(hot.stock)}: ` +
      `held ${String(hot.held)} + sold ${String(hot.sold)}, available ${String(hot.available)}, live orders carry ${String(hot.order_units)} -> ` +
      `${hot.exactly_stock_held ? 'exactly stock held' : 'NOT sold out exactly'}; ${String(hot.answered_201)} answered 201` +
      `${hot.every_unit_answered_201 ? '' : ` (${String(hot.answered_5xx_or_lost)} hot orders got 5xx or no answer: some of them took a unit)`}`);
  }
  out.push(...readsLines(summary, scenarios.reads));
  const ce = scenarios.ceiling;
  if (ce) {
    const pg = ce.extra.pgbench as PgbenchResult;
    out.push(`ceiling: pgbench hold txn ${pg.per_shard.map((s) => `shard${s.shard} ${Math.round(s.tps)}${s.error ? ' (ERROR)' : ''}`).join(' + ')} = ${pg.tps_sum} tps ` +
      `(${pg.clients_per_shard} clients/shard); one row: ${summary.ceiling?.single_row_tps ?? 'n/a'} tps; bare uWS ${summary.ceiling?.uws_rps} req/s`);
    out.push(generatorLine(ce.extra.load_generators as Generators | undefined));
  }
  out.push(...costLines(scenarios.costs));
  const r = summary.ratios;
  out.push(`ratios: orders/pgbench ${r.orders_vs_pgbench ?? 'n/a'}, flash holds/pgbench ${r.flash_holds_vs_pgbench ?? 'n/a'}, flash holds/one-row pgbench ${r.flash_holds_vs_single_row ?? 'n/a'}, reads/bare-uWS ${r.reads_vs_uws ?? 'n/a'}` +
    (summary.reads ? `, item reads cache on/off ${r.reads_cache_on_vs_off ?? 'n/a'}, sold_out gate on/off ${r.sold_out_gate_on_vs_off ?? 'n/a'}` : ''));
  for (const [name, t] of Object.entries(summary.targets)) out.push(`target ${name}: ${t.goal} -> ${t.actual} [${t.met === null ? 'n/a' : t.met ? 'met' : 'not met'}]`);
  if (inv) {
    out.push(inv.ok ? `invariants: OK (${inv.checks.length} checks over ${new Set(inv.checks.map((c) => c.shard)).size} shards)` : 'invariants: VIOLATED');
    for (const v of inv.violations) out.push(`  ! ${v}`);
    if (inv.foreign.length && !inv.strict) out.push(`  (not failed: broken rows of other clients on this shared stack, see the report; --strict-invariants fails on them)`);
    for (const f of inv.foreign) out.push(`  ~ ${f}`);
  } else {
    out.push('invariants: NOT CHECKED');
  }
  for (const f of failures) out.push(`  ! ${f}`);
  return out.join('\n');
}

interface GenFigures { rps: number; cpu_ms_per_request: number | null; cores: number | null; server_cores: number | null }
interface EngineReads { rps?: number; p99_ms?: number | null; errors?: number; error?: string; cpu_ms_per_read?: Record<string, number | null> }
interface Generators { autocannon: GenFigures; wrk: GenFigures | null; wrk_error: string | null; autocannon_cost_vs_wrk: number | null; engine_item_reads_wrk?: EngineReads }

function generatorLine(g: Generators | undefined): string {
  if (!g) return 'load generators: not compared';
  const fig = (name: string, f: GenFigures) => `${name} ${f.rps} req/s at ${f.cpu_ms_per_request ?? 'n/a'} ms CPU/request (${f.cores ?? 'n/a'} cores; bare uWS ${f.server_cores ?? 'n/a'} cores)`;
  if (!g.wrk) return `load generators on bare uWS: ${fig('autocannon', g.autocannon)}; wrk not run (${g.wrk_error ?? 'unknown'})`;
  const e = g.engine_item_reads_wrk;
  const cpu = e?.cpu_ms_per_read ? Object.entries(e.cpu_ms_per_read).map(([k, v]) => `${k} ${v ?? 'n/a'}`).join(', ') : '';
  const engine = !e ? '' : e.error ? `; engine item reads from wrk: ${e.error}` : `\nengine item reads from wrk: ${e.rps} req/s, p99 ${e.p99_ms ?? 'n/a'} ms, ${e.errors} errors; CPU ms per read: ${cpu}`;
  return `load generators on bare uWS: ${fig('autocannon', g.autocannon)}; ${fig('wrk', g.wrk)}; autocannon costs ${g.autocannon_cost_vs_wrk ?? 'n/a'}x wrk per request${engine}`;
}

/**
 * The seed's offered load priced with each kind's measured cost: 2,500 reads/s (item 60%,
 * search 20%, own order 20%) and 500 orders/s (half of them two items, as black-friday sends).
 */
const SEED_RATES: Record<string, number> = { item: 1500, search: 500, status: 500, order_keyed: 250, order_two_items_keyed: 250 };

function costLines(s: ScenarioResult | undefined): string[] {
  if (!s) return [];
  if (s.extra.skipped) return [`costs: not measured (${String(s.extra.skipped)})`];
  const per = s.extra.per_kind as Record<string, KindCost>;
  const out = [`costs: each kind alone from wrk over ${s.connections} connections; CPU ms per answered request (engine / postgres / redis / wrk):`];
  for (const [kind, c] of Object.entries(per)) {
    out.push(`  ${kind.padEnd(22)} ${String(c.rps).padStart(6)} req/s  p99 ${String(c.p99_ms ?? 'n/a').padStart(7)} ms  ${c.errors} non-2xx  ` +
      `${c.cpu_ms.engine ?? 'n/a'} / ${c.cpu_ms.postgres ?? 'n/a'} / ${c.cpu_ms.redis ?? 'n/a'} / ${c.cpu_ms.wrk ?? 'n/a'}`);
  }
  const priced = Object.entries(SEED_RATES).map(([k, rate]) => {
    const c = per[k]?.cpu_ms;
    return c ? rate * ((c.engine ?? 0) + (c.postgres ?? 0) + (c.redis ?? 0)) / 1000 : null;
  });
  if (priced.every((v) => v !== null)) {
    out.push(`costs: the seed load (2,500 reads + 500 orders/s, payments not included) at these prices needs ${(priced as number[]).reduce((a, b) => a + b, 0).toFixed(2)} cores of engine + postgres + redis`);
  }
  return out;
}
