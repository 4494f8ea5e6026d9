// Reads the .cpuprofile files `--cpu-prof` leaves (one per engine process) and
// summarises where the CPU went: the top functions and files by self time. This is
// the evidence the report gives for an engine bottleneck.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface Hot { name: string; self_ms: number; share: number }
export interface ProfileSummary { file: string; total_ms: number; idle_share: number; top_functions: Hot[]; top_files: Hot[] }

const TOP = 25;

function where(url: string, root: string): string {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  if (u.startsWith('node:')) return u;
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  return path.relative(root, u);
}

export function summarizeProfile(file: string, root: string): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]!);
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    if (!node) continue;
    total += dt;
    const f = node.callFrame;
    if (f.functionName === '(idle)') { idle += dt; continue; }
    const file = where(f.url, root);
    const key = `${f.functionName || '(anonymous)'} ${file}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + dt);
    files.set(file, (files.get(file) ?? 0) + dt);
  }
  const top = (m: Map<string, number>): Hot[] => [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP)
    .map(([name, ms]) => ({ name, self_ms: Math.round(ms), share: Math.round((ms / Math.max(total - idle, 1)) * 1000) / 1000 }));
  return { file: path.basename(file), total_ms: Math.round(total), idle_share: Math.round((idle / Math.max(total, 1)) * 1000) / 1000, top_functions: top(fn), top_files: top(files) };
}

export function summarizeDir(dir: string, root: string): ProfileSummary[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => summarizeProfile(path.join(dir, f), root))
    .sort((a, b) => (b.total_ms * (1 - b.idle_share)) - (a.total_ms * (1 - a.idle_share)));
}

// `node dist/bench/cpuprof.js <dir-or-file>`: print the summary.
if (process.argv[1] && import.meta.url === `file://${path.resolve(process.argv[1])}`) {
  const target = process.argv[2];
  if (!target) {
    process.stderr.write('usage: node dist/bench/cpuprof.js <dir with .cpuprofile files | file>\n');
    process.exit(64);
  }
  const list = target.endsWith('.cpuprofile') ? [summarizeProfile(target, process.cwd())] : summarizeDir(target, process.cwd());
  for (const s of list) {
    process.stdout.write(`\n${s.file}: ${s.total_ms} ms sampled, idle ${(s.idle_share * 100).toFixed(1)}%\n`);
    for (const h of s.top_functions) process.stdout.write(`  ${String(h.self_ms).padStart(7)} ms ${(h.share * 100).toFixed(1).padStart(5)}%  ${h.name}\n`);
    process.stdout.write('  by file:\n');
    for (const h of s.top_files.slice(0, 12)) process.stdout.write(`  ${String(h.self_ms).padStart(7)} ms ${(h.share * 100).toFixed(1).padStart(5)}%  ${h.name}\n`);
  }
}
