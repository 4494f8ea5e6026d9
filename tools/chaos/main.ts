// `npm run chaos [-- --scenario a,b --duration S]`: faults under load, on a stack of
// its own (Postgres x3, Redis, simulators, engine; see stack.ts), then the invariants.
// Prints a table, writes <stack dir>/results.json, exits 1 if any promise broke.
// Everything it started is stopped at the end, on failure and on Ctrl-C too.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../../src/paths.js';
import { intOption, parseCli, UsageError } from '../lib/args.js';
import { HttpClient } from '../lib/http.js';
import { Fixture } from './fixture.js';
import { table } from './report.js';
import type { Result, RunCtx, Scenario } from './scenario.js';
import { abortedUploads } from './scenarios/aborted-uploads.js';
import { cronCrash } from './scenarios/cron-crash.js';
import { gatewayDuplicates, gatewayFaults } from './scenarios/gateway.js';
import { overload, overloadDefaults } from './scenarios/overload.js';
import { redisDown } from './scenarios/redis-down.js';
import { shardDown } from './scenarios/shard-down.js';
import { workerKill } from './scenarios/worker-kill.js';
import { ChaosStack, EngineProc, say, startSims, type ChaosPorts, type Sims } from './stack.js';

const SCENARIOS: Scenario[] = [workerKill, shardDown, redisDown, gatewayFaults, gatewayDuplicates, overload, overloadDefaults, abortedUploads, cronCrash];

interface Options { scenarios: Scenario[]; durationS: number; dir: string; ports: ChaosPorts; keepStack: boolean; json: string }

const USAGE = `usage: npm run chaos -- [--scenario ${SCENARIOS.map((s) => s.name).join('|')}|all[,..]] [--duration S]
       [--engine-port 8680] [--gateway-port 8690] [--provider-port 8691] [--pg-ports 25531,25532,25533] [--redis-port 6491]
       [--stack-dir .stack/chaos] [--json <file>] [--keep-stack]`;

const OPTIONS = {
  scenario: { type: 'string' }, duration: { type: 'string' }, 'engine-port': { type: 'string' }, 'gateway-port': { type: 'string' },
  'provider-port': { type: 'string' }, 'pg-ports': { type: 'string' }, 'redis-port': { type: 'string' }, 'stack-dir': { type: 'string' },
  json: { type: 'string' }, 'keep-stack': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
} as const;

