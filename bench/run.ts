// `npm run bench [-- flags]`: the Black Friday load harness. Brings up the
// stack and its own engine (or drives --url), loads a catalog, runs the scenarios,
// measures the machine's ceilings in the same run, checks the invariants on every
// shard, and writes result.json + report.html under bench/results/<timestamp>/.
// Exit codes: 0 ok, 1 a scenario or step failed, 2 an invariant is broken, 64 bad flags.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../src/paths.js';
import { checkInvariants, judge, scopeOf, type InvariantReport, type Scope } from '../tools/lib/invariants.js';
import { sleep } from '../tools/lib/wait.js';
import type { RunCtx, ScenarioResult } from './context.js';
import { summarizeDir } from './cpuprof.js';
import { openTarget, type Target } from './env.js';
import { prepareFixture } from './fixture.js';
import { FlagError, HELP, parseFlags, type Flags, type Scenario } from './flags.js';
import { probePayments } from './payments.js';
import { html } from './report/html.js';
import { summarize } from './report/summary.js';
import { table } from './report/table.js';
import { machine, type BenchResult } from './result.js';
import { say } from './say.js';
import { blackFriday } from './scenarios/black-friday.js';
import { ceiling } from './scenarios/ceiling.js';
import { costs } from './scenarios/costs.js';
import { flashSale } from './scenarios/flash-sale.js';
import { reads, readsBudgetS } from './scenarios/reads.js';

const RUNNERS: Record<Scenario, (ctx: RunCtx) => Promise<ScenarioResult>> = {
  'black-friday': blackFriday, 'flash-sale': flashSale, reads, ceiling, costs,
};
const SETTLE_MS = 2000;

function readFlags(): Flags {
  try {
    const f = parseFlags(process.argv.slice(2));
    if (f === 'help') {
      process.stdout.write(HELP);
      process.exit(0);
    }
    return f;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(64);
  }
}

/** Whole-run budget: setup, every scenario with slack, checks. Past it the run is killed. */
function budgetMs(f: Flags): number {
  const load = (f.scenarios.includes('black-friday') ? f.duration + 60 : 0) + (f.scenarios.includes('flash-sale') ? f.flashDuration + 30 : 0) +
    (f.scenarios.includes('reads') ? readsBudgetS(f) : 0) + (f.scenarios.includes('ceiling') ? 4 * f.ceilingDuration + 90 : 0) +
    (f.scenarios.includes('costs') ? 6 * (f.costsDuration + 5) + 60 : 0);
  return (15 * 60 + load) * 1000;
}

async function runScenarios(ctx: RunCtx, failures: string[]): Promise<Record<string, ScenarioResult>> {
  const out: Record<string, ScenarioResult> = {};
  for (const name of ctx.flags.scenarios) {
    try {
      out[name] = await RUNNERS[name](ctx);
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
      say(`${name} failed: ${(err as Error).stack ?? String(err)}`);
    }
    await sleep(SETTLE_MS); // let closing connections and the engine's queues settle
  }
  return out;
}

function itemsPerShard(ctx: RunCtx): Record<string, number> {
  const out: Record<string, number> = {};
  for (const it of ctx.fx.items) out[String(it.shard)] = (out[String(it.shard)] ?? 0) + 1;
  return out;
}

/** The rows this run could have written: fixture, pgbench and hot items; the customers' orders. */
function scopeOfRun(ctx: RunCtx): Scope {
  const scope = scopeOf({ items: [...ctx.fx.items.map((it) => it.id), ...ctx.touched], customers: ctx.fx.customers.map((c) => c.id) });
  for (const r of ctx.fx.ceiling) {
    const ids = scope.items.get(r.shard) ?? [];
    for (let id = r.lo; id <= r.hi; id++) ids.push(id);
    scope.items.set(r.shard, ids);
  }
  return scope;
}

async function main(): Promise<number> {
  const flags = readFlags();
  const started = new Date();
  const before = machine();
  const outDir = path.resolve(flags.out ?? path.join(ROOT, 'bench', 'results', started.toISOString().replace(/[:.]/g, '-')));
  mkdirSync(outDir, { recursive: true });
  let target: Target | null = null;
  let ctx: RunCtx | null = null;
  const abort = (why: string, code: number) => {
    say(why);
    const undo = Promise.allSettled([...(ctx?.undo ?? [])].map((fn) => fn()));
    void undo.then(() => target?.stop()).finally(() => process.exit(code));
    setTimeout(() => process.exit(code), 20_000).unref();
  };
  setTimeout(() => abort('watchdog: the run exceeded its time budget; stopping', 3), budgetMs(flags)).unref();
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));

  const failures: string[] = [];
  let scenarios: Record<string, ScenarioResult> = {};
  let invariants: InvariantReport | null = null;
  target = await openTarget(flags, outDir);
  try {
    const { fx, adminToken } = await prepareFixture(flags, target.engineUrl, target.pgShards);
    const payments = await probePayments(target.engineUrl, fx.customers[0]!.token);
    say(`payments: ${payments.available ? 'available' : 'not available'} (${payments.reason})`);
    ctx = { flags, target, fx, adminToken, outDir, payments, touched: [], undo: new Set() };
    scenarios = await runScenarios(ctx, failures);
    say('checking invariants on every shard');
    invariants = judge(await checkInvariants(target.pgShards, { phase: 'always', scope: scopeOfRun(ctx) }), flags.strictInvariants);
    for (const f of invariants.foreign) say(`note: ${f}`);
  } catch (err) {
    failures.push(`setup/check: ${(err as Error).message}`);
    say(`failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await target.stop();
  }

  const profiles = flags.cpuProf && target.own ? summarizeDir(path.join(outDir, 'cpu-prof'), ROOT) : [];
  const violations = [...(invariants?.violations ?? []), ...Object.values(scenarios).flatMap((s) => s.violations)];
  const exitCode = violations.length ? 2 : failures.length || !invariants ? 1 : 0;
  const summary = summarize(scenarios);
  const result: BenchResult = {
    schema: 'bf-bench/1', ok: exitCode === 0, exit_code: exitCode, started_at: started.toISOString(), finished_at: new Date().toISOString(),
    machine: before, engine: { url: target.engineUrl, own: target.own, workers: target.workers }, flags,
    fixture: ctx ? { items: ctx.fx.items.length, categories: ctx.fx.categories.length, customers: ctx.fx.customers.length, items_per_shard: itemsPerShard(ctx) } : { items: 0, categories: 0, customers: 0, items_per_shard: {} },
    payments: ctx?.payments ?? { available: false, reason: 'not probed' }, scenarios, summary, invariants, violations, failures,
    ...(profiles.length ? { cpu_profiles: profiles } : {}),
  };
  writeFileSync(path.join(outDir, 'result.json'), JSON.stringify(result, null, 2));
  writeFileSync(path.join(outDir, 'report.html'), html(result));
  process.stdout.write(`\n${table(scenarios, summary, invariants, failures)}\n`);
  if (violations.length) process.stderr.write(`\nbench: INVARIANT VIOLATED:\n${violations.map((v) => `  ${v}`).join('\n')}\n`);
  process.stdout.write(`report: ${path.join(outDir, 'report.html')}\nresult: ${path.join(outDir, 'result.json')}\n`);
  return exitCode;
}

process.exit(await main());
