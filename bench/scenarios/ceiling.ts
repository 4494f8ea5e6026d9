// The raw limits of this machine, measured in the same run: (a) pgbench with the
// engine's hold transaction on every shard at once; (b) a bare uWS responder over as
// many workers as the engine, hit by the same load generator with as many connections.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Context, RequestData, RequestSpec } from 'autocannon';
import { waitForUrl } from '../../tools/lib/wait.js';
import type { RunCtx, ScenarioResult } from '../context.js';
import { coresUsed, cpuSnapshot } from '../cpu.js';
import { cannon, Recorder, type KindStats } from '../load.js';
import { pgbenchCeiling, pgbenchSingleRow } from '../pgbench.js';
import { PgWatch, pgPeaks } from '../pgwatch.js';
import { say } from '../say.js';
import { runWrk, type WrkResult } from '../wrk.js';
import { getItem, makeShop } from './black-friday.js';

const BARE_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bare-uws.js');
const BARE_START_MS = 15_000;

interface Bare { url: string; pid: number | null; stop(): Promise<void> }

function startBare(workers: number): Promise<Bare> {
  const child = spawn(process.execPath, [BARE_ENTRY, String(workers)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = () => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => { clearTimeout(kill); resolve(); });
    child.kill('SIGTERM');
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { void stop(); reject(new Error('bare uWS did not start in time')); }, BARE_START_MS);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bare uWS exited (code ${code})`)); });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: { msg?: string; port?: number };
      try { msg = JSON.parse(line) as typeof msg; } catch { return; }
      if (msg.msg !== 'listening') return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({ url: `http://127.0.0.1:${msg.port}`, pid: child.pid ?? null, stop });
    });
  });
}

export async function ceiling(ctx: RunCtx): Promise<ScenarioResult> {
  const { flags, target, fx } = ctx;
  const started = new Date();
  say(`ceiling: pgbench (engine hold transaction) on ${target.pgShards.length} shards, ${flags.pgbenchClients} clients each, ${flags.ceilingDuration} s`);
  const watch = new PgWatch(target.pgShards);
  await watch.start();
  const cpuPg = cpuSnapshot();
  const pgbench = await pgbenchCeiling(target.pgShards, fx.ceiling, flags.pgbenchClients, flags.ceilingDuration, ctx.outDir);
  const pgCores = coresUsed(cpuPg, cpuSnapshot(), target.enginePid);
  const pgSamples = await watch.stop();
  for (const s of pgbench.per_shard) if (s.error) say(`  pgbench shard ${s.shard}: ${s.error}`);
  const hot = fx.ceiling[0]!;
  say(`ceiling: pgbench on one row (shard ${hot.shard} item ${hot.lo}), ${flags.pgbenchClients} clients, ${flags.ceilingDuration} s`);
  const singleRow = await pgbenchSingleRow(target.pgShards[hot.shard]!, hot.shard, hot.lo, flags.pgbenchClients, flags.ceilingDuration, ctx.outDir);
  if (singleRow.error) say(`  pgbench single row: ${singleRow.error}`);

  const workers = target.workers ?? flags.workers;
  const bare = await startBare(workers);
  say(`ceiling: bare uWS (${workers} workers) with ${flags.connections} connections for ${flags.ceilingDuration} s`);
  const shop = makeShop(ctx, 3);
  // The same kind of request line as the item reads, so the load generator works as hard.
  const requests: RequestSpec[] = [{
    setupRequest: (req: RequestData, c: Context) => {
      c.kind = 'bare';
      return getItem(req, shop);
    },
  }];
  const rec = new Recorder();
  let inst;
  let uwsCores: Record<string, number> | null = null;
  let wrk: WrkRun | null = null;
  try {
    await waitForUrl(`${bare.url}/`, 5000);
    const cpu0 = cpuSnapshot();
    rec.start();
    inst = await cannon({ title: 'bare-uws', url: bare.url, connections: flags.connections, duration_s: flags.ceilingDuration, timeout_s: flags.timeout, requests, defaultKind: 'bare' }, rec);
    rec.stop();
    uwsCores = coresUsed(cpu0, cpuSnapshot(), bare.pid, 'bare_uws');
    say(`ceiling: the same requests to bare uWS from wrk (one thread, ${flags.connections} connections, ${flags.ceilingDuration} s)`);
    wrk = await wrkRun(ctx, bare.url, bare.pid, 'bare_uws');
  } finally {
    await bare.stop();
  }
  say(`ceiling: the same item reads to the engine from wrk (${flags.connections} connections, ${flags.ceilingDuration} s)`);
  const engineWrk = await wrkRun(ctx, target.engineUrl, target.enginePid, 'engine');
  const bareStats = rec.stats(['bare']);
  const loadGenerators = { ...compareGenerators(bareStats, rec.seconds, uwsCores, wrk), engine_item_reads_wrk: engineFigures(engineWrk) };
  const pgFailed = pgbench.per_shard.filter((s) => s.error);
  return {
    name: 'ceiling', started_at: started.toISOString(), duration_s: flags.ceilingDuration, connections: flags.connections,
    kinds: { bare: bareStats }, groups: { uws: bareStats }, instances: [inst], timeline: rec.timeline, pg: pgSamples,
    extra: { pgbench, pgbench_single_row: singleRow, postgres: pgPeaks(pgSamples), cores_used: { pgbench: pgCores, bare_uws: uwsCores, bare_uws_wrk: wrk?.cores ?? null, engine_reads_wrk: engineWrk.cores }, load_generators: loadGenerators, pgbench_ok: pgFailed.length === 0, uws_workers: workers },
    violations: [],
  };
}

