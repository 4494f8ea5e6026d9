// Fleet probe phases: setup (catalog and customers on every shard) and smoke (a bounded mixed load).
import { randomUUID } from 'node:crypto';
import { expectStatus, request, type Answer } from '../lib/http.js';
import { shardOfToken } from '../lib/ids.js';
import { sleep } from '../lib/wait.js';
import { pct, r0, hostOf, type Customer, type ShardData, type State, loadState, saveState, say, result, Flags } from './common.js';

// ---- setup -------------------------------------------------------------------------

/** A category on every shard (creation fills the emptiest shard), two items in each. */
export async function catalog(engines: string[], admin: string, shardCount: number): Promise<ShardData[]> {
  const byShard = new Map<number, ShardData>();
  for (let i = 0; i < 4 * shardCount && byShard.size < shardCount; i++) {
    const c = expectStatus(await request(engines[i % engines.length]!, 'POST', '/v1/categories', { token: admin, body: { name: `deploy-proof-${randomUUID().slice(0, 8)}` } }), 201, 'create category');
    if (!byShard.has(c.shard)) byShard.set(c.shard, { shard: c.shard, category_id: c.id, items: [] });
  }
  if (byShard.size < shardCount) throw new Error(`categories landed on ${byShard.size} of ${shardCount} shards`);
  const shards = [...byShard.values()].sort((a, b) => a.shard - b.shard);
  for (const [i, s] of shards.entries()) {
    for (let k = 0; k < 2; k++) {
      const item = expectStatus(await request(engines[(i + k) % engines.length]!, 'POST', '/v1/items', {
        token: admin, idempotencyKey: true,
        body: { category_id: s.category_id, name: `proof item ${s.shard}.${k}`, price_cents: 1250, currency: 'USD', stock: 1_000_000 },
      }), 201, 'create item');
      s.items.push(item.id);
    }
  }
  return shards;
}

export async function register(engine: string): Promise<Customer> {
  const email = `proof-${randomUUID().slice(0, 12)}@deploy-local.test`;
  const password = 'proof-password-123';
  const u = expectStatus(await request(engine, 'POST', '/v1/users', { body: { email, password } }), 201, 'register');
  const s = expectStatus(await request(engine, 'POST', '/v1/sessions', { body: { email, password } }), 201, 'login');
  return { email, id: u.id, token: s.token, shard: shardOfToken(s.token) };
}

/** At least two customers whose sessions live on each shard (bounded attempts). */
export async function customersOnEveryShard(engines: string[], shardCount: number): Promise<Customer[]> {
  const out: Customer[] = [];
  const count = (s: number) => out.filter((c) => c.shard === s).length;
  for (let i = 0; i < 20 * shardCount; i++) {
    if ([...Array(shardCount).keys()].every((s) => count(s) >= 2)) break;
    out.push(await register(engines[i % engines.length]!));
  }
  return out;
}

export async function setup(a: Flags): Promise<boolean> {
  const engines = a.req('engines').split(',');
  const login = expectStatus(await request(engines[0]!, 'POST', '/v1/sessions', { body: { email: a.req('admin-email'), password: a.req('admin-password') } }), 201, 'admin login');
  const ready = expectStatus(await request(engines[0]!, 'GET', '/readyz'), 200, 'readyz');
  const shardCount = (ready.shards as unknown[]).length;
  const shards = await catalog(engines, login.token, shardCount);
  const customers = await customersOnEveryShard(engines, shardCount);
  saveState(a.req('state'), { engines, shards, customers, orders: [] });
  for (const s of shards) say(`shard ${s.shard}: category ${s.category_id}, items ${s.items.join(' ')}`);
  say(`${customers.length} customers (sessions on shards ${customers.map((c) => c.shard).join(',')})`);
  result('setup', { engines: engines.length, shards: shardCount, customers: customers.length });
  return true;
}

// ---- smoke: a bounded mixed load through every app server -----------------------------

