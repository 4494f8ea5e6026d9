// Fleet probe phases: fault (one shard cut off), heal (it is back), load (traffic during rolling restarts).
import { existsSync, readFileSync } from 'node:fs';
import { request } from '../lib/http.js';
import { sleep } from '../lib/wait.js';
import { pct, r0, hostOf, errType, type State, loadState, say, result, Flags } from './common.js';
import { report, runOp, type Sample } from './smoke.js';

// ---- fault: one shard cut off; who fails, how fast, and who does not -----------------------

export interface Probe { engine: string; shard: number; atMs: number; status: number; type: string; ms: number }

/** One order per (engine, shard), by customers whose own sessions are on a healthy shard. */
export function probeRound(s: State, down: number, sinceMs: number, round: number, timeoutMs: number): Promise<Probe>[] {
  const healthy = s.customers.filter((c) => c.shard !== down);
  if (healthy.length === 0) throw new Error(`no customer has a session outside shard ${down}`);
  const out: Promise<Probe>[] = [];
  s.engines.forEach((engine, e) => s.shards.forEach((shard, k) => {
    const c = healthy[(round + e + k) % healthy.length]!;
    const atMs = Date.now() - sinceMs;
    out.push(request(engine, 'POST', '/v1/orders', { token: c.token, idempotencyKey: true, timeoutMs, body: { items: [{ item_id: shard.items[0], quantity: 1 }] } })
      .then((ans) => ({ engine, shard: shard.shard, atMs, status: ans.status, type: errType(ans), ms: ans.ms })));
  }));
  return out;
}

