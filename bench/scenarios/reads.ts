// The read-heavy run (reads at 5x writes), as two comparisons inside one run:
//  - cache on vs off: Zipf item reads beside holds, the connections split by --mix
//    (5:1), against the engine with its Redis read cache, then against a second cluster
//    of it started with CACHE_ENABLED=false (same shards, Redis and simulators; there is
//    no runtime switch for the cache). With --url that half cannot be had: it is skipped,
//    and the result says so.
//  - sold-out gate on vs off: a fresh hot item sold out first, then a storm of holds on
//    it with the runtime flag sold_out_gate on, then off (PUT /v1/admin/flags), and on
//    again afterwards whatever happens. The item is checked in SQL: never oversold.
// Every half gets the same short warm-up first (a freshly started cluster has cold
// pools and JIT), which is not measured.
import type { Context, RequestData, RequestSpec } from 'autocannon';
import { PATIENT, expectStatus, HttpError, request } from '../../tools/lib/http.js';
import { sleep } from '../../tools/lib/wait.js';
import type { RunCtx, ScenarioResult } from '../context.js';
import { coresUsed, cpuSnapshot } from '../cpu.js';
import type { Engine } from '../env.js';
import type { Flags } from '../flags.js';
import { cannon, count5xx, keepErrorCode, Recorder, round, type InstanceSummary, type KindStats, type Tick } from '../load.js';
import { PgWatch, pgPeaks } from '../pgwatch.js';
import { say } from '../say.js';
import { getItem, makeShop, orderLines, pickCustomer, postOrder, splitConnections, type Shop } from './black-friday.js';
import { createHotItem, hotRow, hotViolations, type HotRow } from './flash-sale.js';

const warmUpS = (f: Flags) => (f.smoke ? 1 : 2);
/** Every worker re-reads the flags within about a second of a switch (src/flags/sync.ts). */
const FLAG_APPLY_MS = 1500;
/** The sold-out state reaches every worker's gate over pub/sub (test/cache.test.ts waits 200 ms). */
const GATE_LEARN_MS = 500;
const SELL_OUT_ATTEMPTS = 3;
const RESTORE_ATTEMPTS = 3;
/** Slowest start of the cache-off cluster (bench/env.ts waits up to 90 s). */
const ENGINE_START_S = 90;
const GATE_FLAG = '/v1/admin/flags/sold_out_gate';

/** Seconds the scenario may take, for the run's watchdog. */
export function readsBudgetS(f: Flags): number {
  return 2 * f.readsDuration + 2 * f.gateDuration + 4 * warmUpS(f) + ENGINE_START_S + 4 * FLAG_APPLY_MS / 1000 + 60;
}

interface Load { title: string; connections: number; requests: RequestSpec[]; defaultKind: string }
/** One measured stretch against one engine; `offset_s`: where it starts on the scenario's clock. */
interface Phase { label: string; rec: Recorder; instances: InstanceSummary[]; cores: Record<string, number> | null; offset_s: number }

/** Runs the loads at once against one engine: a warm-up, then `duration_s` measured. */
async function phase(ctx: RunCtx, label: string, engine: Pick<Engine, 'url' | 'pid'>, loads: () => Load[], duration_s: number, t0: number): Promise<Phase> {
  const run = (rec: Recorder, secs: number) => Promise.all(loads().map((l) => cannon({ ...l, url: engine.url, duration_s: secs, timeout_s: ctx.flags.timeout }, rec)));
  await run(new Recorder(), warmUpS(ctx.flags));
  const rec = new Recorder();
  const cpu0 = cpuSnapshot();
  const offset_s = round((performance.now() - t0) / 1000);
  rec.start();
  const instances = await run(rec, duration_s);
  rec.stop();
  return { label, rec, instances, cores: coresUsed(cpu0, cpuSnapshot(), engine.pid), offset_s };
}

const errorsOf = (p: Phase) => ({ errors: p.instances.reduce((n, i) => n + i.errors, 0), timeouts: p.instances.reduce((n, i) => n + i.timeouts, 0) });

// ---- cache on vs off -------------------------------------------------------------

