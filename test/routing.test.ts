// Routing and operations: ids are untrusted input (malformed, foreign shard, forged),
// every answer carries a request id, and the ops endpoints report the real fleet.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import t from 'tap';
import { DEFAULT_PG_SHARDS } from '../src/config.js';
import { ROOT } from '../src/paths.js';
import { sleep, waitForUrl } from '../tools/lib/wait.js';
import { admin, api, category, customer, item, localId, onShard, order, shardOf, shardOfToken, uniq } from './helpers/api.js';
import { startCluster, stop } from './helpers/engine.js';
import { OWN_PORTS, TEST_PORT } from './setup/env.js';

interface RawRes { status: number; headers: Record<string, string | string[] | undefined>; text: string }

/** A request with the path sent byte for byte: fetch would normalise `../` and re-encode. */
function rawGet(path: string, headers: Record<string, string> = {}): Promise<RawRes> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: TEST_PORT, path, method: 'GET', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

function json(t: Tap, res: RawRes): any {
  try {
    return JSON.parse(res.text);
  } catch {
    t.fail(`not JSON: ${res.text.slice(0, 200)}`);
    return {};
  }
}

type Tap = { fail(msg: string): unknown };

const MALFORMED_IDS = [
  'it_', 'it_z1', 'it_9zz', 'it_3abc', 'or_01', 'us_0', 'it-01', 'IT_01', 'it_0', 'it_00', 'it__1',
  `it_0${'z'.repeat(40)}`, `it_0${'z'.repeat(11)}`, 'it_0zzzzzzzzzz', '12345', 'null', 'undefined',
  'it_%C3%A9', '%E2%82%AC', '%F0%9F%92%A9', 'it_0%20', '%25', '%ZZ', '%', 'it_0%E0%A4%A',
  '..%2F..%2Fetc%2Fpasswd', '%2e%2e%2f', '..', '.', 'it_0;DROP%20TABLE%20items', "it_1'%20OR%20'1'='1",
];

t.test('malformed item ids are 404 not_found JSON, never 500, and the worker survives', async (t) => {
  for (const id of MALFORMED_IDS) {
    const res = await rawGet(`/v1/items/${id}`);
    t.equal(res.status, 404, `GET /v1/items/${id} is 404`);
    t.equal(json(t, res).error?.type, 'not_found', `${id}: error.type not_found`);
    t.match(res.headers['content-type'], /application\/json/);
  }
  const health = await rawGet('/healthz');
  t.equal(health.status, 200, 'still serving afterwards');
});

t.test('an id with a NUL byte is refused as unstorable text (400 naming id), never 500', async (t) => {
  // The HTTP layer refuses NUL in every field, path parameters included, before any
  // route sees it: the one malformed id that is a 400 rather than a 404.
  for (const id of ['%00', 'it_0%00', 'it_01%00']) {
    const res = await rawGet(`/v1/items/${id}`);
    t.equal(res.status, 400, `GET /v1/items/${id} is 400`);
    t.match(json(t, res).error, { type: 'invalid_request', field: 'id' });
  }
});

t.test('path traversal in an id never escapes the route', async (t) => {
  for (const path of ['/v1/items/../healthz', '/v1/items/../../etc/passwd', '/v1/items/it_0/../../readyz']) {
    const res = await rawGet(path);
    t.equal(res.status, 404, path);
    t.equal(json(t, res).error?.type, 'not_found');
  }
  const viaFetch = await api('GET', `/v1/items/${encodeURIComponent('é€💩')}`);
  t.equal(viaFetch.status, 404, 'unicode ids are 404');
});

