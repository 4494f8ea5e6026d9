// Hostile input against every route the engine publishes. The routes come from the
// suite engine's GET /openapi.json at run time, so routes added later are fuzzed too.
//
// Rejected cases: malformed JSON, wrong content types and top-level types, every body
// field replaced by wrong types and out-of-range values (negative, zero, huge, float),
// unknown and mass-assignment fields, prototype keys, deep nesting, wide and oversized
// bodies, text Postgres cannot store (NUL, lone surrogates, invalid UTF-8), malformed ids
// in path params, bad query values, forged and oversized headers, raw-socket abuse
// (slow bodies, stalls, bad framing). The oracle is the published schema itself: a case
// is sent as "must reject" only when a local Ajv compile of the route's schema rejects
// it. Each must answer 4xx (a socket the HTTP layer closes on a framing error counts as
// refused), never 5xx, and write nothing: no row anywhere holds the case marker, and
// the fuzz item, category and customer are exactly as before.
// Accepted cases: valid bodies carrying hostile-but-legal text (unicode, controls, SQL,
// markup) and boundary numbers: never 5xx, and text comes back exactly as sent.
// After everything: /healthz answers, the engine's workers are the same processes, and
// its in-flight gauge is back to where it was (an aborted or stalled case gave its slot back).
//
// FUZZ_ITERATIONS=N (default 1) multiplies the random mutations per route and field;
// e.g. `FUZZ_ITERATIONS=50 npx tap test/fuzz.test.ts` for a long campaign.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import AjvModule from 'ajv';
import t from 'tap';
import { sleep } from '../tools/lib/wait.js';
import { admin, api, category, customer, item, localId, onShard, order, shardOf, uuidOf, type Customer } from './helpers/api.js';
import { childrenWithRole } from './helpers/engine.js';
import { ENGINE_URL, TEST_PORT } from './setup/env.js';
import { recordedPids } from './setup/procs.js';

const ITERATIONS = Math.max(1, Math.min(10_000, Number(process.env.FUZZ_ITERATIONS ?? 1) || 1));
const CONCURRENCY = 8;
/** Markers: every string a rejected case sends carries REJ; accepted cases carry OK. */
const REJ = `fzr${randomUUID().replaceAll('-', '').slice(0, 10)}`;
const OK = `fza${randomUUID().replaceAll('-', '').slice(0, 10)}`;

type Schema = Record<string, any>;
const Ajv = AjvModule as unknown as typeof AjvModule.default;
const bodyAjv = new Ajv({ strict: false, allowUnionTypes: true });
const queryAjv = new Ajv({ strict: false, allowUnionTypes: true, coerceTypes: true, useDefaults: true });

interface Route { method: string; path: string; params: string[]; query: Record<string, Schema>; body: Schema | null; open: boolean }

async function routes(): Promise<Route[]> {
  const doc = (await api('GET', '/openapi.json')).body;
  const out: Route[] = [];
  for (const [path, ops] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      const params = (op.parameters ?? []) as { name: string; in: string; schema: Schema }[];
      out.push({
        method: method.toUpperCase(), path, params: params.filter((p) => p.in === 'path').map((p) => p.name),
        query: Object.fromEntries(params.filter((p) => p.in === 'query').map((p) => [p.name, p.schema])),
        body: op.requestBody?.content?.['application/json']?.schema ?? null, open: Array.isArray(op.security) && op.security.length === 0,
      });
    }
  }
  return out;
}

// ---- what was sent, what came back ----------------------------------------------

type Outcome = number | 'closed';
const tally = new Map<string, { n: number; statuses: Map<Outcome, number> }>();
const failures: string[] = [];

function note(kind: string, what: string, got: Outcome, expect: 'reject' | 'reject_or_close' | 'no5xx'): void {
  const k = tally.get(kind) ?? { n: 0, statuses: new Map() };
  k.n++;
  k.statuses.set(got, (k.statuses.get(got) ?? 0) + 1);
  tally.set(kind, k);
  const ok = expect === 'no5xx' ? got !== 'closed' && got < 500
    : got === 'closed' ? expect === 'reject_or_close' : got >= 400 && got < 500;
  if (!ok && failures.length < 200) failures.push(`${kind}: ${what} -> ${got} (expected ${expect})`);
}

interface Sent { status: Outcome; body: any; headers: Headers | null }

async function send(method: string, path: string, opts: { token?: string | null; raw?: string | Buffer; type?: string | null; headers?: Record<string, string> } = {}): Promise<Sent> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.raw !== undefined && opts.type !== null) headers['content-type'] = opts.type ?? 'application/json';
  try {
    const res = await fetch(`${ENGINE_URL}${path}`, { method, headers, body: opts.raw, signal: AbortSignal.timeout(15_000) });
    const text = await res.text();
    let body: unknown = text;
    try { body = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body, headers: res.headers };
  } catch {
    return { status: 'closed', body: null, headers: null };
  }
}