export interface CacheHalf {
  engine_url: string; reads_ok_per_s: number; reads_p50_ms: number; reads_p99_ms: number; reads_non2xx: number;
  holds_per_s: number; holds_p99_ms: number; errors: number; timeouts: number;
}

function readLoads(shop: Shop, split: { reads: number; writes: number }, label: string): Load[] {
  const item: RequestSpec = {
    setupRequest: (req: RequestData, c: Context) => {
      c.kind = 'item';
      return getItem(req, shop);
    },
    onResponse: keepErrorCode,
  };
  const hold: RequestSpec = {
    setupRequest: (req: RequestData, c: Context) => {
      c.kind = 'hold';
      return postOrder(req, shop, pickCustomer(shop).token, orderLines(shop));
    },
    onResponse: keepErrorCode,
  };
  const loads: Load[] = [];
  if (split.reads > 0) loads.push({ title: `reads ${label}`, connections: split.reads, requests: [item], defaultKind: 'item' });
  if (split.writes > 0) loads.push({ title: `holds ${label}`, connections: split.writes, requests: [hold], defaultKind: 'hold' });
  return loads;
}

function cacheHalf(p: Phase, url: string): CacheHalf {
  const reads = p.rec.stats(['item']), holds = p.rec.stats(['hold']);
  return {
    engine_url: url, reads_ok_per_s: Math.round(reads.ok_rps), reads_p50_ms: reads.latency.p50_ms, reads_p99_ms: reads.latency.p99_ms,
    reads_non2xx: reads.requests - reads.ok, holds_per_s: Math.round((holds.status['201'] ?? 0) / Math.max(p.rec.seconds, 0.001)),
    holds_p99_ms: holds.latency.p99_ms, ...errorsOf(p),
  };
}

async function cacheOnOff(ctx: RunCtx, t0: number, notes: string[]) {
  const { flags, target } = ctx;
  const shop = makeShop(ctx, 4);
  const split = splitConnections(flags.connections, flags.mix.reads, flags.mix.writes);
  say(`reads: cache on: ${split.reads} item-read + ${split.writes} hold connections for ${flags.readsDuration} s`);
  const on = await phase(ctx, 'cache_on', { url: target.engineUrl, pid: target.enginePid }, () => readLoads(shop, split, 'cache-on'), flags.readsDuration, t0);
  let off: Phase | null = null;
  let offUrl: string | null = null;
  let skipped: string | null = null;
  if (!target.variant) {
    skipped = 'cache off NOT MEASURED: the engine is external (--url) and its CACHE_ENABLED is an environment variable, not a runtime flag; run without --url for that half';
    notes.push(skipped);
    say(`reads: ${skipped}`);
  } else {
    const engine = await target.variant('cache-off', flags.port + 1, { CACHE_ENABLED: 'false' });
    offUrl = engine.url;
    try {
      say(`reads: cache off (${engine.url}, CACHE_ENABLED=false): the same load for ${flags.readsDuration} s`);
      off = await phase(ctx, 'cache_off', engine, () => readLoads(shop, split, 'cache-off'), flags.readsDuration, t0);
    } finally {
      await engine.stop();
    }
    notes.push('the cache-off engine writes no Redis entries: items it held show their older cached counts on the main engine until the next change or CACHE_ITEM_TTL_MS');
  }
  const result = {
    split, mix: flags.mix, duration_s_per_half: flags.readsDuration, warm_up_s: warmUpS(flags), zipf_s: flags.zipf,
    on: cacheHalf(on, target.engineUrl), off: off && offUrl ? cacheHalf(off, offUrl) : null, off_skipped: skipped,
  };
  return { phases: off ? [on, off] : [on], result };
}

// ---- sold-out gate on vs off -------------------------------------------------------

export interface GateHalf {
  requests: number; sold_out_per_s: number; p50_ms: number; p99_ms: number;
  /** Answers other than 409 (a 201 here would be an oversell), by status. */
  non_409: number; non_409_by_status: Record<string, number>; errors: number; timeouts: number;
}

