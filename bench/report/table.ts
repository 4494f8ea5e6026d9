// The compact stdout view of a run: one row per request kind, then ceilings, ratios,
// targets and invariants.
import type { ScenarioResult } from '../context.js';
import type { InvariantReport } from '../invariants.js';
import type { KindStats } from '../load.js';
import type { PgbenchResult } from '../pgbench.js';
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
    if (cost) out.push(`black-friday: CPU per answered request: engine ${cost.engine} ms, postgres ${cost.postgres} ms, redis ${cost.redis} ms`);
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
  }
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