async function pool<T>(xs: T[], fn: (x: T) => Promise<void>, concurrency = CONCURRENCY): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < xs.length) await fn(xs[next++]!);
  }));
}

// ---- values -----------------------------------------------------------------------

const HOSTILE_TEXT = [
  'ñandú ☃ 漢字 עברית العربية', 'e\u0301 a\u0308 combining', '\u202eRTL override\u202c', 'zero\u200bwidth\u200d', '\ufeffBOM',
  '💥🔥👩‍👩‍👧‍👦 emoji', 'ℌ𝔢𝔩𝔩𝔬 𝟙𝟚𝟛', 'line\u2028sep\u2029para', 'tab\tnew\nline\rcr\u0001\u001f\u007f', "'; DROP TABLE items; --",
  "' OR '1'='1", '1; SELECT pg_sleep(5)', '$1 $2 %s %n %x', '\\x00 \\u0000 \\\\', '"quoted" `back` \'single\'', '<script>alert(1)</script>',
  '${7*7} {{7*7}} #{7*7}', '% _ [a-z] LIKE wildcards', '   ', '../../etc/passwd', 'null', 'Ａ１ full width',
];
// Rejected text: NUL, lone surrogates (as JSON escapes).
const UNSTORABLE_TEXT = ['nul\u0000byte', 'lone\ud800surrogate', 'lone\udc00low', '\u0000'];
const WRONG_VALUES: unknown[] = [
  null, true, false, 0, -1, -0.5, 1.5, 2 ** 31, 2 ** 53 + 2, 1e308, -1e308, '', ' ', '0', '-1', '1e3', 'NaN', 'Infinity', '9'.repeat(40),
  [], [1], [null], {}, { $gt: '' }, { __proto__: null }, 'x'.repeat(300), 'y'.repeat(6000),
];

function randomValue(depth = 0): unknown {
  const r = Math.random();
  if (depth > 2 || r < 0.3) return [null, true, Math.floor((Math.random() - 0.5) * 2 ** 40), Math.random() * 1e6, -Math.random()][Math.floor(Math.random() * 5)];
  if (r < 0.6) {
    const len = Math.floor(Math.random() * 40);
    return Array.from({ length: len }, () => String.fromCharCode(Math.floor(Math.random() * 0xffff))).join('');
  }
  if (r < 0.8) return Array.from({ length: Math.floor(Math.random() * 4) }, () => randomValue(depth + 1));
  return Object.fromEntries(Array.from({ length: Math.floor(Math.random() * 4) }, (_, i) => [`k${i}`, randomValue(depth + 1)]));
}

const MALFORMED_IDS = [
  '0', '-1', 'null', 'undefined', '__proto__', 'constructor', 'it_', 'it_0', 'it_z', 'or_9zzzzzzzzzzzzz', 'it_0zzzzzzzzzzz', 'xx_01', 'us_0nothex',
  '%00', '%ZZ', '%E2%82', '%F0%9F%92%A5', "'%20OR%201=1--", '..%2F..%2Fetc%2Fpasswd', '%20', 'a'.repeat(1500), '1e9', 'it_01%00', '%C0%AE',
];

/** A value of a field that the schema accepts, from its name when the name says what it is. */
interface Known { marker: string; categoryId: string; itemId: string; n: () => number }
function hinted(name: string, k: Known): unknown {
  const hints: Record<string, () => unknown> = {
    email: () => `${k.marker}-${k.n()}@example.com`, password: () => 'fuzz-password-123', new_password: () => 'fuzz-password-456',
    current_password: () => 'wrong-password-000', currency: () => 'USD', category_id: () => k.categoryId, item_id: () => k.itemId,
    quantity: () => 1, method: () => 'card', delta: () => 1, fulfillment: () => 'instant', phone: () => '+15550100000', country: () => 'DE',
    postal_code: () => '10115', price_cents: () => 100, stock: () => 1, enabled: () => true, max_per_customer: () => 5,
  };
  return hints[name]?.();
}

