// Fleet probe phase `record`: steady checkouts, card payments and reads through every
// engine while the HA proof breaks the databases underneath, written down answer by
// answer (ha-records.ts) for ha-verify. A client that keeps the contract of docs/API.md:
// a failed write is retried with the same Idempotency-Key and body (on the next engine,
// as a load balancer would), every 200 ms, until a 2xx or a final 4xx, at most
// --give-up-ms; then it is given up (abandoned) and counted.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expectStatus, PATIENT, request, type Answer } from '../lib/http.js';
import { sleep } from '../lib/wait.js';
import { Flags, hostOf, loadState, result, say, type Customer, type ShardData, type State } from './common.js';
import { Books, completedBefore, FILES, is2xx, retryable, type AnswerLine, type Op, type OrderAck, type RunInfo } from './ha-records.js';

const RETRY_EVERY_MS = 200;
const STATUS_EVERY_MS = 250;

interface Call { op: Op; shard: number; method: string; path: string; token?: string; key?: string; customer?: string; body?: unknown; base?: string }

class Recorder {
  private engineTurn = 0;
  private readonly turns = new Map<number, number>();

  constructor(readonly s: State, readonly books: Books, readonly run: RunInfo, readonly opts: { gateway?: string; giveUpMs: number; timeoutMs: number; payEvery: number }) {}

  /** The next engine in rotation: every attempt, retries included, goes to the next one. */
  private engine(): string { return this.s.engines[this.engineTurn++ % this.s.engines.length]!; }

  /** Customers whose sessions live on the shard they order from: a request then depends on that shard alone. */
  customerFor(shard: number): Customer {
    const own = this.s.customers.filter((c) => c.shard === shard);
    const pool = own.length ? own : this.s.customers;
    const turn = this.turns.get(shard) ?? 0;
    this.turns.set(shard, turn + 1);
    return pool[turn % pool.length]!;
  }

  /** One request to its end: a 2xx or a final answer (and who gave it, at which attempt), or null: given up after giveUpMs. */
  async send(c: Call): Promise<{ a: Answer; engine: string; attempt: number } | null> {
    const first = Date.now();
    for (let attempt = 1; ; attempt++) {
      const base = c.base ?? this.engine();
      const t = Date.now();
      const a = await request(base, c.method, c.path, { token: c.token, body: c.body, idempotencyKey: c.key, timeoutMs: this.opts.timeoutMs });
      const again = c.op === 'pay_gateway' ? a.status === 0 || a.status >= 500 : retryable(a);
      const givingUp = again && Date.now() - first + RETRY_EVERY_MS > this.opts.giveUpMs;
      const line: AnswerLine = {
        t, ms: Math.round(a.ms), op: c.op, shard: c.shard, status: a.status, type: errorType(a), engine: hostOf(base), attempt,
        ...(errorCode(a) ? { code: errorCode(a) } : {}), ...(c.key ? { key: c.key, customer: c.customer } : {}),
        ...(again ? { retry: true as const } : {}), ...(givingUp ? { gave_up: true as const } : {}),
      };
      this.books.answer(line);
      if (!again) return { a, engine: hostOf(base), attempt };
      if (givingUp) return null;
      await sleep(RETRY_EVERY_MS);
    }
  }

  /** One single-item checkout on a shard; every pay-every-th acknowledged order is paid by card. */
  async checkout(shard: ShardData, item: string): Promise<void> {
    const c = this.customerFor(shard.shard);
    const key = `${this.run.key_prefix}-o-${randomUUID()}`;
    const r = await this.send({ op: 'create_order', shard: shard.shard, method: 'POST', path: '/v1/orders', token: c.token, key, customer: c.email, body: { items: [{ item_id: item, quantity: 1 }] } });
    if (!r || !is2xx(r.a.status)) return;
    for (const o of (r.a.body?.orders ?? []) as Record<string, any>[]) {
      const ack: OrderAck = {
        k: 'order', t: Date.now(), key, engine: r.engine, customer: c.email, customer_id: o.customer_id, shard: o.shard, id: o.id, status: o.status,
        total_cents: o.total_cents, currency: o.currency, items: (o.lines ?? []).map((l: any) => ({ item_id: l.item_id, quantity: l.quantity, price_cents: l.price_cents })),
      };
      this.books.ack(ack);
      if (this.opts.payEvery > 0 && this.books.n.orders % this.opts.payEvery === 0) await this.pay(c, ack);
    }
  }