interface WrkRun { result: WrkResult; cores: Record<string, number> | null }

/** wrk against the bare responder with the item paths autocannon read, and the cores used meanwhile. */
async function wrkRun(ctx: RunCtx, url: string, serverPid: number | null, label: string): Promise<WrkRun> {
  const shop = makeShop(ctx, 3);
  const paths = Array.from({ length: 10_000 }, () => ({ method: 'GET', path: getItem({} as RequestData, shop).path! }));
  const cpu0 = cpuSnapshot();
  const result = await runWrk(url, ctx.flags.connections, ctx.flags.ceilingDuration, paths, ctx.outDir);
  if (result.error) say(`  wrk: ${result.error}`);
  return { result, cores: coresUsed(cpu0, cpuSnapshot(), serverPid, label) };
}

const msPer = (cpuS: number | null | undefined, n: number) => (cpuS != null && n > 0 ? Math.round((cpuS * 1000 / n) * 1000) / 1000 : null);

/**
 * What each load generator costs per request against the same responder: autocannon's
 * CPU is this process's, wrk's is its own rusage. The ratio says how much of the box
 * autocannon takes from the server it measures, compared with a C generator.
 */
function compareGenerators(ac: KindStats, seconds: number, acCores: Record<string, number> | null, wrk: WrkRun | null) {
  const autocannon = { rps: Math.round(ac.rps), cpu_ms_per_request: msPer(acCores ? acCores.load_generator! * seconds : null, ac.requests), cores: acCores?.load_generator ?? null, server_cores: acCores?.bare_uws ?? null };
  const w = wrk?.result;
  const wrkOut = w && !w.error
    ? { rps: w.rps, cpu_ms_per_request: msPer(w.cpu_s, w.requests), cores: w.cpu_s !== null ? Math.round((w.cpu_s / ctxSeconds(w)) * 100) / 100 : null, server_cores: wrk.cores?.bare_uws ?? null, p50_ms: w.p50_ms, p99_ms: w.p99_ms, errors: w.errors }
    : null;
  const costRatio = wrkOut?.cpu_ms_per_request && autocannon.cpu_ms_per_request ? Math.round((autocannon.cpu_ms_per_request / wrkOut.cpu_ms_per_request) * 10) / 10 : null;
  return { autocannon, wrk: wrkOut, wrk_error: w?.error ?? null, autocannon_cost_vs_wrk: costRatio };
}

/** wrk's run length, from its own count and rate. */
const ctxSeconds = (w: WrkResult) => (w.rps > 0 ? w.requests / w.rps : 1);

/** The engine's item reads when the generator costs little: served/s and CPU per read per group. */
function engineFigures(run: WrkRun) {
  const w = run.result;
  if (w.error) return { error: w.error };
  const c = run.cores ?? {};
  const per = (g: string) => (w.rps > 0 && c[g] !== undefined ? Math.round((c[g]! * 1000 / w.rps) * 1000) / 1000 : null);
  return { rps: w.rps, p50_ms: w.p50_ms, p99_ms: w.p99_ms, errors: w.errors, cpu_ms_per_read: { engine: per('engine'), redis: per('redis'), postgres: per('postgres'), wrk: msPer(w.cpu_s, w.requests) } };
}
