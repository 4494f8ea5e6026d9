// The Black Friday mix: thousands of connections, reads and writes split
// by --mix. Reads: an item by id (Zipf), a category page (search), the status of an
// order the caller owns. Writes: an order of 1-2 Zipf-chosen items with an
// Idempotency-Key, then, for --pay-share of them, a card payment completed at the
// gateway simulator.
import type { RequestData, RequestSpec, Context } from 'autocannon';
import { PATIENT, request } from '../../tools/lib/http.js';
import { pool } from '../../tools/lib/pool.js';
import type { RunCtx, ScenarioResult } from '../context.js';
import { coresUsed, cpuSnapshot } from '../cpu.js';
import { EngineWatch, engineSummary } from '../enginewatch.js';
import type { FixtureCustomer, FixtureItem } from '../fixture.js';
import { cannon, errorCode, keepErrorCode, Recorder, round, type InstanceSummary, type KindStats } from '../load.js';
import { Payer, sessionIdOf } from '../payments.js';
import { PgWatch, pgPeaks } from '../pgwatch.js';
import { roundTripsPerRequest } from '../roundtrips.js';
import { say } from '../say.js';
import { runWrk, type WrkRequest, type WrkResult } from '../wrk.js';
import { rng, shuffled, Zipf } from '../zipf.js';

/** Orders whose status the read side asks for: a ring, newest replacing oldest. */
class OwnedOrders {
  private readonly ring: { token: string; id: string }[] = [];
  private next = 0;
  constructor(private readonly max: number) {}
  add(token: string, id: string): void {
    if (this.ring.length < this.max) this.ring.push({ token, id });
    else this.ring[this.next++ % this.max] = { token, id };
  }
  pick(random: () => number): { token: string; id: string } | undefined {
    return this.ring.length ? this.ring[Math.floor(random() * this.ring.length)] : undefined;
  }
  get size(): number { return this.ring.length; }
}

const OWNED_MAX = 50_000;
const WARM_ORDERS_MAX = 100;
const PAY_DRAIN_MS = 15_000;

export interface Shop {
  random: () => number;
  zipf: Zipf;
  byRank: FixtureItem[];
  customers: FixtureCustomer[];
  keyPrefix: string;
  seq: number;
}

export function makeShop(ctx: RunCtx, salt: number): Shop {
  const random = rng(ctx.flags.seed + salt);
  const byRank = shuffled(ctx.fx.items, rng(ctx.flags.seed)); // same popularity in every scenario
  return { random, zipf: new Zipf(byRank.length, ctx.flags.zipf, random), byRank, customers: ctx.fx.customers, keyPrefix: `bench-${Date.now().toString(36)}-${salt}`, seq: 0 };
}

export function pickCustomer(shop: Shop): FixtureCustomer {
  return shop.customers[Math.floor(shop.random() * shop.customers.length)]!;
}

export function orderLines(shop: Shop): { item_id: string; quantity: number }[] {
  const first = shop.byRank[shop.zipf.next()]!;
  if (shop.random() < 0.5) return [{ item_id: first.id, quantity: 1 }];
  const second = shop.byRank[shop.zipf.next()]!;
  return second.id === first.id ? [{ item_id: first.id, quantity: 1 }] : [{ item_id: first.id, quantity: 1 }, { item_id: second.id, quantity: 1 }];
}

export function postOrder(req: RequestData, shop: Shop, token: string, lines: { item_id: string; quantity: number }[], keyed = true): RequestData {
  req.method = 'POST';
  req.path = '/v1/orders';
  req.headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  if (keyed) req.headers['idempotency-key'] = `${shop.keyPrefix}-${++shop.seq}`;
  req.body = JSON.stringify({ items: lines });
  return req;
}

/** `GET /v1/items/:id` of a Zipf-chosen item, anonymous. */
export function getItem(req: RequestData, shop: Shop): RequestData {
  req.method = 'GET';
  req.path = `/v1/items/${shop.byRank[shop.zipf.next()]!.id}`;
  req.headers = {};
  return req;
}

function readRequests(ctx: RunCtx, shop: Shop, owned: OwnedOrders): RequestSpec[] {
  const { item, search, status } = ctx.flags.readMix;
  const total = item + search + status;
  return [{
    setupRequest: (req: RequestData, c: Context) => {
      const u = shop.random() * total;
      const it = shop.byRank[shop.zipf.next()]!;
      req.method = 'GET';
      req.headers = {};
      const mine = u >= item + search ? owned.pick(shop.random) : undefined;
      if (mine) {
        c.kind = 'status';
        req.path = `/v1/orders/${mine.id}`;
        req.headers = { authorization: `Bearer ${mine.token}` };
      } else if (u >= item && u < item + search) {
        c.kind = 'search';
        req.path = `/v1/items?category_id=${it.category_id}&limit=20`;
      } else {
        c.kind = 'item';
        req.path = `/v1/items/${it.id}`;
      }
      return req;
    },
    onResponse: keepErrorCode,
  }];
}