/** Holds every unit in one order, so the storms meet an item that is sold out. */
async function sellOut(ctx: RunCtx, id: string, stock: number): Promise<void> {
  const who = ctx.fx.customers[0]!;
  const opts = { token: who.token, body: { items: [{ item_id: id, quantity: stock }] }, headers: { 'idempotency-key': `bench-sellout-${id}` } };
  for (let attempt = 1; ; attempt++) {
    const res = await request(ctx.target.engineUrl, 'POST', '/v1/orders', { ...PATIENT, ...opts });
    if (res.status === 201) return;
    // An overloaded engine may refuse it: the same key makes a retry safe.
    if (res.status < 500 || attempt >= SELL_OUT_ATTEMPTS) throw new HttpError('reads: sell out the hot item', res, 201);
    await sleep(500 * attempt);
  }
}

async function gateStored(ctx: RunCtx): Promise<boolean> {
  return (await expectStatus<{ enabled: boolean }>(await request(ctx.target.engineUrl, 'GET', GATE_FLAG, { ...PATIENT, token: ctx.adminToken }), 200, 'read the sold_out_gate flag')).enabled;
}

/** Switches the flag (global to the databases: every engine on them follows) and waits for the workers. */
async function setGate(ctx: RunCtx, on: boolean): Promise<void> {
  const view = await expectStatus<{ enabled: boolean }>(await request(ctx.target.engineUrl, 'PUT', GATE_FLAG, { ...PATIENT, token: ctx.adminToken, body: { enabled: on } }), 200, `switch sold_out_gate ${on ? 'on' : 'off'}`);
  if (view.enabled !== on) throw new Error(`sold_out_gate answered enabled=${view.enabled} after being set to ${on}`);
  await sleep(FLAG_APPLY_MS);
}

async function restoreGate(ctx: RunCtx): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await setGate(ctx, true);
    } catch (err) {
      if (attempt >= RESTORE_ATTEMPTS) {
        throw new Error(`could not switch sold_out_gate back on (${(err as Error).message}): every engine on these databases runs without the gate ` +
          `until an admin sends PUT ${GATE_FLAG} {"enabled":true}`);
      }
      await sleep(1000 * attempt);
    }
  }
}

/** Runs fn with the gate off, and switches it back on afterwards, also when fn fails or the run is interrupted. */
async function withGateOff<T>(ctx: RunCtx, fn: () => Promise<T>): Promise<T> {
  const undo = () => restoreGate(ctx);
  ctx.undo.add(undo);
  try {
    await setGate(ctx, false);
    return await fn();
  } finally {
    await restoreGate(ctx);
    ctx.undo.delete(undo);
    say('reads: sold_out_gate is on again');
  }
}

function stormLoads(ctx: RunCtx, shop: Shop, hotId: string, label: string): Load[] {
  const hold: RequestSpec = {
    setupRequest: (req: RequestData, c: Context) => {
      c.kind = 'hot';
      return postOrder(req, shop, pickCustomer(shop).token, [{ item_id: hotId, quantity: 1 }]);
    },
    onResponse: keepErrorCode,
  };
  return [{ title: `storm ${label}`, connections: ctx.flags.gateConnections, requests: [hold], defaultKind: 'hot' }];
}

function gateHalf(p: Phase): GateHalf {
  const k = p.rec.stats(['hot']);
  const other = Object.entries(k.status).filter(([s]) => s !== '409');
  return {
    requests: k.requests, sold_out_per_s: Math.round((k.codes.sold_out ?? 0) / Math.max(p.rec.seconds, 0.001)), p50_ms: k.latency.p50_ms, p99_ms: k.latency.p99_ms,
    non_409: other.reduce((n, [, c]) => n + c, 0), non_409_by_status: Object.fromEntries(other), ...errorsOf(p),
  };
}

function checkHot(hotId: string, stock: number, row: HotRow, storms: Phase[]) {
  const stats = storms.map((p) => p.rec.stats(['hot']));
  // The sell-out order holds every unit: a 201 in a storm is a unit that did not exist.
  const units201 = stock + stats.reduce((n, k) => n + (k.status['201'] ?? 0), 0);
  const ambiguous = stats.reduce((n, k) => n + count5xx(k), 0) + storms.reduce((n, p) => n + errorsOf(p).errors, 0);
  const violations = hotViolations('reads', hotId, stock, row, units201, ambiguous);
  const units = row.held + row.sold;
  return { hot: { id: hotId, stock, ...row, storm_201: units201 - stock, not_oversold: units <= stock && units201 <= stock, exactly_stock_held: units === stock && row.available === 0 && row.order_units === stock }, violations };
}

