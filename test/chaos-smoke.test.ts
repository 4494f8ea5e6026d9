// The chaos runner itself, short: three scenarios for a few seconds each on a stack of
// its own (Postgres, Redis, simulators and engine on ports keyed by TEST_ENGINE_PORT,
// under .stack/chaos-smoke-<port>/), so CI proves the runner works and the promises
// it checks hold. The full campaign is `npm run chaos` (see tools/chaos/main.ts).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../src/paths.js';
import { TOOLS_DIST_DIR } from '../tools/lib/paths.js';
import { TEST_PORT } from './setup/env.js';

// Ports below the kernel's ephemeral range (32768+), keyed by the suite's port (18080 -> 18)
// so suites side by side, and the default `npm run chaos` ports, never meet.
const k = Math.floor(TEST_PORT / 1000) % 66;
const STACK_DIR = path.join(ROOT, '.stack', `chaos-smoke-${TEST_PORT}`);
const JSON_FILE = path.join(STACK_DIR, 'results.json');
const ARGS = [
  '--scenario', 'worker-kill,gateway-duplicates,aborted-uploads', '--duration', '5',
  '--engine-port', String(8003 + 10 * k), '--gateway-port', String(8004 + 10 * k), '--provider-port', String(8005 + 10 * k),
  '--pg-ports', [1, 2, 3].map((i) => 24000 + 10 * k + i).join(','), '--redis-port', String(6400 + k),
  '--stack-dir', STACK_DIR, '--json', JSON_FILE,
];
const LIMIT_MS = 150_000;

t.test('chaos smoke: workers killed under writes, every webhook delivered six times out of order, uploads aborted and stalled under load', async (t) => {
  rmSync(JSON_FILE, { force: true });
  const child = spawn(process.execPath, [path.join(TOOLS_DIST_DIR, 'chaos', 'main.js'), ...ARGS], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-30_000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  // Past the limit the runner is interrupted, which stops everything it started.
  const timer = setTimeout(() => child.kill('SIGINT'), LIMIT_MS);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  t.equal(code, 0, 'the runner exits 0: every invariant held');
  if (code !== 0) t.comment(out);
  t.ok(existsSync(JSON_FILE), 'results written');
  const { results } = JSON.parse(readFileSync(JSON_FILE, 'utf8')) as { results: any[] };
  t.same(results.map((r) => r.scenario), ['worker-kill', 'gateway-duplicates', 'aborted-uploads']);
  for (const r of results) {
    t.ok(r.ok, `${r.scenario}: ${r.failures.join('; ') || 'ok'}`);
    t.ok(r.load.requests > 0, `${r.scenario}: held ${r.load.requests} requests`);
    t.ok(r.faults.count > 0, `${r.scenario}: injected ${r.faults.what}`);
    t.same([r.lost, r.oversold, r.double_charged, r.other_broken], [0, 0, 0, 0], `${r.scenario}: nothing lost, oversold or double-charged`);
  }
  const kill = results.find((r) => r.scenario === 'worker-kill');
  t.equal(kill?.figures.replay_mismatches, 0, 'same-key retries got the original orders');
  const uploads = results.find((r) => r.scenario === 'aborted-uploads');
  t.equal(uploads?.figures.inflight_after, uploads?.figures.baseline_inflight, 'every broken upload gave its slot back');
  t.comment(out.slice(out.indexOf('| scenario')));
});
