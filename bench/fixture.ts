// The catalog and the customers the load uses, made through the public API as the
// admin: categories spread over every shard, items with large stock, customers with
// tokens, and per shard a run of contiguous items with huge stock for the pgbench
// ceiling. Cached per engine URL in bench/results/fixture-*.json and reused while the
// engine still knows it (registration hashes passwords, so customers are expensive).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ROOT } from '../src/paths.js';
import { PATIENT, expectStatus, HttpError, request } from '../tools/lib/http.js';
import { localOf } from '../tools/lib/ids.js';
import { pool } from '../tools/lib/pool.js';
import type { Flags } from './flags.js';
import { say } from './say.js';
import { rng } from './zipf.js';

export interface FixtureCategory { id: string; name: string; shard: number }
export interface FixtureItem { id: string; category_id: string; shard: number; name: string }
export interface FixtureCustomer { id: string; email: string; token: string }
/** Items with local ids lo..hi (inclusive, contiguous) on one shard, for pgbench. */
export interface CeilingRange { shard: number; category_id: string; lo: number; hi: number }

export interface Fixture {
  version: number; engineUrl: string; createdAt: string; size: string;
  categories: FixtureCategory[]; items: FixtureItem[]; customers: FixtureCustomer[]; ceiling: CeilingRange[];
}

const VERSION = 2;
// Enough rows that pgbench clients rarely collide on one: the ceiling is the statement's cost, not a hot row's.
const ceilingItems = (f: Flags) => (f.smoke ? 40 : 400);
const CEILING_STOCK = 100_000_000;
const CEILING_TOP_UP_BELOW = 50_000_000;
const CUSTOMER_PASSWORD = 'bench-password-1';
const CREATE_CONCURRENCY = 16;
const REGISTER_CONCURRENCY = 8; // scrypt on the engine: keep its queue short

export function adminCredentials() {
  return { email: process.env.ADMIN_EMAIL ?? 'admin@example.com', password: process.env.ADMIN_PASSWORD ?? 'admin-password' };
}

export async function adminToken(base: string): Promise<string> {
  const body = await expectStatus<{ token: string }>(await request(base, 'POST', '/v1/sessions', { ...PATIENT, body: adminCredentials() }), 201, 'admin login (set ADMIN_EMAIL/ADMIN_PASSWORD)');
  return body.token;
}

function cacheFile(engineUrl: string): string {
  return path.join(ROOT, 'bench', 'results', `fixture-${engineUrl.replace(/^https?:\/\//, '').replace(/[^a-z0-9]+/gi, '_')}.json`);
}

const sizeKey = (f: Flags) => `items=${f.items},categories=${f.categories},customers=${f.customers}`;