function parse(argv: string[]): Options {
  let args;
  try {
    args = parseCli(argv, { options: OPTIONS }).values;
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${err.message}\n${USAGE}`);
    throw err;
  }
  if (args.help) { process.stdout.write(`${USAGE}\n\n${SCENARIOS.map((s) => `  ${s.name.padEnd(20)} ${s.summary}`).join('\n')}\n`); process.exit(0); }
  const num = (k: keyof typeof OPTIONS, def: number, min: number, max: number) => {
    try {
      return intOption(k, args[k] as string | undefined, def, min, max);
    } catch (err) {
      throw new UsageError(`${(err as Error).message}\n${USAGE}`);
    }
  };
  const wanted = (args.scenario ?? 'all').split(',').map((s) => s.trim()).filter(Boolean);
  const scenarios = wanted.includes('all') ? SCENARIOS : wanted.map((n) => {
    const s = SCENARIOS.find((x) => x.name === n);
    if (!s) throw new UsageError(`unknown scenario ${n}\n${USAGE}`);
    return s;
  });
  // Below the kernel's ephemeral range (32768-60999 here): a listener there can fail to
  // bind when an outgoing connection happens to hold the port.
  const pg = (args['pg-ports'] ?? '25531,25532,25533').split(',').map(Number);
  if (pg.length !== 3 || pg.some((p) => !Number.isInteger(p) || p < 1024 || p > 65535)) throw new UsageError(`--pg-ports needs three ports\n${USAGE}`);
  const dir = path.resolve(ROOT, args['stack-dir'] ?? path.join('.stack', 'chaos'));
  return {
    scenarios, durationS: num('duration', 20, 3, 600), dir, keepStack: args['keep-stack'] ?? false,
    json: path.resolve(ROOT, args.json ?? path.join(dir, 'results.json')),
    ports: { engine: num('engine-port', 8680, 1024, 65535), gateway: num('gateway-port', 8690, 1024, 65535), provider: num('provider-port', 8691, 1024, 65535), pg, redis: num('redis-port', 6491, 1024, 65535) },
  };
}

/** Cleanup runs once, whatever ends the run. */
function cleanupOnce(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  return () => (running ??= fn().catch((err: unknown) => { say(`cleanup: ${String(err)}`); }));
}

async function main(): Promise<number> {
  const opts = parse(process.argv.slice(2));
  // The runner owns its stack: never the shared one the environment may point at.
  for (const v of ['PG_SHARDS', 'REDIS_URLS', 'STACK_DIR']) delete process.env[v];
  const stack = new ChaosStack(opts.dir, opts.ports);
  const cur: { engine: EngineProc | null } = { engine: null };
  let sims: Sims | null = null;
  const cleanup = cleanupOnce(async () => {
    await cur.engine?.stop(10_000);
    await stack.endPools();
    await sims?.gateway.stop();
    await sims?.provider.stop();
    if (!opts.keepStack) stack.down();
  });
  const interrupted = (sig: string) => {
    say(`${sig}: stopping everything the run started`);
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', () => interrupted('SIGINT'));
  process.once('SIGTERM', () => interrupted('SIGTERM'));
  const crashed = (err: unknown) => {
    say(`unexpected error: ${String((err as Error).stack ?? err)}`);
    void cleanup().then(() => process.exit(2));
  };
  process.on('uncaughtException', crashed);
  process.on('unhandledRejection', crashed);

  const results: Result[] = [];
  try {
    say(`stack in ${opts.dir}: postgres ${opts.ports.pg.join(',')}, redis ${opts.ports.redis}, engine ${opts.ports.engine}`);
    await stack.up();
    const api = new HttpClient(`http://127.0.0.1:${opts.ports.engine}`, { maxSockets: 1024 });
    let scenarioName = '';
    const startEngine = async (overrides: Record<string, string> = {}) => {
      await cur.engine?.stop();
      const engine = new EngineProc(stack, overrides, path.join(opts.dir, `engine-${scenarioName}.log`));
      cur.engine = engine;
      await engine.ready();
      return engine;
    };
    for (const scenario of opts.scenarios) {
      scenarioName = scenario.name;
      writeFileSync(path.join(opts.dir, `engine-${scenarioName}.log`), '');
      await cur.engine?.stop();
      cur.engine = null;
      // Fresh databases and fresh simulators: ids restart at 1, so must the gateway's sessions.
      await stack.fresh();
      await sims?.gateway.stop();
      await sims?.provider.stop();
      sims = await startSims(opts.ports);
      const gateway = new HttpClient(sims.gateway.url, { maxSockets: 256 });
      const ctx: RunCtx = {
        stack, sims, durationS: opts.durationS, startEngine, api, gateway, fixture: new Fixture(api),
        engine: () => { if (!cur.engine) throw new Error('engine not started'); return cur.engine; },
        say: (m) => say(`[${scenario.name}] ${m}`),
      };
      say(`scenario ${scenario.name}: ${scenario.summary} (${opts.durationS} s)`);
      results.push(await runOne(scenario, ctx));
      gateway.close();
    }
    api.close();
  } finally {
    await cleanup();
  }
  process.stdout.write(`\n${table(results)}\n`);
  mkdirSync(path.dirname(opts.json), { recursive: true });
  writeFileSync(opts.json, JSON.stringify({ at: new Date().toISOString(), duration_s: opts.durationS, ports: opts.ports, results }, null, 2));
  say(`results written to ${path.relative(ROOT, opts.json)}`);
  return results.every((r) => r.ok) ? 0 : 1;
}

async function runOne(scenario: Scenario, ctx: RunCtx): Promise<Result> {
  try {
    const r = await scenario.run(ctx);
    say(`scenario ${scenario.name}: ${r.ok ? 'PASS' : 'FAIL'}${r.failures.length ? ` (${r.failures.join('; ')})` : ''}`);
    return r;
  } catch (err) {
    say(`scenario ${scenario.name} aborted: ${String((err as Error).stack ?? err)}`);
    return {
      scenario: scenario.name, ok: false, seconds: 0, load: { requests: 0, rps: 0, expected_pct: 0, clients: 0 }, faults: { count: 0, what: 'aborted' },
      lost: 0, oversold: 0, double_charged: 0, other_broken: 0, key_latencies: '', latencies: {}, figures: {},
      failures: [`aborted: ${(err as Error).message ?? String(err)}`], checks_broken: [],
    };
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`chaos: ${err instanceof UsageError ? err.message : String((err as Error).stack ?? err)}\n`);
  process.exit(2);
});
