// The suite's client: real HTTP to the engine the setup started, plus helpers that
// make fresh, uniquely named data so test files can run in parallel.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Test } from 'tap';
import { DEFAULT_PG_SHARDS } from '../../src/config.js';
import { request } from '../../tools/lib/http.js';
import { localOf as localId, shardOf, shardOfToken, uuidOf } from '../../tools/lib/ids.js';
import { checkInvariants, judge, scopeOf } from '../../tools/lib/invariants.js';
import { pool } from '../../tools/lib/pool.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, ENGINE_URL, GATEWAY_URL, PROVIDER_URL } from '../setup/env.js';

/**
 * What this file's helpers talk to: the suite's shared engine, simulators and databases,
 * unless a test file that needs its own (say, to turn simulator failure knobs, which are
 * global) points them elsewhere with useWorld. Each test file runs in its own process.
 */
export const world = { engine: ENGINE_URL, gateway: GATEWAY_URL, provider: PROVIDER_URL, shards: process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS };

export function useWorld(w: Partial<typeof world>): void {
  Object.assign(world, w);
  adminToken = null;
}

export interface Res<T = any> { status: number; body: T; headers: Headers }

export interface CallOpts { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string>; base?: string; timeoutMs?: number }

/** Tests wait for what they assert, not for a deadline: this one only ends a hung call. */
const CALL_TIMEOUT_MS = 120_000;

/** One call through tools/lib/http.ts; no answer at all (refused, reset) throws, as a test wants. */
export async function api<T = any>(method: string, path: string, opts: CallOpts = {}): Promise<Res<T>> {
  const { base, ...call } = opts;
  const a = await request<T>(base ?? world.engine, method, path, { timeoutMs: CALL_TIMEOUT_MS, ...call });
  if (a.status === 0) throw new Error(`${method} ${base ?? world.engine}${path}: no answer (${a.error})`);
  return { status: a.status, body: a.body, headers: a.headers };
}

export const uniq = (p = 't') => `${p}-${randomUUID().slice(0, 8)}`;

let adminToken: Promise<string> | null = null;
export function admin(): Promise<string> {
  adminToken ??= login(ADMIN_EMAIL, ADMIN_PASSWORD);
  return adminToken;
}

export async function login(email: string, password: string): Promise<string> {
  const res = await api('POST', '/v1/sessions', { body: { email, password } });
  if (res.status !== 201) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token as string;
}

export interface Customer { id: string; email: string; password: string; token: string }

export async function customer(): Promise<Customer> {
  const email = `${uniq('c')}@example.com`;
  const password = 'correct-horse-battery';
  const reg = await api('POST', '/v1/users', { body: { email, password } });
  if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
  return { id: reg.body.id, email, password, token: await login(email, password) };
}

export async function category(name = uniq('cat')): Promise<{ id: string; name: string; shard: number }> {
  const res = await api('POST', '/v1/categories', { token: await admin(), body: { name } });
  if (res.status !== 201) throw new Error(`category failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * Categories until one lands on the wanted shard (creation fills the emptiest shard).
 * Other test files create categories at the same time and can take the emptiest slot
 * first, so this keeps trying for a while rather than a few times.
 */
export async function categoryOnShard(shard: number): Promise<{ id: string; name: string; shard: number }> {
  for (let i = 0; i < 60; i++) {
    const c = await category();
    if (c.shard === shard) return c;
  }
  throw new Error(`no category landed on shard ${shard}`);
}

export async function item(fields: Record<string, unknown> = {}): Promise<any> {
  const categoryId = fields.category_id ?? (await category()).id;
  const res = await api('POST', '/v1/items', {
    token: await admin(),
    body: { category_id: categoryId, name: uniq('item'), price_cents: 1000, currency: 'USD', stock: 10, ...fields },
  });
  if (res.status !== 201) throw new Error(`item failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Direct SQL on one shard, to check where data really is. */
export async function onShard<T extends pg.QueryResultRow = any>(shard: number, sql: string, params: unknown[] = []): Promise<T[]> {
  const url = world.shards.split(',')[shard]!;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

// Ids and tokens read with the engine's own codec.
export { localId, shardOf, shardOfToken, uuidOf };
export { eventually } from '../../tools/lib/wait.js';

/** Many customers at once, created with bounded concurrency (registration hashes passwords). */
export function customers(n: number, concurrency = 16): Promise<Customer[]> {
  return pool(Array.from({ length: n }, (_, i) => i), concurrency, () => customer());
}

export async function order(token: string, items: { item_id: string; quantity: number }[], key?: string): Promise<Res> {
  return api('POST', '/v1/orders', { token, body: { items }, headers: key ? { 'idempotency-key': key } : {} });
}

/** The row of an item straight from its shard. */
export async function itemRow(id: string): Promise<{ available: number; held: number; sold: number; stocked: number }> {
  const rows = await onShard(shardOf(id), 'SELECT available, held, sold, stocked FROM items WHERE id = $1', [localId(id)]);
  return rows[0];
}

export async function sim(base: string, method: string, path: string, body?: unknown): Promise<Res> {
  return api(method, path, { base, body });
}

/**
 * A simulator's merchant API with its key (`headers` may override Authorization): the
 * answer, its JSON (undefined when not JSON) and its text; no answer within `timeoutMs` throws.
 */
export async function simApi(base: string, key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs?: number) {
  const r = await api(method, path, { base, body, headers: { Authorization: `Bearer ${key}`, ...headers }, ...(timeoutMs ? { timeoutMs } : {}) });
  const isText = typeof r.body === 'string';
  return { status: r.status, json: isText ? undefined : r.body, text: isText ? (r.body as string) : JSON.stringify(r.body), headers: r.headers };
}

/**
 * The engine's promises (tools/lib/invariants.ts, the checker of the bench and the chaos
 * runner) on the rows of these items and customers: none of them may be broken. Rows of
 * other test files running meanwhile are not this test's to judge.
 */
export async function invariantsHold(t: Test, of: { items?: string[]; customers?: string[] }): Promise<void> {
  const report = judge(await checkInvariants(world.shards.split(','), { phase: 'always', scope: scopeOf(of) }), false);
  t.same(report.violations, [], `every promise holds for ${of.items?.length ?? 0} items and ${of.customers?.length ?? 0} customers`);
}

