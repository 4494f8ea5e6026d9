// Where a request's CPU goes, kind by kind: each kind of the Black Friday mix sent
// alone by wrk (a C load generator that costs a fifth of autocannon per request) over a
// moderate number of connections, and the cores every process group used meanwhile.
// Dividing by the requests answered gives milliseconds of engine, Postgres and Redis
// CPU per request of that kind: what a mix costs, and what bounds it on N cores.
import type { RequestData } from 'autocannon';
import { PATIENT, request } from '../../tools/lib/http.js';
import { pool } from '../../tools/lib/pool.js';
import type { RunCtx, ScenarioResult } from '../context.js';
import { coresUsed, cpuSnapshot } from '../cpu.js';
import { say } from '../say.js';
import { runWrk, wrkBin, type WrkRequest } from '../wrk.js';
import { getItem, makeShop, orderLines, pickCustomer, type Shop } from './black-friday.js';

const VARIANTS = 2_000;
const OWNED_ORDERS = 200;

export interface KindCost {
  rps: number; p50_ms: number | null; p99_ms: number | null; errors: number;
  /** CPU milliseconds per answered request, per process group. */
  cpu_ms: { engine: number | null; postgres: number | null; redis: number | null; wrk: number | null };
}

function order(shop: Shop, lines: { item_id: string; quantity: number }[], keyed: boolean): WrkRequest {
  const who = pickCustomer(shop);
  return {
    method: 'POST', path: '/v1/orders', body: JSON.stringify({ items: lines }), keyed,
    headers: { authorization: `Bearer ${who.token}`, 'content-type': 'application/json' },
  };
}

const oneLine = (shop: Shop) => [orderLines(shop)[0]!];
const twoLines = (shop: Shop) => {
  for (;;) {
    const lines = orderLines(shop);
    if (lines.length === 2) return lines;
  }
};

async function ownedOrders(ctx: RunCtx, shop: Shop): Promise<WrkRequest[]> {
  const made = await pool(Array.from({ length: OWNED_ORDERS }, (_, i) => i), 16, async () => {
    const who = pickCustomer(shop);
    const res = await request(ctx.target.engineUrl, 'POST', '/v1/orders', { ...PATIENT, token: who.token, body: { items: oneLine(shop) } });
    return res.status === 201 ? { token: who.token, id: (res.body.orders as { id: string }[])[0]!.id } : null;
  });
  return made.filter((m) => m !== null).map((m) => ({ method: 'GET', path: `/v1/orders/${m.id}`, headers: { authorization: `Bearer ${m.token}` } }));
}

/** The request lines of each kind, built from the fixture like black-friday builds them. */
async function kinds(ctx: RunCtx): Promise<Record<string, WrkRequest[]>> {
  const shop = makeShop(ctx, 4);
  const many = (make: () => WrkRequest) => Array.from({ length: VARIANTS }, make);
  return {
    item: many(() => ({ method: 'GET', path: getItem({} as RequestData, shop).path! })),
    search: many(() => ({ method: 'GET', path: `/v1/items?category_id=${shop.byRank[shop.zipf.next()]!.category_id}&limit=20` })),
    status: await ownedOrders(ctx, shop),
    order_no_key: many(() => order(shop, oneLine(shop), false)),
    order_keyed: many(() => order(shop, oneLine(shop), true)),
    order_two_items_keyed: many(() => order(shop, twoLines(shop), true)),
  };
}

export async function costs(ctx: RunCtx): Promise<ScenarioResult> {
  const { flags, target } = ctx;
  const started = new Date();
  const perKind: Record<string, KindCost> = {};
  const cores: Record<string, Record<string, number> | null> = {};
  const skipped = wrkBin() ? null : 'wrk not found: install it with apt-get install -y wrk';
  if (skipped) say(`costs: ${skipped}`);
  for (const [kind, requests] of Object.entries(skipped ? {} : await kinds(ctx))) {
    say(`costs: ${kind} alone from wrk, ${flags.costsConnections} connections, ${flags.costsDuration} s`);
    const cpu0 = cpuSnapshot();
    const w = await runWrk(target.engineUrl, flags.costsConnections, flags.costsDuration, requests, ctx.outDir);
    const c = coresUsed(cpu0, cpuSnapshot(), target.enginePid);
    if (w.error) { say(`  ${w.error}`); continue; }
    const per = (g: string) => (w.rps > 0 && c?.[g] !== undefined ? round3((c[g]! * 1000) / w.rps) : null);
    perKind[kind] = {
      rps: w.rps, p50_ms: w.p50_ms, p99_ms: w.p99_ms, errors: w.errors,
      cpu_ms: { engine: per('engine'), postgres: per('postgres'), redis: per('redis'), wrk: w.requests > 0 && w.cpu_s !== null ? round3((w.cpu_s * 1000) / w.requests) : null },
    };
    cores[kind] = c;
  }
  return {
    name: 'costs', started_at: started.toISOString(), duration_s: flags.costsDuration, connections: flags.costsConnections,
    kinds: {}, groups: {}, instances: [], timeline: [], pg: [],
    extra: { per_kind: perKind, cores_used: cores, skipped, generator: 'wrk -t1' },
    violations: [],
  };
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
