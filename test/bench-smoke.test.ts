// The load harness keeps working: a few-seconds `--smoke` run of every scenario
// against the suite's engine ends with exit code 0, a complete result.json and not
// one broken invariant. Timings are reported by the bench, never asserted here.
// `--no-gate-off`: the sold_out_gate flag is global to the shared databases, and
// test/cache.test.ts (which may run at the same time) counts the gate's refusals.
// With --url the cache-off half cannot run either: both say so in the result.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { DIST_ROOT } from '../tools/lib/paths.js';
import { ENGINE_URL, GATEWAY_PORT } from './setup/env.js';

const RUN_JS = path.join(DIST_ROOT, 'bench', 'run.js');
const KILL_AFTER_MS = 150_000;

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const kill = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.on('close', (code) => { clearTimeout(kill); resolve({ code, stdout, stderr }); });
  });
}

const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

t.test('a smoke run of every scenario passes and reports every number', async (t) => {
  t.ok(existsSync(RUN_JS), 'the harness is built (npm run build)');
  const out = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  const { code, stdout, stderr } = await runBench(['--smoke', '--url', ENGINE_URL, '--gateway', `http://127.0.0.1:${GATEWAY_PORT}`, '--no-gate-off', '--out', out]);
  const file = path.join(out, 'result.json');
  t.equal(code, 0, 'exit code 0', { stdout: stdout.slice(-4000), stderr: stderr.slice(-4000) });
  t.ok(existsSync(file), 'result.json written');
  t.ok(existsSync(path.join(out, 'report.html')), 'report.html written');
  if (!existsSync(file)) return;
  const r = JSON.parse(readFileSync(file, 'utf8'));

  t.equal(r.schema, 'bf-bench/1');
  t.equal(r.ok, true);
  t.same(r.failures, [], 'no scenario failed');
  t.same(r.violations, [], 'no invariant violated');
  t.same(r.invariants.violations, []);
  t.ok(r.invariants.checks.length >= 9, 'three item checks on each of three shards');

  const bf = r.scenarios['black-friday'];
  for (const kind of ['item', 'search', 'status', 'order']) {
    t.ok(bf.kinds[kind]?.requests > 0, `black-friday made ${kind} requests`);
    for (const f of ['p50_ms', 'p95_ms', 'p99_ms', 'max_ms']) t.ok(isNum(bf.kinds[kind]?.latency[f]), `${kind} ${f}`);
  }
  t.ok(bf.groups.reads.ok > 0 && bf.groups.writes.ok > 0, 'reads and writes succeeded');
  t.ok(bf.timeline.length > 0, 'a per-second timeline');
  for (const i of bf.instances) for (const f of ['errors', 'timeouts', 'non2xx']) t.ok(isNum(i[f]), `${i.title} ${f}`);

  const hot = r.scenarios['flash-sale'].extra.hot;
  t.equal(hot.held + hot.sold, hot.stock, 'the hot item sold out exactly');
  t.equal(hot.exactly_stock_held, true, 'live orders carry exactly the stock');
  t.ok(hot.answered_201 <= hot.stock, 'never more 201s than units');
  t.ok(r.scenarios['flash-sale'].kinds.hot.codes.sold_out > 0, 'the rest were told sold_out');

  const rd = r.scenarios.reads;
  for (const kind of ['item.cache_on', 'hold.cache_on', 'hot.gate_on']) {
    t.ok(rd.kinds[kind]?.requests > 0, `reads made ${kind} requests`);
    for (const f of ['p50_ms', 'p99_ms']) t.ok(isNum(rd.kinds[kind]?.latency[f]), `${kind} ${f}`);
  }
  const cacheOn = r.summary.reads.cache_on;
  for (const f of ['reads_ok_per_s', 'reads_p50_ms', 'reads_p99_ms', 'holds_per_s', 'errors', 'timeouts']) t.ok(isNum(cacheOn[f]), `cache on ${f}`);
  t.ok(cacheOn.reads_ok_per_s > 0 && cacheOn.holds_per_s > 0, 'item reads and holds succeeded with the cache on');
  t.equal(r.summary.reads.cache_off, null, 'no cache-off half against an external engine');
  t.match(r.summary.reads.cache_off_skipped, /--url/, 'and the result says why');
  const gateOn = r.summary.reads.gate_on;
  for (const f of ['sold_out_per_s', 'p50_ms', 'p99_ms', 'non_409', 'errors', 'timeouts']) t.ok(isNum(gateOn[f]), `gate on ${f}`);
  t.ok(gateOn.sold_out_per_s > 0, 'the storm on the sold-out item was answered sold_out');
  t.equal(r.summary.reads.gate_off, null, 'no gate-off storm with --no-gate-off');
  t.match(r.summary.reads.gate_off_skipped, /--no-gate-off/);
  t.type(rd.extra.gate.flag_at_start, 'boolean', 'the flag as found (not switched with --no-gate-off)');
  const gateHot = rd.extra.gate.hot;
  t.equal(gateHot.held + gateHot.sold, gateHot.stock, 'the gate storm\'s hot item holds exactly its stock');
  t.equal(gateHot.storm_201, 0, 'no storm hold on the sold-out item answered 201');
  t.equal(r.summary.reads.hot_not_oversold, true);
  t.equal(r.summary.ratios.reads_cache_on_vs_off, null, 'no on/off ratios without the off halves');
  t.equal(r.summary.ratios.sold_out_gate_on_vs_off, null);
  t.match(stdout, /cache off NOT MEASURED/);
  t.match(stdout, /gate off NOT MEASURED/);

  const ce = r.scenarios.ceiling;
  t.ok(ce.extra.pgbench.tps_sum > 0, 'pgbench measured the hold transaction');
  t.equal(ce.extra.pgbench.per_shard.length, 3);
  t.ok(ce.groups.uws.ok_rps > 0, 'the bare uWS responder answered');
  for (const k of ['orders_vs_pgbench', 'flash_holds_vs_pgbench', 'reads_vs_uws']) t.ok(isNum(r.summary.ratios[k]), `ratio ${k}`);
  t.ok(ce.extra.load_generators.wrk?.rps > 0, 'wrk answered by the bare uWS responder too');
  t.match(stdout, /autocannon costs [\d.]+x wrk per request/);

  const co = r.scenarios.costs;
  for (const k of ['item', 'search', 'status', 'order_no_key', 'order_keyed', 'order_two_items_keyed']) {
    t.ok(co.extra.per_kind[k]?.rps > 0, `costs: ${k} answered`);
    t.equal(co.extra.per_kind[k]?.errors, 0, `costs: ${k} all 2xx`);
    t.ok(isNum(co.extra.per_kind[k]?.cpu_ms.engine), `costs: ${k} priced in engine CPU`);
  }
  t.match(stdout, /the seed load .* needs [\d.]+ cores/);
  t.match(stdout, /invariants: OK/);

  rmSync(out, { recursive: true, force: true });
});
