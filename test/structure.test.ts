// The layout rules of the engine's code, read from its source: each can fail as soon as
// a change breaks it, long before a behaviour test would notice.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../src/paths.js';

// The tooling around the engine (on its way out of src/), not the engine's own code or its simulators.
const NOT_ENGINE = ['src/chaos/', 'src/tools/', 'src/dev/'];

function engineFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts') && !NOT_ENGINE.some((d) => rel.startsWith(d))) {
        out.push(rel);
      }
    }
  };
  walk('src');
  return out.sort();
}

const source = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');
/** The code without its comments (which may name a statement without running it). */
const code = (rel: string) => source(rel).replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

t.test('only the order lifecycle changes an order\'s status', async (t) => {
  const writes = [
    /UPDATE\s+orders\b[^;`]*?\bSET\s+status\b/i,
    /INSERT\s+INTO\s+order_events\b/i,
    /\b(place_orders|apply_gateway_event|complete_paid_order)\s*\(/,
  ];
  const found = engineFiles().filter((f) => writes.some((re) => re.test(code(f))));
  t.same(found, ['src/orders/lifecycle-sql.ts'], 'every statement that moves an order or writes its audit row');
  const runners = engineFiles().filter((f) => /from '(\.\/|\.\.\/orders\/)lifecycle-sql\.js'/.test(code(f)));
  t.same(runners, ['src/fulfillment/sql.ts', 'src/orders/checkout.ts', 'src/orders/lifecycle.ts'],
    'its statements are run by lifecycle.ts and its group commit (fulfillment/sql.ts shares a fragment)');
});

/** The engine files a file imports (relative imports, types included: a cycle of types is still a tangle). */
function importsOf(rel: string): string[] {
  const out: string[] = [];
  for (const m of code(rel).matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.{1,2}\/[^']+)'/gm)) {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), m[1]!.replace(/\.js$/, '.ts')));
    out.push(target);
  }
  return out;
}

/** The cycles of a graph (Tarjan's strongly connected components of more than one file, or a file importing itself). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

t.test('the engine\'s modules import each other without a cycle', async (t) => {
  const graph = new Map(engineFiles().map((f) => [f, importsOf(f)]));
  t.ok(graph.get('src/orders/service.ts')!.includes('src/orders/lifecycle.ts'), 'the import graph is read');
  t.same(cycles(graph), [], 'no file reaches itself through its imports');
  t.same(cycles(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]])), [['a', 'b']], 'a cycle is found');
});