async function gateOnOff(ctx: RunCtx, t0: number, notes: string[]) {
  const { flags, target } = ctx;
  const main = { url: target.engineUrl, pid: target.enginePid };
  const hotId = await createHotItem(ctx, flags.gateStock, 'gate');
  await sellOut(ctx, hotId, flags.gateStock);
  await sleep(GATE_LEARN_MS);
  const shop = makeShop(ctx, 5);
  const flagAtStart = await gateStored(ctx);
  if (!flagAtStart) {
    notes.push(`sold_out_gate was off when the scenario began${flags.gateOff ? ': switched on for the gate-on storm, and left on' : ' (--no-gate-off: left as it was, so the "gate on" storm ran without it)'}`);
    if (flags.gateOff) await setGate(ctx, true);
  }
  say(`reads: gate on: ${flags.gateConnections} buyers for ${flags.gateDuration} s on sold-out item ${hotId} (stock ${flags.gateStock})`);
  const on = await phase(ctx, 'gate_on', main, () => stormLoads(ctx, shop, hotId, 'gate-on'), flags.gateDuration, t0);
  let off: Phase | null = null;
  let skipped: string | null = null;
  if (flags.gateOff) {
    say(`reads: gate off (sold_out_gate switched off for every engine on these databases): the same storm for ${flags.gateDuration} s`);
    off = await withGateOff(ctx, () => phase(ctx, 'gate_off', main, () => stormLoads(ctx, shop, hotId, 'gate-off'), flags.gateDuration, t0));
  } else {
    skipped = 'gate off NOT MEASURED: --no-gate-off (the sold_out_gate flag is global to the databases, so it was not switched)';
    notes.push(skipped);
    say(`reads: ${skipped}`);
  }
  const storms = off ? [on, off] : [on];
  const { hot, violations } = checkHot(hotId, flags.gateStock, await hotRow(ctx, hotId), storms);
  const result = {
    connections: flags.gateConnections, duration_s_per_half: flags.gateDuration, warm_up_s: warmUpS(flags), flag_at_start: flagAtStart,
    on: gateHalf(on), off: off ? gateHalf(off) : null, off_skipped: skipped, hot,
  };
  return { phases: storms, result, violations };
}

// ---- the scenario ----------------------------------------------------------------------

/** Each phase's kinds under `kind.phase`, and their seconds on the scenario's one clock. */
function merge(phases: Phase[]): { kinds: Record<string, KindStats>; timeline: Tick[]; instances: InstanceSummary[] } {
  const kinds: Record<string, KindStats> = {};
  const timeline: Tick[] = [];
  for (const p of phases) {
    for (const k of p.rec.kinds()) kinds[`${k}.${p.label}`] = p.rec.stats([k]);
    for (const t of p.rec.timeline) {
      timeline.push({ t_s: round(t.t_s + p.offset_s), kinds: Object.fromEntries(Object.entries(t.kinds).map(([k, v]) => [`${k}.${p.label}`, v])) });
    }
  }
  return { kinds, timeline, instances: phases.flatMap((p) => p.instances) };
}

export async function reads(ctx: RunCtx): Promise<ScenarioResult> {
  const watch = new PgWatch(ctx.target.pgShards);
  await watch.start();
  const started = new Date();
  const t0 = performance.now();
  const notes: string[] = [];
  let cache, gate;
  try {
    cache = await cacheOnOff(ctx, t0, notes);
    gate = await gateOnOff(ctx, t0, notes);
  } finally {
    await watch.stop();
  }
  const phases = [...cache.phases, ...gate.phases];
  const { kinds, timeline, instances } = merge(phases);
  return {
    name: 'reads', started_at: started.toISOString(), duration_s: round(phases.reduce((s, p) => s + p.rec.seconds, 0)), connections: ctx.flags.connections,
    kinds, groups: {}, instances, timeline, pg: watch.samples,
    extra: {
      cores_used: Object.fromEntries(phases.map((p) => [p.label, p.cores])),
      postgres: pgPeaks(watch.samples),
      cache: cache.result, gate: gate.result, notes,
    },
    violations: gate.violations,
  };
}