export function gaugeSum(metrics: string, name: string, shard: number): number {
  return metrics.split('\n').filter((l) => l.startsWith(`${name}{shard="${shard}"`)).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

/** What an operator would look at during the outage: /readyz and /metrics of each host. */
export async function opsView(s: State, down: number): Promise<string[]> {
  return Promise.all(s.engines.map(async (engine) => {
    const r = await request(engine, 'GET', '/readyz', { timeoutMs: 10_000 });
    const m = await request(engine, 'GET', '/metrics', { timeoutMs: 10_000 });
    const shardState = (r.body?.shards as { shard: number; status: string; ms: number }[] | undefined)?.map((x) => `${x.shard}:${x.status}`).join(' ') ?? r.error;
    const waiting = typeof m.body === 'string' ? gaugeSum(m.body, 'bf_pg_pool_waiting', down) : NaN;
    return `${hostOf(engine)} /readyz ${r.status} ${r.body?.status ?? ''} [${shardState}] in ${r0(r.ms)} ms; bf_pg_pool_waiting{shard="${down}"} = ${waiting}`;
  }));
}

/** Customers whose sessions live on the cut shard cannot authenticate anywhere meanwhile. */
export async function strandedSessions(s: State, down: number): Promise<string> {
  const c = s.customers.find((x) => x.shard === down);
  const healthyShard = s.shards.find((x) => x.shard !== down);
  if (!c || !healthyShard) return 'n/a';
  const a = await request(s.engines[0]!, 'POST', '/v1/orders', { token: c.token, idempotencyKey: true, timeoutMs: 10_000, body: { items: [{ item_id: healthyShard.items[0], quantity: 1 }] } });
  return `${a.status} ${errType(a)} in ${r0(a.ms)} ms`;
}

export async function fault(a: Flags): Promise<boolean> {
  const s = loadState(a.req('state'));
  const down = a.int('shard', 1);
  const t0 = a.int('t0-ms', Date.now());
  const windowMs = a.int('window-ms', 8000);
  const boundMs = a.int('bound-ms', 5000);
  const pending: Promise<Probe>[] = [];
  let ops: Promise<string[]> = Promise.resolve([]);
  for (let round = 0; Date.now() - t0 < windowMs; round++) {
    pending.push(...probeRound(s, down, t0, round, boundMs * 3));
    if (round === 8) ops = opsView(s, down);
    await sleep(250);
  }
  const probes = await Promise.all(pending);
  const stranded = await strandedSessions(s, down);
  return judgeFault(s, probes, down, boundMs, await ops, stranded);
}

/** "20x 201, 2x 503 unavailable": how many probes got each answer. */
export function tally(probes: Probe[]): string {
  const counts = new Map<string, number>();
  for (const p of probes) {
    const k = p.status >= 200 && p.status < 300 ? String(p.status) : `${p.status} ${p.type}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n}x ${k}`).join(', ');
}

export function judgeFault(s: State, probes: Probe[], down: number, boundMs: number, ops: string[], stranded: string): boolean {
  const cut = probes.filter((p) => p.shard === down);
  const others = probes.filter((p) => p.shard !== down);
  const othersOk = others.filter((p) => p.status === 201).length;
  // Fast means within the bound, or no slower than the healthy shards' slowest answer in
  // the same window: on a box busy with other work every answer is slow, and a cut shard
  // that answers as fast as a healthy one is not piling up.
  const healthyMaxMs = pct(others.map((p) => p.ms), 100);
  const limitMs = Math.max(boundMs, healthyMaxMs);
  const fast503 = cut.filter((p) => p.status === 503 && p.type === 'unavailable' && p.ms <= limitMs);
  const cutMs = cut.map((p) => p.ms);
  const first503 = Math.min(...cut.filter((p) => p.status === 503).map((p) => p.atMs + p.ms));
  for (const e of s.engines) {
    const line = s.shards.map((sh) => {
      const mine = probes.filter((p) => p.engine === e && p.shard === sh.shard);
      const ms = mine.map((p) => p.ms);
      return `shard ${sh.shard}${sh.shard === down ? ' (cut)' : ''}: ${tally(mine)}, p50 ${r0(pct(ms, 50))} ms, max ${r0(pct(ms, 100))} ms`;
    });
    say(`${hostOf(e)}  ${line.join(' | ')}`);
  }
  for (const p of cut.filter((x) => x.ms > limitMs).slice(0, 10)) {
    say(`  over the bound: ${hostOf(p.engine)} sent ${r0(p.atMs)} ms after the cut, answered ${p.status} ${p.type} after ${r0(p.ms)} ms`);
  }
  for (const l of ops) say(`during the cut: ${l}`);
  say(`a customer whose session lives on shard ${down}, ordering from a healthy shard: ${stranded}`);
  const isolated = othersOk === others.length && fast503.length === cut.length && cut.length > 0;
  say(`shard ${down}: ${fast503.length}/${cut.length} answered 503 unavailable within ${r0(limitMs)} ms (bound ${boundMs} ms, healthy max ${r0(healthyMaxMs)} ms; p50 ${r0(pct(cutMs, 50))} ms, p95 ${r0(pct(cutMs, 95))} ms, max ${r0(pct(cutMs, 100))} ms; first 503 ${r0(first503)} ms after the cut); ` +
    `other shards: ${othersOk}/${others.length} succeeded (p95 ${r0(pct(others.map((p) => p.ms), 95))} ms)`);
  result('fault', {
    isolated, shard: down, cut_probes: cut.length, cut_503: fast503.length, cut_p50_ms: r0(pct(cutMs, 50)), cut_p95_ms: r0(pct(cutMs, 95)),
    cut_max_ms: r0(pct(cutMs, 100)), first_503_after_cut_ms: r0(first503), other_probes: others.length, other_ok: othersOk,
    other_p95_ms: r0(pct(others.map((p) => p.ms), 95)), bound_ms: boundMs, limit_ms: r0(limitMs),
  });
  return isolated;
}

// ---- heal: the shard is back; how long until every app server uses it again ------------------

export async function heal(a: Flags): Promise<boolean> {
  const s = loadState(a.req('state'));
  const down = a.int('shard', 1);
  const t0 = a.int('t0-ms', Date.now());
  const timeoutMs = a.int('timeout-ms', 30_000);
  const firstOk = new Map<string, number>();
  let allGreenMs = -1;
  for (let round = 0; Date.now() - t0 < timeoutMs && allGreenMs < 0; round++) {
    const probes = await Promise.all(probeRound(s, down, t0, round, 5000));
    for (const p of probes) if (p.shard === down && p.status === 201 && !firstOk.has(p.engine)) firstOk.set(p.engine, p.atMs + p.ms);
    if (probes.every((p) => p.status === 201)) allGreenMs = Date.now() - t0;
    else await sleep(250);
  }
  let readyMs = -1;
  while (allGreenMs >= 0 && readyMs < 0 && Date.now() - t0 < timeoutMs) {
    const r = await Promise.all(s.engines.map((e) => request(e, 'GET', '/readyz', { timeoutMs: 5000 })));
    if (r.every((x) => x.status === 200)) readyMs = Date.now() - t0;
    else await sleep(250);
  }
  for (const e of s.engines) say(`${hostOf(e)}: first order on shard ${down} succeeded ${firstOk.has(e) ? `${r0(firstOk.get(e)!)} ms` : 'never'} after the restore`);
  const healed = allGreenMs >= 0 && readyMs >= 0;
  say(healed ? `healed: every app server x every shard succeeded ${allGreenMs} ms after the restore; /readyz 200 everywhere at ${readyMs} ms` : `NOT healed within ${timeoutMs} ms`);
  result('heal', { healed, shard: down, all_ok_after_ms: allGreenMs, readyz_ok_after_ms: readyMs, per_engine_ms: Object.fromEntries([...firstOk].map(([e, ms]) => [hostOf(e), r0(ms)])) });
  return healed;
}

// ---- load: steady traffic while app servers are restarted one by one -------------------------

/** The balancer's view: every engine not listed (by host:port) in the rotation file. */
export function inRotation(s: State, file: string): string[] {
  const out = existsSync(file) ? readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean) : [];
  return s.engines.filter((e) => !out.includes(hostOf(e)));
}

export async function load(a: Flags): Promise<boolean> {
  const s = loadState(a.req('state'));
  const rotationFile = a.req('rotation-file');
  const stopFile = a.req('stop-file');
  const maxMs = a.int('max-ms', 180_000);
  const started = Date.now();
  let live = inRotation(s, rotationFile);
  const refresh = setInterval(() => { live = inRotation(s, rotationFile); }, 50);
  const samples: Sample[] = [];
  let next = 0;
  const running = () => !existsSync(stopFile) && Date.now() - started < maxMs;
  await Promise.all(Array.from({ length: a.int('concurrency', 6) }, async () => {
    while (running()) {
      const i = next++;
      const engine = live[i % Math.max(1, live.length)];
      if (!engine) { await sleep(50); continue; }
      samples.push(await runOp(s, i, i % 3 === 0 ? 'create_order' : 'get_item', engine));
    }
  }));
  clearInterval(refresh);
  const { failed } = report(samples, Date.now() - started);
  const ms = samples.map((x) => x.ms);
  result('load', {
    ok: failed.length === 0 && samples.length > 0, requests: samples.length, failed: failed.length,
    p99_ms: r0(pct(ms, 99)), max_ms: r0(pct(ms, 100)),
    per_engine: Object.fromEntries(s.engines.map((e) => [hostOf(e), samples.filter((x) => x.engine === e).length])),
  });
  return failed.length === 0 && samples.length > 0;
}