export type Op = 'get_item' | 'list_items' | 'list_categories' | 'create_order' | 'get_order' | 'list_orders' | 'register';
export const MIX: [Op, number][] = [['get_item', 35], ['list_items', 15], ['list_categories', 10], ['create_order', 20], ['get_order', 10], ['list_orders', 5], ['register', 5]];

export function opFor(i: number): Op {
  let n = (i * 37) % 100; // deterministic spread over the mix
  for (const [op, w] of MIX) {
    if (n < w) return op;
    n -= w;
  }
  return 'get_item';
}

export interface Sample { op: Op; engine: string; status: number; expected: number; ms: number; detail: string; retryAfterS?: number;
  /** Sent again once after a 503 (runOpRetried): this is the retry's answer. */
  retried?: boolean }

export async function runOp(s: State, i: number, op: Op, engine: string, key: string = randomUUID()): Promise<Sample> {
  const shard = s.shards[i % s.shards.length]!;
  const item = shard.items[i % shard.items.length]!;
  const c = s.customers[i % s.customers.length]!;
  const done = (a: Answer, expected: number): Sample => ({ op, engine, status: a.status, expected, ms: a.ms,
    detail: `${a.error ?? ''}${a.status !== expected ? JSON.stringify(a.body)?.slice(0, 200) : ''}`,
    ...(a.headers.has('retry-after') ? { retryAfterS: Number(a.headers.get('retry-after')) } : {}) });
  switch (op) {
    case 'get_item': return done(await request(engine, 'GET', `/v1/items/${item}`), 200);
    case 'list_items': return done(await request(engine, 'GET', `/v1/items?category_id=${shard.category_id}&limit=10`), 200);
    case 'list_categories': return done(await request(engine, 'GET', '/v1/categories'), 200);
    case 'list_orders': return done(await request(engine, 'GET', '/v1/orders?limit=5', { token: c.token }), 200);
    case 'register': {
      const body = { email: `smoke-${randomUUID().slice(0, 12)}@deploy-local.test`, password: 'smoke-password-123' };
      return done(await request(engine, 'POST', '/v1/users', { body }), 201);
    }
    case 'get_order': {
      const o = s.orders[i % Math.max(1, s.orders.length)];
      if (o) return done(await request(engine, 'GET', `/v1/orders/${o.id}`, { token: o.token }), 200);
    } // no order yet: create one instead
    // falls through
    case 'create_order': {
      const a = await request(engine, 'POST', '/v1/orders', { token: c.token, idempotencyKey: key, body: { items: [{ item_id: item, quantity: 1 }] } });
      if (a.status === 201) for (const o of a.body.orders) s.orders.push({ id: o.id, token: c.token, shard: o.shard });
      return { ...done(a, 201), op: 'create_order' };
    }
  }
}

/** Longest Retry-After a smoke request waits for before its one retry. */
const RETRY_AFTER_MAX_S = 3;

/**
 * One op as a client following the API does it: a 503 `unavailable` (a shard briefly
 * unreachable from that server, say on a starved machine) is sent again once after its
 * Retry-After, a write with the same Idempotency-Key. A shard that stays unreachable
 * still fails the retry; the retries are counted in the report.
 */
export async function runOpRetried(s: State, i: number, op: Op, engine: string): Promise<Sample> {
  const key = randomUUID();
  const first = await runOp(s, i, op, engine, key);
  if (first.status !== 503) return first;
  await sleep(Math.min(RETRY_AFTER_MAX_S, Math.max(1, first.retryAfterS ?? 1)) * 1000);
  return { ...(await runOp(s, i, op, engine, key)), retried: true };
}