t.test('an item id moved to another shard never reaches the original item', async (t) => {
  const it = await item();
  const home = shardOf(it.id);
  for (const other of [0, 1, 2].filter((s) => s !== home)) {
    const moved = `it_${other}${it.id.slice(4)}`;
    const res = await api('GET', `/v1/items/${moved}`);
    // Local ids are per-shard sequences, so the same number may name another item
    // there. The shard digit alone decides: that item or 404, never a fallback search.
    const there = await onShard(other, 'SELECT name, category_id::text AS category_id FROM items WHERE id = $1', [localId(it.id)]);
    if (there[0]) {
      t.equal(res.status, 200, `${moved} is shard ${other}'s own item`);
      t.match(res.body, { id: moved, name: there[0].name, category_id: there[0].category_id });
      t.not(res.body.name, it.name);
    } else {
      t.equal(res.status, 404, `${moved} does not exist on shard ${other}`);
      t.equal(res.body.error.type, 'not_found');
    }
  }
  const absent = `it_${home}${(localId(it.id) + 1_000_000_000).toString(36)}`;
  const res = await api('GET', `/v1/items/${absent}`);
  t.equal(res.status, 404, 'an id past the end of the shard is 404');
  t.equal(res.body.error.code, 'not_found');
});

t.test('an id of the wrong kind is 404 on the item route', async (t) => {
  const it = await item();
  for (const kind of ['or', 'pa', 'ho', 'us']) {
    const res = await api('GET', `/v1/items/${kind}${it.id.slice(2)}`);
    t.equal(res.status, 404, `${kind}_ id`);
    t.equal(res.body.error.type, 'not_found');
  }
  const token = await admin();
  t.equal((await api('PATCH', `/v1/items/it_9zz`, { token, body: { name: 'x' } })).status, 404, 'PATCH with an out-of-range shard');
  t.equal((await api('POST', `/v1/items/%ZZ/stock`, { token, body: { delta: 1 } })).status, 404, 'stock with broken encoding');
});

t.test('unknown routes and methods are 404 route_not_found', async (t) => {
  for (const [method, path] of [['GET', '/v1/nope'], ['GET', '/v1'], ['DELETE', '/v1/items'], ['PUT', '/v1/categories'], ['GET', '/v2/items']] as const) {
    const res = await api(method, path);
    t.equal(res.status, 404, `${method} ${path}`);
    t.match(res.body.error, { type: 'not_found', code: 'route_not_found' });
    t.ok(res.headers.get('x-request-id'), 'carries x-request-id');
  }
});

t.test('every response carries x-request-id; a valid client id is echoed back', async (t) => {
  const cat = await category();
  const token = await admin();
  const calls: [string, string, Parameters<typeof api>[2]][] = [
    ['GET', '/healthz', {}], ['GET', '/v1/items/it_9zz', {}], ['GET', '/v1/items?limit=0', {}],
    ['POST', '/v1/categories', {}], ['POST', '/v1/categories', { token, raw: 'x', headers: { 'content-type': 'text/plain' } }],
    ['POST', '/v1/items', { token, body: { category_id: cat.id } }],
  ];
  const seen = new Set<string>();
  for (const [method, path, opts] of calls) {
    const res = await api(method, path, opts);
    const id = res.headers.get('x-request-id');
    t.match(id, /^[A-Za-z0-9._-]{1,64}$/, `${method} ${path} (${res.status}) has x-request-id`);
    seen.add(id!);
    const mine = `rid-${Math.random().toString(36).slice(2)}`;
    const echoed = await api(method, path, { ...opts, headers: { ...opts?.headers, 'x-request-id': mine } });
    t.equal(echoed.headers.get('x-request-id'), mine, `${method} ${path} echoes the client's id`);
  }
  t.equal(seen.size, calls.length, 'generated ids are unique');
  for (const bad of ['has space', 'x'.repeat(65), 'semi;colon']) {
    const res = await api('GET', '/healthz', { headers: { 'x-request-id': bad } });
    const id = res.headers.get('x-request-id');
    t.not(id, bad, `an invalid client id (${bad.slice(0, 12)}) is replaced`);
    t.match(id, /^[A-Za-z0-9._-]{1,64}$/);
  }
});

t.test('/healthz answers 200', async (t) => {
  const res = await api('GET', '/healthz');
  t.equal(res.status, 200);
  t.same(res.body, { status: 'ok' });
});

