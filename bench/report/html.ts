// The human report: one self-contained HTML page with the tables and, per scenario,
// throughput and latency over time as inline SVG.
import type { ScenarioResult } from '../context.js';
import type { KindStats } from '../load.js';
import type { BenchResult } from '../result.js';
import { lineChart, type Series } from './svg.js';

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function kindTable(s: ScenarioResult): string {
  const rows = [...Object.entries(s.kinds), ...Object.entries(s.groups).map(([g, k]) => [g.toUpperCase(), k] as [string, KindStats])];
  const body = rows.map(([name, k]) => {
    const non2xx = Object.entries(k.status).filter(([c]) => !c.startsWith('2')).map(([c, n]) => `${c}: ${n}`).join(', ') || '-';
    const codes = Object.entries(k.codes).map(([c, n]) => `${c}: ${n}`).join(', ') || '-';
    return `<tr><td>${esc(name)}</td><td>${k.requests}</td><td>${Math.round(k.rps)}</td><td>${Math.round(k.ok_rps)}</td><td>${k.latency.p50_ms}</td>` +
      `<td>${k.latency.p95_ms}</td><td>${k.latency.p99_ms}</td><td>${k.latency.max_ms}</td><td>${esc(non2xx)}</td><td>${esc(codes)}</td></tr>`;
  }).join('');
  return `<table><tr><th>kind</th><th>requests</th><th>req/s</th><th>2xx/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>non-2xx</th><th>error codes</th></tr>${body}</table>`;
}

function instanceTable(s: ScenarioResult): string {
  const body = s.instances.map((i) => `<tr><td>${esc(i.title)}</td><td>${i.connections}</td><td>${i.requests}</td><td>${i.rps}</td><td>${i.latency_ms.p50}</td>` +
    `<td>${i.latency_ms.p97_5}</td><td>${i.latency_ms.p99}</td><td>${i.latency_ms.max}</td><td>${i.errors}</td><td>${i.timeouts}</td></tr>`).join('');
  return `<p>autocannon's own view (HDR histograms, all statuses):</p><table><tr><th>instance</th><th>connections</th><th>requests</th><th>req/s</th>` +
    `<th>p50</th><th>p97.5</th><th>p99</th><th>max</th><th>errors</th><th>timeouts</th></tr>${body}</table>`;
}

function charts(s: ScenarioResult): string {
  const kinds = Object.keys(s.kinds);
  const pts = (kind: string, f: 'rps' | 'p50_ms' | 'p99_ms'): [number, number][] =>
    s.timeline.filter((t) => t.kinds[kind]).map((t) => [t.t_s, t.kinds[kind]![f]]);
  const rps: Series[] = kinds.map((k) => ({ name: k, points: pts(k, 'rps') }));
  const lat: Series[] = kinds.flatMap((k) => [{ name: `${k} p50`, points: pts(k, 'p50_ms') }, { name: `${k} p99`, points: pts(k, 'p99_ms') }]);
  const shards = s.pg[0]?.shards.map((_, i) => i) ?? [];
  const commits: Series[] = shards.map((i) => ({ name: `shard ${i}`, points: s.pg.map((p) => [p.t_s, p.shards[i]!.commits_per_s] as [number, number]) }));
  const waits: Series[] = shards.flatMap((i) => [
    { name: `shard ${i} lock waits`, points: s.pg.map((p) => [p.t_s, p.shards[i]!.lock_waits] as [number, number]) },
    { name: `shard ${i} active`, points: s.pg.map((p) => [p.t_s, p.shards[i]!.active] as [number, number]) },
  ]);
  const pg = shards.length ? lineChart(`${s.name}: postgres commits`, 'commits/s', commits) + lineChart(`${s.name}: postgres backends`, 'backends', waits) : '';
  return `<div class="charts">${lineChart(`${s.name}: throughput`, 'responses/s', rps)}${lineChart(`${s.name}: latency (log scale)`, 'ms', lat, { log: true })}${pg}</div>`;
}

/** The reads scenario's halves side by side; a half not measured says why. */
function readsTables(r: BenchResult): string {
  const s = r.summary.reads;
  if (!s) return '';
  const skipped = (why: string | null, cols: number) => `<td colspan="${cols}">${esc(why ?? 'not measured')}</td>`;
  const cache = (name: string, h: typeof s.cache_off, why: string | null) => `<tr><td>${name}</td>` + (h
    ? `<td>${h.reads_ok_per_s}</td><td>${h.reads_p50_ms}</td><td>${h.reads_p99_ms}</td><td>${h.reads_non2xx}</td><td>${h.holds_per_s}</td><td>${h.holds_p99_ms}</td><td>${h.errors} / ${h.timeouts}</td>`
    : skipped(why, 7)) + '</tr>';
  const gate = (name: string, h: typeof s.gate_off, why: string | null) => `<tr><td>${name}</td>` + (h
    ? `<td>${h.sold_out_per_s}</td><td>${h.p50_ms}</td><td>${h.p99_ms}</td><td>${h.non_409}</td><td>${h.errors} / ${h.timeouts}</td>`
    : skipped(why, 5)) + '</tr>';
  return `<h3>reads: item cache on vs off (on/off ${r.summary.ratios.reads_cache_on_vs_off ?? 'n/a'})</h3><table><tr><th></th><th>reads 2xx/s</th><th>p50 ms</th><th>p99 ms</th>` +
    `<th>non-2xx reads</th><th>holds/s</th><th>holds p99 ms</th><th>errors / timeouts</th></tr>${cache('cache on', s.cache_on, null)}${cache('cache off', s.cache_off, s.cache_off_skipped)}</table>` +
    `<h3>reads: sold-out gate on vs off (on/off ${r.summary.ratios.sold_out_gate_on_vs_off ?? 'n/a'})</h3><table><tr><th></th><th>sold_out/s</th><th>p50 ms</th><th>p99 ms</th>` +
    `<th>non-409</th><th>errors / timeouts</th></tr>${gate('gate on', s.gate_on, null)}${gate('gate off', s.gate_off, s.gate_off_skipped)}</table>` +
    `<p class="${s.hot_not_oversold ? 'good' : 'bad'}">hot item ${s.hot_not_oversold ? 'not oversold' : 'OVERSOLD'} (checked in SQL)</p>`;
}

