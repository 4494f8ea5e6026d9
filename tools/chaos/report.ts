// The table a run prints, one row per scenario.
import type { Result } from './scenario.js';

const HEAD = ['scenario', 'result', 'load held', 'faults injected', 'lost', 'oversold', 'double-charged', 'other broken', 'key latencies'];

function row(r: Result): string[] {
  return [
    r.scenario, r.ok ? 'PASS' : 'FAIL',
    `${r.load.requests} req, ${r.load.rps}/s, ${r.load.clients} clients, ${r.load.expected_pct}% as expected`,
    r.faults.what, String(r.lost), String(r.oversold), String(r.double_charged), String(r.other_broken), r.key_latencies,
  ];
}

export function table(results: Result[]): string {
  const rows = [HEAD, ...results.map(row)];
  const widths = HEAD.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const out = [line(HEAD), sep, ...rows.slice(1).map(line)];
  for (const r of results) {
    for (const f of r.failures) out.push(`  ${r.scenario}: FAILED ${f}`);
    for (const c of r.checks_broken) out.push(`  ${r.scenario}: BROKEN ${c}`);
  }
  return out.join('\n');
}