function validValue(name: string, s: Schema, k: Known, depth = 0): unknown {
  if (depth > 4) return undefined;
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum)) return s.enum[0];
  for (const alt of [...(s.anyOf ?? []), ...(s.oneOf ?? [])].sort((a: Schema) => (a.type === 'null' ? 1 : -1))) {
    const v = validValue(name, alt, k, depth + 1);
    if (v !== undefined && bodyAjv.validate(alt, v)) return v;
  }
  const h = hinted(name, k);
  if (h !== undefined && bodyAjv.validate(s, h)) return h;
  const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes('object')) {
    const out: Record<string, unknown> = {};
    for (const [p, ps] of Object.entries<Schema>(s.properties ?? {})) {
      if (!(s.required ?? []).includes(p) && !['name', 'description'].includes(p)) continue;
      const v = validValue(p, ps, k, depth + 1);
      if (v !== undefined) out[p] = v;
    }
    return out;
  }
  if (types.includes('array')) {
    const v = validValue(name, s.items ?? {}, k, depth + 1);
    return v === undefined ? undefined : Array.from({ length: Math.max(1, s.minItems ?? 1) }, () => v);
  }
  if (types.includes('string')) {
    for (const c of [`${k.marker} ${name}`, k.marker, 'USD', 'DE', '1', 'x']) if (bodyAjv.validate(s, c)) return c;
    return undefined;
  }
  if (types.includes('integer') || types.includes('number')) return bodyAjv.validate(s, 1) ? 1 : s.minimum;
  if (types.includes('boolean')) return true;
  return undefined;
}

function validBody(s: Schema, k: Known): Record<string, unknown> | null {
  const v = validValue('', s, k);
  return v !== undefined && bodyAjv.validate(s, v) ? (v as Record<string, unknown>) : null;
}

/** Leaves of a body schema a mutation can target: [path, schema], one level into arrays of objects. */
function fields(s: Schema, base: unknown, prefix: (string | number)[] = []): [(string | number)[], Schema][] {
  const out: [(string | number)[], Schema][] = [];
  for (const [p, ps] of Object.entries<Schema>(s.properties ?? {})) {
    out.push([[...prefix, p], ps]);
    const child = (base as Record<string, unknown> | null)?.[p];
    if (ps.type === 'array' && ps.items?.properties && Array.isArray(child) && child.length > 0) out.push(...fields(ps.items, child[0], [...prefix, p, 0]));
    if (ps.type === 'object' && ps.properties && child && typeof child === 'object') out.push(...fields(ps, child, [...prefix, p]));
  }
  return out;
}

function setAt(body: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(body ?? {}) as any;
  let cur = copy;
  for (const key of path.slice(0, -1)) {
    cur[key] ??= typeof key === 'number' ? [] : {};
    cur = cur[key];
  }
  cur[path[path.length - 1]!] = value;
  return copy;
}

const concrete = (path: string, params: Record<string, string>) => path.replace(/\{([a-z_]+)\}/g, (_, p: string) => params[p] ?? 'fz-none');

// ---- what must not change -----------------------------------------------------------

async function markerRows(marker: string): Promise<number> {
  let total = 0;
  for (let s = 0; s < 3; s++) {
    const cols = await onShard(s, `SELECT table_name AS t, array_agg(column_name::text) AS cols FROM information_schema.columns
      WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'character', 'jsonb', 'json') GROUP BY table_name`);
    for (const { t: table, cols: names } of cols) {
      const where = (names as string[]).map((c) => `"${c}"::text LIKE $1`).join(' OR ');
      total += (await onShard(s, `SELECT count(*)::int AS n FROM "${table}" WHERE ${where}`, [`%${marker}%`]))[0].n as number;
    }
  }
  return total;
}

/** Every row that references the fuzz item, category or customer, and the item's counters. */
async function footprint(itemId: string, categoryId: string, customerUuid: string): Promise<string> {
  const shard = shardOf(itemId);
  const local = localId(itemId);
  const parts: string[] = [];
  parts.push(JSON.stringify(await onShard(shard, 'SELECT available, held, sold, stocked, price_cents, name, active FROM items WHERE id = $1', [local])));
  parts.push(JSON.stringify(await onShard(shard, 'SELECT count(*)::int AS n FROM items WHERE category_id = $1', [categoryId])));
  const itemCols = await onShard(shard, `SELECT table_name AS t FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'item_id'`);
  for (const { t: table } of itemCols) parts.push(`${table}:${(await onShard(shard, `SELECT count(*)::int AS n FROM "${table}" WHERE item_id = $1`, [local]))[0].n}`);
  for (let s = 0; s < 3; s++) {
    const cols = await onShard(s, `SELECT table_name AS t, column_name AS c FROM information_schema.columns
      WHERE table_schema = 'public' AND data_type = 'uuid' AND column_name IN ('customer_id', 'user_id', 'id')`);
    for (const { t: table, c } of cols) parts.push(`${s}:${table}.${c}:${(await onShard(s, `SELECT count(*)::int AS n FROM "${table}" WHERE "${c}" = $1`, [customerUuid]))[0].n}`);
  }
  return parts.join('\n');
}

function enginePid(): number {
  const pid = recordedPids().engine;
  if (!pid) throw new Error(`no suite engine recorded for port ${TEST_PORT}`);
  return pid;
}