  async pay(c: Customer, o: OrderAck): Promise<void> {
    const key = `${this.run.key_prefix}-p-${randomUUID()}`;
    const r = await this.send({ op: 'create_payment', shard: o.shard, method: 'POST', path: `/v1/orders/${o.id}/payments`, token: c.token, key, customer: c.email, body: { method: 'card' } });
    if (!r || !is2xx(r.a.status)) return;
    const p = r.a.body as Record<string, any>;
    this.books.ack({
      k: 'payment', t: Date.now(), key, engine: r.engine, customer: c.email, order_id: p.order_id, id: p.id, status: p.status,
      amount_cents: p.amount_cents, currency: p.currency, gateway_session_id: p.gateway_session_id ?? null,
    });
    if (!this.opts.gateway || !p.gateway_session_id) return;
    const g = await this.send({ op: 'pay_gateway', shard: o.shard, method: 'POST', path: `/v1/sessions/${p.gateway_session_id}/complete`, base: this.opts.gateway, body: { outcome: 'succeeded' } });
    if (g && (is2xx(g.a.status) || completedBefore({ op: 'pay_gateway', attempt: g.attempt, status: g.a.status }))) this.books.n.paid_at_gateway++;
  }

  async read(shard: ShardData, item: string): Promise<void> {
    await this.send({ op: 'get_item', shard: shard.shard, method: 'GET', path: `/v1/items/${item}` });
  }
}

function errorType(a: Answer): string {
  if (is2xx(a.status)) return '-';
  return (a.body as { error?: { type?: string } } | null)?.error?.type ?? a.error ?? 'client_error';
}
const errorCode = (a: Answer): string | undefined => (a.body as { error?: { code?: string } } | null)?.error?.code;

/** The customers' user ids (setup stores them; an older state file is completed from /v1/users/me). */
async function customerIds(s: State): Promise<RunInfo['customers']> {
  return Promise.all(s.customers.map(async (c) => {
    const id = c.id ?? expectStatus(await request(s.engines[0]!, 'GET', '/v1/users/me', { token: c.token, ...PATIENT }), 200, 'profile').id as string;
    return { email: c.email, id, shard: c.shard };
  }));
}

export async function record(a: Flags): Promise<boolean> {
  const s = loadState(a.req('state'));
  const dir = a.req('out');
  const stopFile = a.req('stop-file');
  const maxMs = a.int('max-ms', 600_000);
  mkdirSync(dir, { recursive: true });
  const run: RunInfo = { key_prefix: `ha-${randomUUID().slice(0, 8)}`, started_ms: Date.now(), engines: s.engines, customers: await customerIds(s) };
  writeFileSync(path.join(dir, FILES.run), JSON.stringify(run, null, 2));
  const books = new Books(dir, Math.max(...s.shards.map((x) => x.shard)) + 1);
  const rec = new Recorder(s, books, run, {
    gateway: a.opt('gateway'), giveUpMs: a.int('give-up-ms', 60_000), timeoutMs: a.int('timeout-ms', 10_000), payEvery: a.int('pay-every', 3),
  });
  books.flush();
  const tick = setInterval(() => {
    if (!books.stopping && (existsSync(stopFile) || Date.now() - run.started_ms >= maxMs)) books.stopping = true;
    books.flush();
  }, STATUS_EVERY_MS);
  let next = 0;
  await Promise.all(Array.from({ length: a.int('concurrency', 6) }, async () => {
    while (!books.stopping) {
      const i = next++;
      const shard = s.shards[i % s.shards.length]!;
      const item = shard.items[Math.floor(i / s.shards.length) % shard.items.length]!;
      books.n.inflight++;
      try {
        await (i % 4 === 3 ? rec.read(shard, item) : rec.checkout(shard, item));
      } finally {
        books.n.inflight--;
      }
    }
  }));
  clearInterval(tick);
  books.flush();
  return summary(books, run, dir);
}

function summary(books: Books, run: RunInfo, dir: string): boolean {
  const n = books.n;
  const elapsedMs = Date.now() - run.started_ms;
  say(`record: ${n.orders} orders and ${n.payments} payments acknowledged (${n.paid_at_gateway} paid at the gateway) in ${elapsedMs} ms; ` +
    `${n.ok} 2xx answers, ${n.failed} failed and retried, ${n.refused} refused (final 4xx), ${n.retries} retries, ${n.abandoned} given up; written to ${dir}`);
  for (const r of books.refusals) say(`  refused: ${r.op} on shard ${r.shard} via ${r.engine} -> ${r.status} ${r.type} ${r.code ?? ''} (attempt ${r.attempt}, key ${r.key ?? '-'})`);
  const ok = n.orders > 0 && n.refused === 0 && n.abandoned === 0;
  result('record', { ok, elapsed_ms: elapsedMs, orders: n.orders, payments: n.payments, paid_at_gateway: n.paid_at_gateway, ok_answers: n.ok, failed: n.failed, refused: n.refused, retries: n.retries, abandoned: n.abandoned, key_prefix: run.key_prefix });
  return ok;
}