t.test('/readyz reports three shards up and Redis up: statuses to anyone, details to an admin', async (t) => {
  const res = await api('GET', '/readyz');
  t.equal(res.status, 200);
  t.equal(res.body.status, 'ok');
  t.same(res.body.shards, [0, 1, 2].map((shard) => ({ shard, status: 'up' })), 'each shard: its status and nothing else');
  t.ok(res.body.redis.length >= 1, 'at least one Redis');
  t.same(res.body.redis, res.body.redis.map((_: unknown, i: number) => ({ redis: i, status: 'up' })), 'each Redis: its status and nothing else');
  t.same(Object.keys(res.body).sort(), ['redis', 'shards', 'status'], 'no pool figures for anonymous callers');
  const full = await api('GET', '/readyz', { token: await admin() });
  t.equal(full.status, 200);
  t.same(full.body.pools.map((p: { shard: number; lane: string }) => `${p.lane}:${p.shard}`),
    ['read:0', 'read:1', 'read:2', 'write:0', 'write:1', 'write:2', 'payment:0', 'payment:1', 'payment:2'], 'an admin sees the pools of every lane');
  t.ok(full.body.shards.every((s: { ms: unknown }) => typeof s.ms === 'number'), 'and the ping times');
});

t.test('/readyz with a shard down: anonymous callers see which, never why; an admin sees why', async (t) => {
  const token = await admin();
  const down = (shardOfToken(token) + 1) % 3; // not the admin's own shard: the admin can still sign in
  const urls = (process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS).split(',');
  urls[down] = 'postgres://postgres@127.0.0.1:1/engine'; // nothing listens on port 1
  const own = startCluster(OWN_PORTS.readyzEngine, { PG_SHARDS: urls.join(','), WORKERS: '1' });
  t.teardown(() => stop(own));
  await waitForUrl(`${own.url}/readyz`, 30_000, (s) => s === 503);
  const expected = { status: 'unavailable', shards: [0, 1, 2].map((shard) => ({ shard, status: shard === down ? 'down' : 'up' })) };
  const customerToken = (await customer()).token;
  for (const [who, as] of [['anonymous', null], ['a garbage token', `s0.${'A'.repeat(43)}`], ['a customer', customerToken]] as const) {
    const res = await api('GET', '/readyz', { base: own.url, token: as });
    t.equal(res.status, 503, `${who}: 503`);
    t.match(res.body, expected, `${who}: which shard is down`);
    t.same(Object.keys(res.body).sort(), ['redis', 'shards', 'status'], `${who}: no pools`);
    t.notMatch(JSON.stringify(res.body), /ECONNREFUSED|127\.0\.0\.1|postgres|error|message|last_/i, `${who}: no error text, host or address`);
  }
  const full = await api('GET', '/readyz', { base: own.url, token });
  t.equal(full.status, 503);
  t.match(full.body.shards[down], { shard: down, status: 'down', error: String }, 'an admin sees why the shard is down');
  t.match(full.body.pools[down], { shard: down, state: 'down', last_error: /ECONNREFUSED/ }, 'and its pool\'s last error');
});