const workers = () => childrenWithRole(enginePid(), 'worker').sort((a, b) => a - b);

// ---- raw sockets ------------------------------------------------------------------------

/** Writes `chunks` with `gapMs` between them, then waits up to `waitMs` for an answer; the status or 'closed'/'none'. */
function rawExchange(chunks: (string | Buffer)[], gapMs: number, waitMs: number): Promise<Outcome | 'none'> {
  return new Promise((resolve) => {
    const url = new URL(ENGINE_URL);
    const sock = net.connect(Number(url.port), url.hostname);
    let data = '';
    let settled = false;
    const done = (v: Outcome | 'none') => { if (!settled) { settled = true; clearTimeout(timer); sock.destroy(); resolve(v); } };
    const timer = setTimeout(() => done(data ? parseStatus(data) : 'none'), chunks.length * gapMs + waitMs);
    sock.on('data', (d) => {
      data += d.toString('latin1');
      if (/\r\n\r\n/.test(data)) done(parseStatus(data));
    });
    sock.on('error', () => done(data ? parseStatus(data) : 'closed'));
    sock.on('close', () => done(data ? parseStatus(data) : 'closed'));
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (settled || sock.destroyed) return;
        sock.write(c);
        if (gapMs) await sleep(gapMs);
      }
    });
  });
}

function parseStatus(text: string): Outcome {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m ? Number(m[1]) : 'closed';
}