function writeRequests(ctx: RunCtx, shop: Shop, owned: OwnedOrders, payer: Payer): RequestSpec[] {
  const pay = ctx.payments.available && ctx.flags.payShare > 0;
  const order: RequestSpec = {
    setupRequest: (req: RequestData, c: Context) => {
      const who = pickCustomer(shop);
      c.kind = 'order';
      c.token = who.token;
      c.pay = undefined;
      return postOrder(req, shop, who.token, orderLines(shop), ctx.flags.keys);
    },
    onResponse: (status: number, body: string, c: Context) => {
      c.code = errorCode(status, body);
      if (status !== 201) return;
      const orders = (JSON.parse(body) as { orders: { id: string }[] }).orders;
      for (const o of orders) owned.add(c.token as string, o.id);
      if (pay && shop.random() < ctx.flags.payShare) c.pay = orders[0]?.id;
    },
  };
  if (!pay) return [order];
  const payment: RequestSpec = {
    // No order to pay: returning null restarts the sequence with a new order.
    setupRequest: (req: RequestData, c: Context) => {
      if (!c.pay) return null;
      c.kind = 'payment';
      req.method = 'POST';
      req.path = `/v1/orders/${c.pay as string}/payments`;
      req.headers = { authorization: `Bearer ${c.token as string}`, 'content-type': 'application/json', 'idempotency-key': `${shop.keyPrefix}-${++shop.seq}` };
      req.body = '{"method":"card"}';
      return req;
    },
    onResponse: (status: number, body: string, c: Context) => {
      c.code = errorCode(status, body);
      if (status >= 200 && status < 300) payer.offer(sessionIdOf(JSON.parse(body) as Record<string, unknown>));
    },
  };
  return [order, payment];
}

/** Orders made before the clock starts, so status reads have targets from the first second. */
async function warmOrders(ctx: RunCtx, shop: Shop, owned: OwnedOrders): Promise<void> {
  const n = Math.min(WARM_ORDERS_MAX, ctx.fx.customers.length * 2);
  await pool(Array.from({ length: n }, (_, i) => i), 16, async () => {
    const who = pickCustomer(shop);
    const res = await request(ctx.target.engineUrl, 'POST', '/v1/orders', { ...PATIENT,
      token: who.token, body: { items: orderLines(shop) }, headers: { 'idempotency-key': `${shop.keyPrefix}-warm-${++shop.seq}` },
    });
    if (res.status === 201) for (const o of res.body.orders as { id: string }[]) owned.add(who.token, o.id);
  });
  if (owned.size === 0) throw new Error('black-friday: no warm-up order could be created; is the engine writing?');
}

export function splitConnections(total: number, reads: number, writes: number): { reads: number; writes: number } {
  if (writes === 0) return { reads: total, writes: 0 };
  if (reads === 0) return { reads: 0, writes: total };
  const r = Math.min(total - 1, Math.max(1, Math.round((total * reads) / (reads + writes))));
  return { reads: r, writes: total - r };
}