t.test('/metrics shows request counts by route and pool usage per shard', async (t) => {
  const it = await item();
  t.equal((await api('GET', `/v1/items/${it.id}`)).status, 200);
  const wanted = ['bf_http_requests_total{route="get_item",status="200"}', 'bf_pg_pool_connections{shard="0"', 'bf_pg_pool_connections{shard="2"'];
  const deadline = Date.now() + 5000;
  let text = '';
  let ctype = '';
  while (Date.now() < deadline) {
    const res = await api('GET', '/metrics');
    t.equal(res.status, 200);
    text = String(res.body);
    ctype = res.headers.get('content-type') ?? '';
    if (wanted.every((w) => text.includes(w))) break;
    await sleep(250);
  }
  for (const w of wanted) t.ok(text.includes(w), `metrics include ${w}`);
  t.match(ctype, /^text\/plain/);
  const count = /^bf_http_requests_total\{route="get_item",status="200"\} (\d+)/m.exec(text);
  t.ok(count && Number(count[1]) >= 1, 'the count is a positive number');
  t.match(text, /# TYPE bf_http_requests_total counter/);
  t.match(text, /bf_http_request_duration_seconds_bucket\{route="get_item",status_class="2xx",le="\+Inf"\} \d+/);
});

t.test('/openapi.json is OpenAPI 3.1 and every path it lists is served', async (t) => {
  const res = await api('GET', '/openapi.json');
  t.equal(res.status, 200);
  const doc = res.body;
  t.match(doc.openapi, /^3\.1\.\d+$/);
  t.ok(doc.paths['/v1/items/{id}']?.get, 'GET /v1/items/{id}');
  t.ok(doc.paths['/v1/items']?.get && doc.paths['/v1/items']?.post, 'GET and POST /v1/items');
  t.ok(doc.paths['/v1/items/{id}/stock']?.post, 'POST /v1/items/{id}/stock');
  t.ok(doc.paths['/v1/categories']?.post, 'POST /v1/categories');
  t.ok(doc.paths['/v1/sessions']?.post && doc.paths['/v1/users']?.post, 'accounts');
  const idParam = doc.paths['/v1/items/{id}'].get.parameters.find((p: { name: string }) => p.name === 'id');
  t.match(idParam, { in: 'path', required: true });
  t.match(doc.paths['/v1/items'].post.requestBody.content['application/json'].schema, { type: 'object', additionalProperties: false, required: Array });
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { operationId?: string }>>)) {
    t.notOk(path.includes(':'), `${path} uses {param} style`);
    for (const [method, op] of Object.entries(ops)) {
      t.ok(op.operationId, `${method} ${path} has an operationId`);
      // Without a token or body: 4xx of the route's own, never route_not_found.
      if (method === 'get' && path === '/v1/stream') continue;
      const concrete = path.replace(/\{[a-z_]+\}/g, 'it_9zz');
      const served = await api(method.toUpperCase(), concrete, method === 'get' || method === 'delete' ? {} : { raw: '{', headers: { 'content-type': 'application/json' } });
      t.not(served.body?.error?.code, 'route_not_found', `${method.toUpperCase()} ${path} is routed`);
      t.ok(served.status < 500, `${method.toUpperCase()} ${path} does not fail (${served.status})`);
    }
  }
});

/** Every operation of /openapi.json as "METHOD /path", with its object. */
async function operations(): Promise<Map<string, any>> {
  const doc = (await api('GET', '/openapi.json')).body;
  const ops = new Map<string, any>();
  for (const [p, item] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) ops.set(`${method.toUpperCase()} ${p}`, op);
  }
  return ops;
}

const headerParam = (op: any, name: string) => (op.parameters ?? []).find((p: any) => p.in === 'header' && p.name === name);
const responseHeader = (op: any, status: string, name: string) => op.responses?.[status]?.headers?.[name];

/** The POSTs that run under Idempotency-Key handling (docs/API.md, "Idempotency"). */
const KEYED = [
  'POST /v1/orders', 'POST /v1/orders/{id}/cancel', 'POST /v1/orders/{id}/payments', 'POST /v1/cart/items',
  'POST /v1/cart/checkout', 'POST /v1/orders/{id}/ship', 'POST /v1/orders/{id}/deliver',
];