/** The suite engine's in-flight gauge summed over its workers, the scrape's own slot included; NaN when refused. */
async function inflight(): Promise<number> {
  const res = await fetch(`${ENGINE_URL}/metrics`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
  if (!res || res.status !== 200) return NaN;
  const lines = (await res.text()).split('\n').filter((l) => /^bf_http_inflight_requests[{ ]/.test(l));
  return lines.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/**
 * Polls until the gauge is at most `baseline`. Other test files share this engine, so
 * one reading may catch their requests in flight; a leaked slot never goes away.
 */
async function inflightSettles(baseline: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let v = await inflight();
  while (!(v <= baseline) && Date.now() < deadline) {
    await sleep(250);
    v = await inflight();
  }
  return v;
}

async function healthP99(n: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fetch(`${ENGINE_URL}/healthz`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()).catch(() => undefined);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.min(ms.length - 1, Math.ceil(0.99 * ms.length) - 1)]!;
}

// ---- the campaign ---------------------------------------------------------------------------

t.test('hostile input on every route: only 4xx, nothing written, the engine keeps serving', async (t) => {
  const all = await routes();
  t.ok(all.length >= 20, `the contract lists ${all.length} routes`);
  const adminToken = await admin();
  const fuzzCategory = await category(`${OK}-cat`);
  const fuzzItem = await item({ category_id: fuzzCategory.id, name: `${OK} item`, stock: 1000 });
  const fuzzCustomer: Customer = await customer();
  const victim: Customer = await customer();
  const fuzzOrder = (await order(fuzzCustomer.token, [{ item_id: fuzzItem.id, quantity: 1 }])).body.orders[0];
  const uuid = uuidOf(fuzzCustomer.id);
  let seq = 0;
  let skipped = 0;
  const rejKnown: Known = { marker: REJ, categoryId: fuzzCategory.id, itemId: fuzzItem.id, n: () => ++seq };
  const workersBefore = workers();
  t.ok(workersBefore.length > 0, `suite engine workers: ${workersBefore.join(',')}`);
  const inflightBefore = await inflightSettles(Infinity);
  t.ok(Number.isFinite(inflightBefore), `in flight before the campaign: ${inflightBefore}`);
  const before = await footprint(fuzzItem.id, fuzzCategory.id, uuid);

  // --- rejected cases ---
  const cases: (() => Promise<void>)[] = [];
  const reject = (kind: string, r: Route, raw: string | Buffer, o: { type?: string | null; path?: string; token?: string | null; expect?: 'reject' | 'reject_or_close' } = {}) => {
    cases.push(async () => {
      const path = o.path ?? concrete(r.path, {});
      const res = await send(r.method, path, { token: o.token === undefined ? adminToken : o.token, raw, type: o.type });
      note(kind, `${r.method} ${path} ${String(raw).slice(0, 80)}`, res.status, o.expect ?? 'reject');
    });
  };
  /** Sends a body only when the published schema rejects it (the oracle). */
  const invalidBody = (kind: string, r: Route, value: unknown) => {
    const raw = JSON.stringify(value);
    if (raw === undefined) return;
    if (bodyAjv.validate(r.body!, JSON.parse(raw)) && !UNSTORABLE(JSON.parse(raw))) {
      skipped++; // a mutation the schema accepts is a valid request: not sent as "must reject"
      return;
    }
    reject(kind, r, raw);
  };

  for (const r of all.filter((x) => x.body)) {
    const base = validBody(r.body!, rejKnown) ?? {};
    for (const raw of ['{', '{"a":', '{"a":1,}', "{'a':1}", 'nul', 'tru', '[1,2', '{"a":1}}', '\u0000', '\ufeff{}', '{"a":"\\x"}', '1e999', '-', '"open']) reject('malformed JSON', r, raw);
    reject('invalid UTF-8', r, Buffer.concat([Buffer.from(`{"name":"${REJ}`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]));
    for (const type of ['text/plain', null, 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp']) {
      reject('wrong content type', r, JSON.stringify(base), { type, expect: 'reject' });
    }
    for (const v of [[], 'str', 123, null, true, [base]]) invalidBody('wrong top-level type', r, v);
    const leaves = fields(r.body!, base);
    for (const [path, schema] of leaves) {
      const isString = schema.type === 'string' || (Array.isArray(schema.type) && schema.type.includes('string'));
      for (const v of WRONG_VALUES) invalidBody(typeof v === 'number' ? 'numbers: negative, zero, huge, fractional' : 'wrong types', r, setAt(base, path, typeof v === 'string' ? `${REJ}${v}` : v));
      if (isString) for (const txt of UNSTORABLE_TEXT) invalidBody('NUL and lone surrogates', r, setAt(base, path, `${REJ}${txt}`));
      if (schema.maxLength) invalidBody('too long', r, setAt(base, path, `${REJ}${'ü'.repeat(schema.maxLength)}`));
      if (typeof schema.maximum === 'number') invalidBody('numbers: negative, zero, huge, fractional', r, setAt(base, path, schema.maximum + 1));
      if (typeof schema.minimum === 'number') invalidBody('numbers: negative, zero, huge, fractional', r, setAt(base, path, schema.minimum - 1));
      for (let i = 0; i < 3 * ITERATIONS; i++) invalidBody('random values', r, setAt(base, path, randomValue()));
    }
    const keys = Object.keys(r.body!.properties ?? {});
    for (let i = 0; i < 5 * ITERATIONS; i++) {
      const picked = keys.filter(() => Math.random() < 0.7);
      if (Math.random() < 0.3) picked.push(`${REJ}${i}`);
      invalidBody('random bodies', r, Object.fromEntries(picked.map((k) => [k, randomValue()])));
    }
    for (const [k, v] of [['role', 'admin'], ['price_cents', 1], ['status', 'paid'], ['customer_id', fuzzCustomer.id], ['available', 10 ** 6], ['sold', 0], ['id', 'it_01'], ['is_admin', true], [REJ, 1]] as const) {
      invalidBody('unknown and mass-assignment fields', r, { ...base, [k]: v });
    }
    const baseRaw = JSON.stringify(base);
    const inject = (extra: string) => (baseRaw === '{}' ? `{${extra}}` : `${baseRaw.slice(0, -1)},${extra}}`);
    for (const extra of ['"__proto__":{"role":"admin"}', '"constructor":{"prototype":{"role":"admin"}}', '"__proto__":null']) reject('prototype keys', r, inject(extra));
    reject('deep nesting', r, inject(`"deep":${'['.repeat(20_000)}${']'.repeat(20_000)}`));
    reject('deep nesting', r, `${'['.repeat(30_000)}${']'.repeat(30_000)}`);
    reject('deep nesting', r, `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`);
    reject('wide object', r, JSON.stringify(Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`${REJ}${i}`, i]))));
    reject('oversized body', r, inject(`"pad":"${REJ}${'x'.repeat(70_000)}"`));
    reject('oversized body', r, `{"pad":"${REJ}${'x'.repeat(1024 * 1024)}"}`, { expect: 'reject_or_close' });
    const lines = leaves.find(([p, s]) => p.length === 1 && s.type === 'array');
    if (lines) {
      invalidBody('arrays: empty and too long', r, setAt(base, lines[0], []));
      if (lines[1].maxItems) invalidBody('arrays: empty and too long', r, setAt(base, lines[0], Array.from({ length: lines[1].maxItems + 1 }, () => (base as any)[lines[0][0]!]?.[0] ?? 1)));
    }
  }

  // Raw-body routes (signed webhooks): anything unsigned is refused.
  for (const r of all.filter((x) => !x.body && ['POST', 'PUT', 'PATCH'].includes(x.method) && x.open)) {
    for (const raw of ['{}', '{', `{"id":"${REJ}","type":"payment.succeeded","data":{}}`, '\u0000', 'x'.repeat(70_000)]) reject('unsigned raw bodies', r, raw, { token: null });
  }

  // Malformed ids in path params, with a body the schema accepts so the id is what is judged.
  for (const r of all.filter((x) => x.params.length > 0)) {
    const base = r.body ? validBody(r.body, rejKnown) : null;
    if (r.body && !base) continue;
    for (const id of MALFORMED_IDS) {
      const path = concrete(r.path, Object.fromEntries(r.params.map((p) => [p, id])));
      const token = r.method === 'DELETE' ? victim.token : adminToken;
      reject('malformed path ids', r, base ? JSON.stringify(base) : (undefined as unknown as string), { path, token });
    }
  }

  // Query values: schema-invalid ones must be 400; every route refuses an unknown parameter.
  for (const r of all) {
    const qs = { type: 'object', properties: r.query, additionalProperties: false };
    const bad: Record<string, unknown> = { [REJ]: '1' };
    const tries: Record<string, string>[] = [bad];
    for (const name of Object.keys(r.query)) {
      for (const v of ['', '-1', '0', '101', '1e3', 'abc', '\u0000', `${REJ}${'x'.repeat(300)}`, "' OR 1=1 --", '[]', '9'.repeat(30), '%', 'ü漢💥']) tries.push({ [name]: v });
    }
    for (const q of tries) {
      const copy = { ...q };
      const schemaRejects = !queryAjv.validate(qs, copy) || UNSTORABLE(q);
      const path = `${concrete(r.path, Object.fromEntries(r.params.map((p) => [p, 'fz-none'])))}?${new URLSearchParams(q as Record<string, string>).toString()}`;
      const token = r.method === 'GET' ? adminToken : victim.token;
      const raw = r.body ? JSON.stringify(validBody(r.body, rejKnown) ?? {}) : undefined;
      cases.push(async () => {
        const res = await send(r.method, path, { token, raw });
        note(schemaRejects ? 'query: invalid values and unknown parameters' : 'query: odd but valid values', `${r.method} ${path.slice(0, 120)}`, res.status, schemaRejects ? 'reject' : 'no5xx');
      });
    }
  }

  // Headers: forged and oversized tokens, bad Idempotency-Keys, hostile request ids.
  const validOrder = JSON.stringify({ items: [{ item_id: fuzzItem.id, quantity: 1 }] });
  const tokens = ['', 'Bearer', 'Bearer ', `bearer ${fuzzCustomer.token}x`, 'Basic YWRtaW46YWRtaW4=', `Bearer ${fuzzCustomer.token}x`, `Bearer s0.${'A'.repeat(43)}`,
    `Bearer s9.${'A'.repeat(43)}`, `Bearer sz.${'A'.repeat(43)}`, `Bearer ${'a'.repeat(10_000)}`, `Bearer ${fuzzCustomer.token} Bearer ${adminToken}`, `Bearer ${fuzzCustomer.token.slice(0, -1)}`];
  for (const auth of tokens) {
    cases.push(async () => {
      const res = await send('POST', '/v1/orders', { raw: validOrder, headers: { authorization: auth } });
      note('forged and oversized tokens', auth.slice(0, 40), res.status, 'reject');
    });
  }
  // uWS trims bytes >= 0x80 around a header value ("éabc" reads "abc": indistinguishable
  // from a client that sent "abc"); a value that trims to nothing must still be refused.
  for (const key of ['k'.repeat(129), 'k'.repeat(9000), ' ', 'éé', 'aéb', 'a b', '\t']) {
    cases.push(async () => {
      const res = await send('POST', '/v1/orders', { token: fuzzCustomer.token, raw: validOrder, headers: { 'idempotency-key': key } });
      note('bad Idempotency-Keys', key.slice(0, 20), res.status, 'reject');
    });
  }
  for (const rid of ['x'.repeat(500), '<script>', 'a b', 'ok-id']) {
    cases.push(async () => {
      const res = await send('GET', '/v1/items?limit=1', { headers: { 'x-request-id': rid } });
      note('hostile X-Request-Id', rid.slice(0, 20), res.status, 'no5xx');
      const echoed = res.headers?.get('x-request-id') ?? '';
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(echoed)) failures.push(`x-request-id echoed unsafely: ${echoed.slice(0, 40)}`);
    });
  }
  cases.push(async () => {
    const res = await send('GET', '/v1/orders', { token: fuzzCustomer.token, headers: { 'x-big': 'x'.repeat(60_000) } });
    note('oversized headers', '60 KB header', res.status, res.status === 'closed' || res.status >= 400 ? 'reject_or_close' : 'no5xx');
  });
  cases.push(async () => {
    const many = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`x-h${i}`, 'v']));
    const res = await send('GET', '/v1/orders', { token: fuzzCustomer.token, headers: many });
    note('oversized headers', '150 headers', res.status, res.status === 'closed' || res.status >= 400 ? 'reject_or_close' : 'no5xx');
  });

  const shuffled = cases.sort(() => Math.random() - 0.5);
  await pool(shuffled, (c) => c());

  // Raw sockets: framing abuse, slow and stalled clients (bounded: a few seconds in all).
  const host = `Host: 127.0.0.1:${TEST_PORT}\r\n`;
  const cat = JSON.stringify({ name: `${REJ} raw` });
  const rawCases: [string, (string | Buffer)[], number, number][] = [
    ['garbage request line', ['\u0000\u0001\u0002 / HTTP/1.1\r\n\r\n'], 0, 2000],
    ['garbage request line', ['GARBAGE\r\n\r\n'], 0, 2000],
    ['bad framing', [`POST /v1/categories HTTP/1.1\r\n${host}Authorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${cat}\r\n0\r\n\r\n`], 0, 2000],
    ['bad framing', [`POST /v1/categories HTTP/1.1\r\n${host}Authorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${cat}`], 0, 2000],
    ['bad framing', [`POST /v1/categories HTTP/1.1\r\n${host}Authorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n${cat}`], 0, 2000],
    ['bad framing', [`POST /v1/categories HTTP/1.1\r\n${host}Authorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n${cat}`], 0, 2000],
    ['header injection', [`GET /healthz HTTP/1.1\r\n${host}X-Request-Id: a\rb\r\n\r\n`], 0, 2000],
    ['header injection', [`GET /healthz HTTP/1.1\r\n${host}X-Request-Id: a\u0000b\r\n\r\n`], 0, 2000],
  ];
  for (const [kind, chunks, gap, wait] of rawCases) {
    const got = await rawExchange(chunks, gap, wait);
    // Bytes uWS cannot parse as an HTTP/1.1 request never reach a route: v20.30 (the fork)
    // closes without a word, v20.57 (upstream) writes its own 400, or 505 for a request
    // line it cannot read, and closes. Either is a refusal.
    const refused = got === 'none' || got === 505 ? 'closed' : got;
    note(kind, String(chunks[0]).slice(0, 60).replace(/\r\n/g, '|'), refused, 'reject_or_close');
  }
  // A body stalled half-way and a request stalled in its headers, each for 3 s, while 64
  // more sockets stall too: the engine keeps answering others, and writes nothing.
  const stalledBody = `POST /v1/categories HTTP/1.1\r\n${host}Authorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n${cat.slice(0, 10)}`;
  const stalls = [
    rawExchange([stalledBody], 0, 3000), rawExchange([`GET /v1/orders HTTP/1.1\r\n${host}Authorization: Bea`], 0, 3000),
    ...Array.from({ length: 64 }, () => rawExchange([`GET /healthz HTTP/1.1\r\n${host}X-Slow: `], 0, 3000)),
  ];
  const p99DuringStalls = await healthP99(30);
  const stalled = await Promise.all(stalls);
  for (const s of stalled) note('stalled clients', 'partial request held 3 s', s === 'none' ? 'closed' : s, 'reject_or_close');
  t.ok(p99DuringStalls < 1000, `/healthz p99 ${Math.round(p99DuringStalls)} ms while 66 sockets stall`);

  t.equal(await markerRows(REJ), 0, 'no row anywhere holds text from a rejected request');
  t.equal(await footprint(fuzzItem.id, fuzzCategory.id, uuid), before, 'the fuzz item, category and customer are exactly as before');

  // --- accepted cases: legal but hostile text and boundary numbers ---
  const okKnown: Known = { marker: OK, categoryId: fuzzCategory.id, itemId: fuzzItem.id, n: () => ++seq };
  const SAFE_ADMIN = new Set(['POST /v1/categories', 'POST /v1/items', 'PATCH /v1/items/{id}', 'POST /v1/items/{id}/stock']);
  const pathFor = (r: Route) => concrete(r.path, { id: r.path.startsWith('/v1/items') ? fuzzItem.id : fuzzOrder.id, item_id: fuzzItem.id });
  let roundTrips = 0;
  const noValidBody: string[] = [];
  for (const r of all.filter((x) => x.body && x.params.every((p) => p === 'id' || p === 'item_id'))) {
    const key = `${r.method} ${r.path}`;
    if (key === 'POST /v1/users/me/password' || (r.path.startsWith('/v1/orders/{id}') && r.method === 'POST')) continue; // would change the fuzz customer's password or order
    const base = validBody(r.body!, okKnown);
    if (!base) { noValidBody.push(key); continue; }
    const token = SAFE_ADMIN.has(key) ? adminToken : fuzzCustomer.token;
    const variants: unknown[] = [];
    for (const [path, schema] of fields(r.body!, base)) {
      const isString = schema.type === 'string' || (Array.isArray(schema.type) && schema.type.includes('string'));
      if (isString && !schema.pattern && !schema.enum) for (const txt of HOSTILE_TEXT) variants.push(setAt(base, path, `${OK} ${txt}`.slice(0, schema.maxLength ?? 200)));
      if (schema.type === 'integer') for (const v of [schema.minimum, schema.maximum]) if (typeof v === 'number') variants.push(setAt(base, path, v));
    }
    for (const body of variants.filter((b) => bodyAjv.validate(r.body!, b))) {
      const res = await send(r.method, pathFor(r), { token, raw: JSON.stringify(body), headers: r.method === 'POST' ? { 'idempotency-key': randomUUID() } : {} });
      if (res.status === 403 && !SAFE_ADMIN.has(key)) { note('accepted: hostile text, boundary numbers', `${key} (admin only)`, res.status, 'no5xx'); continue; }
      note('accepted: hostile text, boundary numbers', `${key} ${JSON.stringify(body).slice(0, 100)}`, res.status, 'no5xx');
      if (typeof res.status === 'number' && res.status < 300 && res.body && typeof res.body === 'object') {
        for (const f of ['name', 'description']) {
          const sent = (body as Record<string, unknown>)[f];
          if (typeof sent !== 'string' || !(f in res.body)) continue;
          roundTrips++;
          if (res.body[f] !== sent) failures.push(`${key}: ${f} stored as ${JSON.stringify(res.body[f])}, sent ${JSON.stringify(sent)}`);
        }
      }
    }
  }
  for (const txt of HOSTILE_TEXT) {
    const res = await send('GET', `/v1/items?q=${encodeURIComponent(txt.slice(0, 100))}`);
    note('accepted: hostile search text', txt.slice(0, 20), res.status, 'no5xx');
  }
  // Stock at its ceiling and the biggest order the schema allows: conflicts, never a 5xx.
  for (let i = 0; i < 25; i++) {
    const res = await send('POST', `/v1/items/${fuzzItem.id}/stock`, { token: adminToken, raw: JSON.stringify({ delta: 100_000_000 }) });
    note('accepted: boundary numbers', 'stock +100000000', res.status, 'no5xx');
  }
  const bigOrder = await send('POST', '/v1/orders', { token: fuzzCustomer.token, raw: JSON.stringify({ items: Array.from({ length: 50 }, () => ({ item_id: fuzzItem.id, quantity: 1000 })) }) });
  note('accepted: boundary numbers', '50 lines x 1000 of one item', bigOrder.status, 'no5xx');
  // A slow client: a valid registration sent one byte every 10 ms.
  const reg = JSON.stringify({ email: `${OK}-slow@example.com`, password: 'slow-password-1' });
  const slow = await rawExchange([`POST /v1/users HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(reg)}\r\n\r\n`, ...reg.split('')], 10, 5000);
  note('slow clients', 'body byte by byte', slow === 'none' ? 'closed' : slow, 'no5xx');
  t.equal(slow, 201, 'a slow but valid request is served');

  // --- the engine after all of it ---
  t.equal((await api('GET', '/healthz')).status, 200, '/healthz answers');
  t.equal((await api('GET', '/v1/orders', { token: victim.token })).status, 200, 'the customer whose token sent the destructive-route cases still has a session');
  t.same(workers(), workersBefore, 'the same worker processes: none crashed and respawned');
  const inflightAfter = await inflightSettles(inflightBefore);
  t.ok(inflightAfter <= inflightBefore, `in flight after the campaign: ${inflightAfter} (before: ${inflightBefore}): every aborted, stalled and refused case gave its slot back`);
  t.same(failures, [], `${failures.length} cases answered wrongly`);
  t.ok(roundTrips > 0, `${roundTrips} stored texts compared with what was sent`);
  if (noValidBody.length) t.comment(`no valid body could be made from the schema (accepted cases not sent): ${noValidBody.join(', ')}`);
  const lines = [...tally.entries()].sort().map(([k, v]) => `${k.padEnd(46)} ${String(v.n).padStart(6)}  ${[...v.statuses.entries()].map(([s, n]) => `${s}:${n}`).join(' ')}`);
  const total = [...tally.values()].reduce((s, v) => s + v.n, 0);
  t.comment(`fuzz campaign over ${all.length} routes, FUZZ_ITERATIONS=${ITERATIONS}: ${total} requests (${skipped} generated mutations the schema accepts were not sent as rejects)\n${lines.join('\n')}`);
});

/** Text the engine must refuse whatever the schema says: NUL, lone surrogates (keys too). */
function UNSTORABLE(v: unknown): boolean {
  const stack = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x === 'string' && /[\0\p{Cs}]/u.test(x)) return true;
    if (x && typeof x === 'object') for (const [k, y] of Object.entries(x)) { if (/[\0\p{Cs}]/u.test(k)) return true; stack.push(y); }
  }
  return false;
}

