// ha-verify's view of the databases: which host of each shard takes writes now (after
// failovers and switchovers), and the rows the acknowledged writes name, read there.
// Every statement takes its values as bound parameters.
import pg from 'pg';
import { hostName, parseShardUrl, redact, splitShardList } from '../../src/shard/hosts.js';
import { probeHost } from '../../src/shard/primary.js';
import { sleep } from '../lib/wait.js';

export interface Primary { shard: number; host: string; url: string; hosts: number }

const CONNECT_MS = 5000;

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_MS, statement_timeout: 60_000, query_timeout: 65_000 });
  c.on('error', () => undefined); // a server gone mid-check fails the query, not the process
  await c.connect();
  return c;
}

/** What a host is now: writable, standby, read-only, or unreachable (with why): the engine's own probe. */
async function roleOf(url: string): Promise<string> {
  const { state, error } = await probeHost(url, CONNECT_MS, 'ha-verify');
  // The system error's code (ECONNREFUSED) says it shortest; else the whole message.
  return error ? `${state} (${/\bE[A-Z]{3,}\b/.exec(error)?.[0] ?? error})` : state;
}

/**
 * The one host of each shard that takes writes, waiting up to `timeoutMs` for a failover
 * still under way; none or two after that throws, naming every host's role.
 */
export async function findPrimaries(pgShards: string, timeoutMs: number): Promise<Primary[]> {
  const shards = splitShardList(pgShards).map((u) => parseShardUrl(u));
  if (shards.length === 0) throw new Error('--pg-shards names no shard');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await Promise.all(shards.map(async (t) => Promise.all(t.hosts.map(async (h) => ({ h, role: await roleOf(t.urlFor(h)) })))));
    const bad = seen.map((hosts, shard) => ({ shard, hosts, n: hosts.filter((x) => x.role === 'writable').length })).filter((x) => x.n !== 1);
    if (bad.length === 0) {
      return seen.map((hosts, shard) => {
        const p = hosts.find((x) => x.role === 'writable')!;
        return { shard, host: hostName(p.h), url: shards[shard]!.urlFor(p.h), hosts: hosts.length };
      });
    }
    if (Date.now() >= deadline) {
      const why = bad.map((b) => `shard ${b.shard} (${redact(shards[b.shard]!.display)}): ${b.n === 0 ? 'no host takes writes' : `${b.n} hosts take writes`}: ` +
        b.hosts.map((x) => `${hostName(x.h)} ${x.role}`).join(', '));
      throw new Error(`cannot tell each shard's primary after ${timeoutMs} ms: ${why.join('; ')}`);
    }
    await sleep(1000);
  }
}

export interface OrderRow { id: number; customer: string; status: string; currency: string; total_cents: number; request_key: string | null; lines: { item: number; quantity: number; price_cents: number }[] }
export interface PaymentRow { id: number; order_id: number; status: string; amount_cents: number; currency: string; gateway_session_id: string | null }

/** The rows and keys of one shard's primary. */
export class ShardRows {
  private constructor(readonly shard: number, private readonly c: pg.Client) {}

  static async open(p: Primary): Promise<ShardRows> { return new ShardRows(p.shard, await client(p.url)); }
  close(): Promise<void> { return this.c.end().catch(() => undefined); }

  async orders(locals: number[]): Promise<Map<number, OrderRow>> {
    const r = await this.c.query(`SELECT o.id::bigint AS id, o.customer_id::text AS customer, o.status, trim(o.currency) AS currency, o.total_cents, o.request_key,
        coalesce((SELECT jsonb_agg(jsonb_build_object('item', l.item_id, 'quantity', l.quantity, 'price_cents', l.price_cents) ORDER BY l.item_id)
                  FROM order_lines l WHERE l.order_id = o.id), '[]'::jsonb) AS lines
      FROM orders o WHERE o.id = ANY($1::bigint[])`, [locals]);
    return new Map(r.rows.map((x) => [Number(x.id), { ...x, id: Number(x.id), total_cents: Number(x.total_cents) } as OrderRow]));
  }

  /** The orders made under (customer uuid, request key) pairs: key -> local order ids. */
  async ordersByKey(pairs: { uuid: string; key: string }[]): Promise<Map<string, number[]>> {
    const r = await this.c.query(`SELECT o.request_key AS key, o.id::bigint AS id FROM orders o
      JOIN unnest($1::uuid[], $2::text[]) AS k(c, key) ON o.customer_id = k.c AND o.request_key = k.key`, [pairs.map((p) => p.uuid), pairs.map((p) => p.key)]);
    const out = new Map<string, number[]>();
    for (const x of r.rows) out.set(x.key, [...(out.get(x.key) ?? []), Number(x.id)]);
    return out;
  }

  async payments(locals: number[]): Promise<Map<number, PaymentRow>> {
    const r = await this.c.query(`SELECT id::bigint AS id, order_id::bigint AS order_id, status, amount_cents, trim(currency) AS currency, gateway_session_id
      FROM payments WHERE id = ANY($1::bigint[])`, [locals]);
    return new Map(r.rows.map((x) => [Number(x.id), { ...x, id: Number(x.id), order_id: Number(x.order_id), amount_cents: Number(x.amount_cents) } as PaymentRow]));
  }

  /** How many payments each order has. */
  async paymentCounts(orderLocals: number[]): Promise<Map<number, number>> {
    const r = await this.c.query(`SELECT order_id::bigint AS id, count(*)::int AS n FROM payments WHERE order_id = ANY($1::bigint[]) GROUP BY 1`, [orderLocals]);
    return new Map(r.rows.map((x) => [Number(x.id), x.n as number]));
  }

  /** The stored answers of the idempotency layer (users living on this shard): key -> the id its answer names. */
  async idempotencyAnswers(pairs: { uuid: string; key: string }[]): Promise<Map<string, { status: string; code: number | null; id: string | null }>> {
    const r = await this.c.query(`SELECT k.key, k.status, k.response_code AS code, k.response_body->>'id' AS id FROM idempotency_keys k
      JOIN unnest($1::uuid[], $2::text[]) AS x(u, key) ON k.user_id = x.u AND k.key = x.key`, [pairs.map((p) => p.uuid), pairs.map((p) => p.key)]);
    return new Map(r.rows.map((x) => [x.key as string, { status: x.status, code: x.code, id: x.id }]));
  }
}