/** Direct SQL on every shard, one short-lived client each. */
export async function onShards<T>(shards: string[], fn: (c: pg.Client, shard: number) => Promise<T>): Promise<T[]> {
  return Promise.all(shards.map(async (url, shard) => {
    const c = new pg.Client({ connectionString: url, statement_timeout: 120_000, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      return await fn(c, shard);
    } finally {
      await c.end();
    }
  }));
}

async function stillValid(fx: Fixture, base: string, shards: string[]): Promise<string | null> {
  const random = rng(Date.now());
  const pick = <T>(a: T[]) => a[Math.floor(random() * a.length)]!;
  for (let i = 0; i < 5; i++) {
    const it = pick(fx.items);
    const res = await request(base, 'GET', `/v1/items/${it.id}`, PATIENT);
    if (res.status !== 200 || res.body?.name !== it.name) return `item ${it.id} is gone`;
  }
  for (let i = 0; i < 5; i++) {
    const c = pick(fx.customers);
    const res = await request(base, 'GET', '/v1/orders?limit=1', { ...PATIENT, token: c.token });
    if (res.status !== 200) return `customer ${c.email}'s token no longer works (HTTP ${res.status})`;
  }
  return null;
}

/** The pgbench items are still there, contiguous, and enough of them. */
async function ceilingValid(fx: Fixture, shards: string[], wanted: number): Promise<boolean> {
  if (fx.ceiling.length !== shards.length) return false;
  const ok = await onShards(shards, async (c, shard) => {
    const r = fx.ceiling.find((x) => x.shard === shard);
    if (!r || r.hi - r.lo + 1 < Math.ceil(wanted * 0.75)) return false;
    const res = await c.query('SELECT count(*)::int AS n FROM items WHERE id BETWEEN $1 AND $2 AND category_id = $3', [r.lo, r.hi, r.category_id]);
    return res.rows[0].n === r.hi - r.lo + 1;
  });
  return ok.every(Boolean);
}

async function loadCached(flags: Flags, base: string, shards: string[]): Promise<Fixture | null> {
  const file = cacheFile(base);
  if (!flags.cache || !existsSync(file)) return null;
  let fx: Fixture;
  try {
    fx = JSON.parse(readFileSync(file, 'utf8')) as Fixture;
  } catch {
    return null;
  }
  if (fx.version !== VERSION || fx.engineUrl !== base || fx.size !== sizeKey(flags)) return null;
  const why = await stillValid(fx, base, shards);
  if (why) {
    say(`cached fixture ${path.basename(file)} is stale (${why}); rebuilding`);
    return null;
  }
  say(`reusing the cached fixture ${path.relative(ROOT, file)} (${fx.items.length} items, ${fx.customers.length} customers)`);
  return fx;
}

async function makeCategories(base: string, token: string, n: number, tag: string): Promise<FixtureCategory[]> {
  // One at a time: each lands on the least-filled shard, so they spread evenly.
  return pool(Array.from({ length: n }, (_, i) => i), 1, async (i) =>
    expectStatus<FixtureCategory>(await request(base, 'POST', '/v1/categories', { ...PATIENT, token, body: { name: `bench ${tag} category ${i + 1}` } }), 201, 'create category'));
}

async function makeItems(base: string, token: string, cats: FixtureCategory[], flags: Flags, tag: string): Promise<FixtureItem[]> {
  const random = rng(flags.seed);
  const specs = Array.from({ length: flags.items }, (_, i) => ({
    category: cats[i % cats.length]!, name: `bench ${tag} item ${i + 1}`, price_cents: 100 + Math.floor(random() * 20_000),
  }));
  let done = 0;
  return pool(specs, CREATE_CONCURRENCY, async (s) => {
    const made = await request(base, 'POST', '/v1/items', {
      ...PATIENT, token, body: { category_id: s.category.id, name: s.name, price_cents: s.price_cents, currency: 'USD', stock: flags.stock, description: 'Black Friday bench item' },
    });
    const body = expectStatus<{ id: string }>(made, 201, 'create item');
    if (++done % 1000 === 0) say(`  ${done}/${specs.length} items`);
    return { id: body.id, category_id: s.category.id, shard: s.category.shard, name: s.name };
  });
}

async function makeCustomers(base: string, n: number, tag: string): Promise<FixtureCustomer[]> {
  let done = 0;
  return pool(Array.from({ length: n }, (_, i) => i), REGISTER_CONCURRENCY, async (i) => {
    const email = `bench-${tag}-${i + 1}@example.com`;
    const reg = await request<{ id: string; error?: { code: string } }>(base, 'POST', '/v1/users', { ...PATIENT, body: { email, password: CUSTOMER_PASSWORD } });
    // email_taken: a retried registration that had gone through; the login below proves it is ours.
    if (reg.status !== 201 && reg.body?.error?.code !== 'email_taken') throw new HttpError('register customer', reg, 201);
    const session = await expectStatus<{ token: string; user_id: string }>(await request(base, 'POST', '/v1/sessions', { ...PATIENT, body: { email, password: CUSTOMER_PASSWORD } }), 201, 'customer login');
    if (++done % 100 === 0) say(`  ${done}/${n} customers`);
    return { id: session.user_id, email, token: session.token };
  });
}

/** A category on every shard, then a contiguous run of huge-stock items in each. */
async function makeCeiling(base: string, token: string, shardCount: number, perShard: number, tag: string): Promise<CeilingRange[]> {
  const byShard = new Map<number, FixtureCategory>();
  for (let i = 0; i < shardCount * 4 && byShard.size < shardCount; i++) {
    const c = await expectStatus<FixtureCategory>(await request(base, 'POST', '/v1/categories', { ...PATIENT, token, body: { name: `bench ${tag} pgbench ${i + 1}` } }), 201, 'create category');
    if (!byShard.has(c.shard)) byShard.set(c.shard, c);
  }
  if (byShard.size < shardCount) throw new Error(`could not place a pgbench category on every shard (got ${[...byShard.keys()].join(',')})`);
  return Promise.all([...byShard.values()].map(async (cat) => {
    // A burst from one client: the shard hands out consecutive ids unless others insert meanwhile.
    const locals = await pool(Array.from({ length: perShard }, (_, i) => i), 4, async (i) => {
      const made = await request(base, 'POST', '/v1/items', {
        ...PATIENT, token, body: { category_id: cat.id, name: `bench ${tag} pgbench item ${i + 1}`, price_cents: 1000, currency: 'USD', stock: CEILING_STOCK },
      });
      return localOf(expectStatus<{ id: string }>(made, 201, 'create item').id);
    });
    return { shard: cat.shard, category_id: cat.id, ...longestRun(locals) };
  }));
}

/** Other writers may interleave ids: keep the longest contiguous run. */
function longestRun(locals: number[]): { lo: number; hi: number } {
  const sorted = [...locals].sort((a, b) => a - b);
  let best = { lo: sorted[0]!, hi: sorted[0]! };
  let cur = { ...best };
  for (const id of sorted.slice(1)) {
    cur = id === cur.hi + 1 ? { lo: cur.lo, hi: id } : { lo: id, hi: id };
    if (cur.hi - cur.lo > best.hi - best.lo) best = { ...cur };
  }
  return best;
}

async function build(flags: Flags, base: string, token: string, shardCount: number): Promise<Fixture> {
  const tag = Date.now().toString(36);
  say(`building the fixture: ${flags.categories} categories, ${flags.items} items, ${flags.customers} customers`);
  const categories = await makeCategories(base, token, flags.categories, tag);
  const shardsUsed = new Set(categories.map((c) => c.shard));
  if (shardsUsed.size < Math.min(shardCount, categories.length)) say(`warning: categories landed on shards ${[...shardsUsed].join(',')} only`);
  const customersMade = makeCustomers(base, flags.customers, tag);
  const items = await makeItems(base, token, categories, flags, tag);
  // After the catalog, not beside it: its inserts would break the pgbench items' id run.
  const ceiling = await makeCeiling(base, token, shardCount, ceilingItems(flags), tag);
  const customers = await customersMade;
  return { version: VERSION, engineUrl: base, createdAt: new Date().toISOString(), size: sizeKey(flags), categories, items, customers, ceiling };
}

/** Puts stock back where earlier runs used it up, through the admin API. */
async function topUp(fx: Fixture, flags: Flags, base: string, token: string, shards: string[]): Promise<void> {
  const wanted = new Map<string, number>();
  for (const it of fx.items) wanted.set(it.id, flags.stock);
  const low = (await onShards(shards, async (c, shard) => {
    const ids = fx.items.filter((i) => i.shard === shard).map((i) => localOf(i.id));
    const r = fx.ceiling.find((x) => x.shard === shard);
    const res = await c.query<{ id: number; available: number; ceiling: boolean }>(
      `SELECT id::int, available, (id BETWEEN $2 AND $3) AS ceiling FROM items WHERE id = ANY($1::bigint[]) OR id BETWEEN $2 AND $3`,
      [ids, r?.lo ?? 0, r?.hi ?? -1]);
    return res.rows.map((row) => ({ ...row, id: `it_${shard.toString(36)}${row.id.toString(36)}` }));
  })).flat().filter((r) => (r.ceiling ? r.available < CEILING_TOP_UP_BELOW : r.available < flags.stock / 2));
  if (low.length === 0) return;
  say(`topping up stock of ${low.length} items`);
  await pool(low, CREATE_CONCURRENCY, async (r) => {
    const delta = (r.ceiling ? CEILING_STOCK : flags.stock) - r.available;
    await expectStatus(await request(base, 'POST', `/v1/items/${r.id}/stock`, { ...PATIENT, token, body: { delta } }), 200, 'restock');
  });
}

export async function prepareFixture(flags: Flags, base: string, shards: string[]): Promise<{ fx: Fixture; adminToken: string }> {
  const token = await adminToken(base);
  let fx = await loadCached(flags, base, shards);
  let dirty = false;
  if (!fx) {
    fx = await build(flags, base, token, shards.length);
    dirty = true;
  } else if (!(await ceilingValid(fx, shards, ceilingItems(flags)))) {
    say('making the pgbench items again');
    fx.ceiling = await makeCeiling(base, token, shards.length, ceilingItems(flags), Date.now().toString(36));
    dirty = true;
  }
  if (dirty) {
    mkdirSync(path.dirname(cacheFile(base)), { recursive: true });
    writeFileSync(cacheFile(base), JSON.stringify(fx));
  }
  await topUp(fx, flags, base, token, shards);
  return { fx, adminToken: token };
}