export async function blackFriday(ctx: RunCtx): Promise<ScenarioResult> {
  const { flags, target } = ctx;
  const shop = makeShop(ctx, 1);
  const owned = new OwnedOrders(OWNED_MAX);
  const payer = new Payer(target.gatewayUrl);
  const roundTrips = flags.smoke ? null : await roundTripsPerRequest(ctx);
  await warmOrders(ctx, shop, owned);
  const ratio = flags.rate ?? flags.mix; // a rate of 0 on one side means no connections there
  const split = splitConnections(flags.connections, ratio.reads, ratio.writes);
  say(`black-friday: ${split.reads} read + ${split.writes} write connections for ${flags.duration} s` +
    (flags.rate ? `, offering ${flags.rate.reads} reads/s + ${flags.rate.writes} writes/s` : '') +
    (ctx.payments.available ? `, paying ${flags.payShare * 100}% of orders` : ' (payments not available yet)'));
  const rec = new Recorder();
  const watch = new PgWatch(target.pgShards);
  await watch.start();
  const engineWatch = new EngineWatch(target.engineUrl);
  await engineWatch.start();
  const cpu0 = cpuSnapshot();
  const started = new Date();
  rec.start();
  payer.start();
  const common = { url: target.engineUrl, duration_s: flags.duration, timeout_s: flags.timeout };
  const runs = [];
  const byWrk = split.reads > 0 && flags.readGenerator === 'wrk' ? wrkReads(ctx, shop, owned, split.reads) : null;
  if (split.reads > 0 && !byWrk) runs.push(cannon({ ...common, title: 'reads', connections: split.reads, requests: readRequests(ctx, shop, owned), defaultKind: 'read', overall_rate: flags.rate?.reads }, rec));
  if (split.writes > 0) runs.push(cannon({ ...common, title: 'writes', connections: split.writes, requests: writeRequests(ctx, shop, owned, payer), defaultKind: 'write', overall_rate: flags.rate?.writes }, rec));
  const instances = await Promise.all(runs);
  const wrk = byWrk ? await byWrk : null;
  rec.stop();
  const pgSamples = await watch.stop();
  const engineSamples = engineWatch.stop();
  const cores = coresUsed(cpu0, cpuSnapshot(), target.enginePid);
  const payments = await payer.drain(PAY_DRAIN_MS);
  const kinds: Record<string, KindStats> = Object.fromEntries(rec.kinds().sort().map((k) => [k, rec.stats([k])]));
  if (wrk) kinds.read = wrkStats(wrk);
  if (wrk) instances.push(wrkInstance(wrk, split.reads));
  return {
    name: 'black-friday', started_at: started.toISOString(), duration_s: Math.round(rec.seconds * 100) / 100, connections: flags.connections,
    kinds, groups: { reads: wrk ? kinds.read! : rec.stats(['item', 'search', 'status', 'read']), writes: rec.stats(['order', 'payment', 'write']) },
    instances, timeline: rec.timeline, pg: pgSamples,
    extra: {
      cores_used: cores,
      postgres: pgPeaks(pgSamples),
      engine: engineSummary(engineSamples),
      round_trips_per_request: roundTrips,
      read_generator: wrk ? { name: 'wrk', cpu_s: wrk.cpu_s, error: wrk.error } : { name: 'autocannon' },
      split, mix: flags.mix, offered_per_s: flags.rate, read_mix: flags.readMix, zipf_s: flags.zipf, top_item_share: round4(shop.zipf.share(0)),
      payments: ctx.payments.available ? { pay_share: flags.payShare, ...payments } : { available: false, reason: ctx.payments.reason },
      status_targets: owned.size,
    },
    violations: [],
  };
}

const round4 = (v: number) => Math.round(v * 10_000) / 10_000;

const WRK_READ_LINES = 5_000;

/**
 * The reads from wrk: the same mix as readRequests, drawn up front (item and category
 * pages Zipf-chosen, the status of orders made before the clock started), sent on a
 * fixed schedule of --rate reads/s, or as fast as answered without it.
 */
function wrkReads(ctx: RunCtx, shop: Shop, owned: OwnedOrders, connections: number): Promise<WrkResult> {
  const { item, search, status } = ctx.flags.readMix;
  const total = item + search + status;
  const lines: WrkRequest[] = Array.from({ length: WRK_READ_LINES }, () => {
    const u = shop.random() * total;
    const it = shop.byRank[shop.zipf.next()]!;
    const mine = u >= item + search ? owned.pick(shop.random) : undefined;
    if (mine) return { method: 'GET', path: `/v1/orders/${mine.id}`, headers: { authorization: `Bearer ${mine.token}` } };
    if (u >= item && u < item + search) return { method: 'GET', path: `/v1/items?category_id=${it.category_id}&limit=20` };
    return { method: 'GET', path: `/v1/items/${it.id}` };
  });
  return runWrk(ctx.target.engineUrl, connections, ctx.flags.duration, lines, ctx.outDir, { rate: ctx.flags.rate?.reads, statuses: true, timeout_s: ctx.flags.timeout });
}

/** wrk's answer as the per-kind figures autocannon's reads give (one kind: all reads). */
function wrkStats(w: WrkResult): KindStats {
  if (w.error || !w.latency) throw new Error(`black-friday reads from wrk: ${w.error ?? 'no summary'}`);
  const secs = Math.max(w.seconds ?? 0, 0.001);
  const status = w.status ?? {};
  const ok = Object.entries(status).filter(([c]) => c.startsWith('2')).reduce((n, [, v]) => n + v, 0);
  return { requests: w.requests, rps: round(w.requests / secs), ok, ok_rps: round(ok / secs), latency: w.latency, status, codes: {} };
}

function wrkInstance(w: WrkResult, connections: number): InstanceSummary {
  const l = w.latency!;
  const non2xx = Object.entries(w.status ?? {}).filter(([c]) => !c.startsWith('2')).reduce((n, [, v]) => n + v, 0);
  return {
    title: 'reads (wrk)', connections, duration_s: round(w.seconds ?? 0), requests: w.requests, rps: w.rps,
    latency_ms: { mean: l.mean_ms, p50: l.p50_ms, p97_5: w.p97_5_ms ?? l.p95_ms, p99: l.p99_ms, max: l.max_ms },
    errors: (w.socket_errors ?? 0) + (w.timeouts ?? 0), timeouts: w.timeouts ?? 0, non2xx, status: w.status ?? {},
  };
}