t.test('/openapi.json publishes the headers: X-Request-Id everywhere, Idempotency-Key and Idempotent-Replayed, Retry-After, Gateway-Signature', async (t) => {
  const ops = await operations();
  for (const [name, op] of ops) {
    t.ok(headerParam(op, 'X-Request-Id'), `${name} takes X-Request-Id`);
    for (const status of Object.keys(op.responses)) t.ok(responseHeader(op, status, 'X-Request-Id'), `${name} ${status} answers X-Request-Id`);
    t.ok(responseHeader(op, '503', 'Retry-After'), `${name} 503 carries Retry-After`);
    const keyed = KEYED.includes(name);
    t.equal(Boolean(headerParam(op, 'Idempotency-Key')), keyed, `${name} ${keyed ? 'takes' : 'does not take'} Idempotency-Key`);
    if (!keyed) continue;
    const success = Object.keys(op.responses).find((s) => /^2\d\d$/.test(s))!;
    t.ok(responseHeader(op, success, 'Idempotent-Replayed'), `${name} ${success} may be Idempotent-Replayed`);
    t.ok(responseHeader(op, 'default', 'Idempotent-Replayed'), `${name}: a replayed refusal is marked too`);
    t.ok(responseHeader(op, '409', 'Retry-After'), `${name} 409 in progress carries Retry-After`);
    t.ok(op.responses['422'], `${name} documents 422 idempotency_mismatch`);
  }
  for (const name of ['POST /v1/sessions', 'POST /v1/users']) t.ok(responseHeader(ops.get(name), '429', 'Retry-After'), `${name} 429 carries Retry-After`);
  const signature = headerParam(ops.get('POST /v1/webhooks/gateway'), 'Gateway-Signature');
  t.match(signature, { required: true }, 'the webhook requires Gateway-Signature');

  // What is published is what the engine does.
  const c = await customer();
  const it = await item({ stock: 5 });
  const key = uniq('openapi-key');
  const first = await order(c.token, [{ item_id: it.id, quantity: 1 }], key);
  const again = await api('POST', '/v1/orders', { token: c.token, body: { items: [{ item_id: it.id, quantity: 1 }] }, headers: { 'idempotency-key': key, 'x-request-id': 'openapi-replay-1' } });
  t.equal(first.status, 201);
  t.equal(first.headers.get('idempotent-replayed'), null, 'a first answer is not marked');
  t.equal(again.status, 201);
  t.equal(again.headers.get('idempotent-replayed'), 'true', 'the replay is marked');
  t.equal(again.headers.get('x-request-id'), 'openapi-replay-1', 'the client\'s request id comes back');
  const other = await api('POST', '/v1/orders', { token: c.token, body: { items: [{ item_id: it.id, quantity: 2 }] }, headers: { 'idempotency-key': key } });
  t.equal(other.status, 422);
  t.equal(other.body.error.code, 'idempotency_mismatch');
  const unsigned = await api('POST', '/v1/webhooks/gateway', { raw: '{}', headers: { 'content-type': 'application/json' } });
  t.equal(unsigned.status, 401);
  t.equal(unsigned.body.error.code, 'invalid_signature');
});

t.test('/docs is one self-contained page listing every operation of /openapi.json', async (t) => {
  const ops = await operations();
  const res = await api('GET', '/docs');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/html/);
  const html = String(res.body);
  t.notMatch(html, /<script|<link|\bsrc=|https?:\/\//i, 'no script, stylesheet or address outside the page');
  t.match(res.headers.get('content-security-policy'), /default-src 'none'/, 'and the policy allows nothing else');
  for (const name of ops.keys()) t.ok(html.includes(`data-op="${name}"`), `lists ${name}`);
  const listed = [...html.matchAll(/data-op="([A-Z]+ [^"]+)"/g)].map((m) => m[1]);
  t.same(listed.sort(), [...ops.keys()].sort(), 'and nothing else');
});

t.test('docs/API.md lists exactly the operations of /openapi.json', async (t) => {
  const text = readFileSync(path.join(ROOT, 'docs', 'API.md'), 'utf8');
  const section = text.slice(text.indexOf('\n## Routes\n'), text.indexOf('\n## ', text.indexOf('\n## Routes\n') + 1));
  t.ok(section.length > 100, 'docs/API.md has a "## Routes" section');
  const documented = [...section.matchAll(/^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|/gm)].map((m) => `${m[1]} ${m[2]}`);
  const published = [...(await operations()).keys()];
  t.same(documented.filter((d) => !published.includes(d)), [], 'every route of docs/API.md is in /openapi.json');
  t.same(published.filter((p) => !documented.includes(p)), [], 'every operation of /openapi.json is in docs/API.md');
  t.equal(new Set(documented).size, documented.length, 'each listed once');
});
