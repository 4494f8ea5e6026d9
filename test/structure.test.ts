// The layout rules of the engine's code, read from its source: each can fail as soon as
// a change breaks it, long before a behaviour test would notice.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../src/paths.js';

// The tooling around the engine, not the engine's own code.
const NOT_ENGINE = ['src/chaos/', 'src/tools/', 'src/dev/', 'src/sim/'];

function engineFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts') && !NOT_ENGINE.some((d) => rel.startsWith(d))) out.push(rel);
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