function scenarioSection(s: ScenarioResult): string {
  const extra = `<details><summary>details</summary><pre>${esc(JSON.stringify(s.extra, null, 2))}</pre></details>`;
  const v = s.violations.length ? `<p class="bad">${s.violations.map(esc).join('<br>')}</p>` : '';
  return `<h2>${esc(s.name)}</h2><p>${s.connections} connections, ${s.duration_s} s, started ${esc(s.started_at)}</p>${v}${kindTable(s)}${instanceTable(s)}${charts(s)}${extra}`;
}

export function html(r: BenchResult): string {
  const targets = Object.entries(r.summary.targets).map(([n, t]) =>
    `<tr><td>${esc(n)}</td><td>${esc(t.goal)}</td><td>${esc(t.actual)}</td><td class="${t.met ? 'good' : t.met === false ? 'bad' : ''}">${t.met === null ? 'n/a' : t.met ? 'met' : 'not met'}</td></tr>`).join('');
  const ratios = Object.entries(r.summary.ratios).map(([n, v]) => `<tr><td>${esc(n)}</td><td>${v ?? 'n/a'}</td></tr>`).join('');
  const inv = r.invariants
    ? r.invariants.checks.map((c) => `<tr><td>${c.shard}</td><td>${esc(c.name)}</td><td class="${c.bad ? 'bad' : 'good'}">${c.ok ? 'ok' : `${c.bad} bad rows of this run, ${c.foreign} foreign`}</td></tr>`).join('')
    : '<tr><td colspan="3">not checked</td></tr>';
  return `<!doctype html><html><head><meta charset="utf-8"><title>Black Friday bench ${esc(r.started_at)}</title><style>
body{font-family:sans-serif;margin:24px;max-width:1500px;color:#222}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}td:first-child,th:first-child{text-align:left}
.good{color:#080}.bad{color:#b00;font-weight:bold}.charts{display:flex;flex-wrap:wrap;gap:12px}pre{font-size:12px;background:#f6f6f6;padding:8px}
</style></head><body>
<h1>Black Friday bench ${r.ok ? '<span class="good">OK</span>' : '<span class="bad">FAILED</span>'}</h1>
<p>${esc(r.started_at)} to ${esc(r.finished_at)}; engine ${esc(r.engine.url)} (${r.engine.own ? `own, ${r.engine.workers} workers` : 'external'});
machine ${r.machine.cpus} x ${esc(r.machine.cpu_model)}, ${r.machine.mem_gb} GB, node ${esc(r.machine.node)}, load average before ${esc(r.machine.loadavg_before.join(' '))}</p>
${r.failures.length ? `<p class="bad">${r.failures.map(esc).join('<br>')}</p>` : ''}
${r.summary.noise.other_cores_max >= 0.3 ? `<p class="bad">Other processes used up to ${r.summary.noise.other_cores_max} cores during this run: absolute numbers are not representative; compare the ratios, or rerun on a quiet machine.</p>` : ''}
<h2>Summary</h2><table><tr><th>target</th><th>goal</th><th>this run</th><th></th></tr>${targets}</table>
<table><tr><th>ratio (same run)</th><th>value</th></tr>${ratios}</table>
${readsTables(r)}
${Object.values(r.scenarios).map(scenarioSection).join('\n')}
<h2>Invariants</h2><table><tr><th>shard</th><th>check</th><th>result</th></tr>${inv}</table>
${r.invariants?.violations.length ? `<p class="bad">${r.invariants.violations.map(esc).join('<br>')}</p>` : ''}
${r.invariants?.foreign.length ? `<p>Foreign (rows this run never touched; other clients of the shared stack):<br>${r.invariants.foreign.map(esc).join('<br>')}</p>` : ''}
${r.cpu_profiles?.length ? `<h2>Engine CPU profiles (--cpu-prof)</h2>${r.cpu_profiles.map((p) => `<h3>${esc(p.file)}: ${p.total_ms} ms sampled, idle ${(p.idle_share * 100).toFixed(1)}%</h3><table><tr><th>function (self time)</th><th>ms</th><th>share of busy</th></tr>${p.top_functions.map((h) => `<tr><td>${esc(h.name)}</td><td>${h.self_ms}</td><td>${(h.share * 100).toFixed(1)}%</td></tr>`).join('')}</table>`).join('')}` : ''}
<h2>Flags</h2><pre>${esc(JSON.stringify(r.flags, null, 2))}</pre>
</body></html>`;
}