export function report(samples: Sample[], elapsedMs: number): { failed: Sample[] } {
  const failed = samples.filter((x) => x.status !== x.expected);
  const ms = samples.map((x) => x.ms);
  say(`${samples.length} requests in ${r0(elapsedMs)} ms (${r0((samples.length * 1000) / elapsedMs)} req/s), ${failed.length} unexpected; ` +
    `latency p50 ${r0(pct(ms, 50))} ms, p95 ${r0(pct(ms, 95))} ms, p99 ${r0(pct(ms, 99))} ms, max ${r0(pct(ms, 100))} ms`);
  const engines = [...new Set(samples.map((x) => x.engine))];
  say(`per app server: ${engines.map((e) => `${hostOf(e)} ${samples.filter((x) => x.engine === e && x.status === x.expected).length}/${samples.filter((x) => x.engine === e).length}`).join(', ')}`);
  say(`per route: ${MIX.map(([op]) => `${op} ${samples.filter((x) => x.op === op).length}`).join(', ')}`);
  for (const r of samples.filter((x) => x.retried).slice(0, 5)) say(`  retried after a 503: ${r.op} on ${hostOf(r.engine)} -> ${r.status}`);
  for (const f of failed.slice(0, 5)) say(`  unexpected: ${f.op} on ${hostOf(f.engine)} -> ${f.status} (wanted ${f.expected}) ${f.detail}`);
  return { failed };
}

/** Card payments through the gateway simulator; its webhook reaches ENGINE_PUBLIC_URL. */
export async function payments(s: State, gateway: string): Promise<{ ok: number; total: number; ms: number }> {
  const started = Date.now();
  const results = await Promise.all(s.shards.map(async (shard, i) => {
    const engine = s.engines[i % s.engines.length]!;
    const c = s.customers.find((x) => x.shard === shard.shard) ?? s.customers[0]!;
    const o = expectStatus(await request(engine, 'POST', '/v1/orders', { token: c.token, idempotencyKey: true, body: { items: [{ item_id: shard.items[0], quantity: 1 }] } }), 201, 'order to pay').orders[0];
    const p = expectStatus(await request(engine, 'POST', `/v1/orders/${o.id}/payments`, { token: c.token, idempotencyKey: true, body: { method: 'card' } }), 201, 'create payment');
    expectStatus(await request(gateway, 'POST', `/v1/sessions/${p.gateway_session_id}/complete`, { body: { outcome: 'succeeded' } }), 200, 'pay at the gateway');
    for (let k = 0; k < 100; k++) { // <= ~20 s
      const got = await request(s.engines[(i + 1) % s.engines.length]!, 'GET', `/v1/orders/${o.id}`, { token: c.token });
      if (got.status === 200 && ['paid', 'completed'].includes(got.body.status)) return true;
      await sleep(200);
    }
    return false;
  }));
  return { ok: results.filter(Boolean).length, total: results.length, ms: Date.now() - started };
}

export async function smoke(a: Flags): Promise<boolean> {
  const s = loadState(a.req('state'));
  const total = a.int('requests', 300);
  const concurrency = a.int('concurrency', 8);
  const samples: Sample[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++;
      samples.push(await runOpRetried(s, i, opFor(i), s.engines[i % s.engines.length]!));
    }
  }));
  const { failed } = report(samples, performance.now() - started);
  const gateway = a.opt('gateway');
  const paid = gateway ? await payments(s, gateway) : null;
  if (paid) say(`payments: ${paid.ok}/${paid.total} card payments paid at the gateway simulator reached paid/completed via its webhooks in ${paid.ms} ms`);
  saveState(a.req('state'), s);
  const ms = samples.map((x) => x.ms);
  const ok = failed.length === 0 && (paid === null || paid.ok === paid.total);
  result('smoke', {
    ok, requests: samples.length, unexpected: failed.length, retried_503: samples.filter((x) => x.retried).length, p50_ms: r0(pct(ms, 50)), p95_ms: r0(pct(ms, 95)), max_ms: r0(pct(ms, 100)),
    per_engine: Object.fromEntries(s.engines.map((e) => [hostOf(e), samples.filter((x) => x.engine === e).length])),
    payments: paid ? `${paid.ok}/${paid.total}` : 'skipped',
  });
  return ok;
}
