// Redis is optional at run time: with it stopped, reads come from Postgres,
// holds go on, nothing is oversold, /readyz says so, and the engine heals when it
// returns. This file owns its Redis (never the suite's shared one) and its own
// 2-worker cluster pointed at it, and stops and starts that Redis under traffic.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import t from 'tap';
import { ROOT } from '../src/paths.js';
import { findRedisServer } from '../tools/dev/stack.js';
import { sleep } from '../tools/lib/wait.js';
import { admin, api, customers, item, itemRow, localId, shardOf, type Customer } from './helpers/api.js';
import { startCluster, stop } from './helpers/engine.js';
import { connect, until } from './helpers/live.js';
import { OWN_PORTS } from './setup/env.js';

const ENGINE_PORT = OWN_PORTS.redisDownEngine;
const REDIS_PORT = OWN_PORTS.redisDownRedis;
const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;

let redisProc: ChildProcess | null = null;

async function startRedis(): Promise<void> {
  const dir = path.join(ROOT, '.stack', `redis-down-${REDIS_PORT}`);
  mkdirSync(dir, { recursive: true });
  redisProc = spawn(findRedisServer(), ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' });
  const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  await until('own redis answers', async () => probe.connect().then(() => probe.ping(), () => 'no'), (r) => r === 'PONG', 5000, 50);
  probe.disconnect();
}

async function stopRedis(): Promise<void> {
  const p = redisProc;
  redisProc = null;
  if (!p || p.exitCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL'); // a crash, not a polite shutdown
  await gone;
}

t.teardown(stopRedis);

t.test('Redis stopped and started again under traffic: reads from Postgres, no oversell, healed', async (t) => {
  await startRedis();
  const engine = startCluster(ENGINE_PORT, { WORKERS: '2', REDIS_URLS: REDIS_URL });
  t.teardown(() => stop(engine));
  await until('both workers ready', async () => engine.out(), (o) => o.includes('"msg":"engine ready"'), 30_000, 100);
  const base = engine.url;

  const STOCK = 100;
  const it = await item({ stock: STOCK });
  const buyers: Customer[] = await customers(200, 16);
  t.equal((await api('GET', `/v1/items/${it.id}`, { base })).body.available, STOCK);
  const own = new Redis(REDIS_URL);
  t.ok(await own.exists(`c1:it:${shardOf(it.id)}:${localId(it.id)}`), 'the item is cached in this Redis');
  own.disconnect();

  // Traffic for about 4 s: buyers hold one unit each (6 at a time) while readers read the item.
  const holds: number[] = [];
  const reads: number[] = [];
  let next = 0;
  let stopReading = false;
  const buying = Promise.all(Array.from({ length: 6 }, async () => {
    while (next < buyers.length) {
      const c = buyers[next++]!;
      const r = await api('POST', '/v1/orders', { token: c.token, body: { items: [{ item_id: it.id, quantity: 1 }] }, base });
      holds.push(r.status === 409 && r.body.error.type !== 'sold_out' ? -409 : r.status);
      await sleep(100);
    }
  }));
  const reading = Promise.all(Array.from({ length: 4 }, async () => {
    while (!stopReading) {
      reads.push((await api('GET', `/v1/items/${it.id}`, { base })).status);
      await sleep(10);
    }
  }));

  await sleep(300);
  await stopRedis();
  const down = await until('/readyz reports redis down', () => api('GET', '/readyz', { base }), (r) => r.status === 503, 5000, 50);
  t.match(down.value.body, { status: 'degraded', redis: [{ redis: 0, status: 'down' }] }, '503 with the per-dependency status; shards up');
  t.ok(down.value.body.shards.every((s: { status: string }) => s.status === 'up'));
  const before = (await itemRow(it.id)).available;
  const whileDown = await api('GET', `/v1/items/${it.id}`, { base });
  const after = (await itemRow(it.id)).available;
  t.equal(whileDown.status, 200, 'reads are served from Postgres');
  t.ok(whileDown.body.available <= before && whileDown.body.available >= after, 'and they are current (holds only lower the count)');
  const heldWhileDown = holds.length;
  await sleep(1500);
  t.ok(holds.length > heldWhileDown, `holds went on while Redis was down (${holds.length - heldWhileDown} answered)`);
  await startRedis();
  await until('/readyz is 200 again', () => api('GET', '/readyz', { base }).then((r) => r.status), (s) => s === 200, 10_000, 100);

  await buying;
  stopReading = true;
  await reading;
  t.equal(holds.length, buyers.length);
  t.same([...new Set(holds)].sort(), [201, 409], 'every hold answered 201 or 409 sold_out: nothing else, nothing 5xx');
  t.equal(holds.filter((s) => s === 201).length, STOCK, 'exactly the stock was held');
  t.ok(reads.length > 50 && reads.every((s) => s === 200), `${reads.length} reads, all 200`);
  t.same(await itemRow(it.id), { available: 0, held: STOCK, sold: 0, stocked: STOCK }, 'no oversell');

  // Healed: the cache fills the new (empty) Redis again and shows the truth; the stream
  // works across workers again; the gate reopens on a restock.
  await until('the item is cached again', async () => {
    await api('GET', `/v1/items/${it.id}`, { base });
    const r = new Redis(REDIS_URL);
    const n = await r.exists(`c1:it:${shardOf(it.id)}:${localId(it.id)}`);
    r.disconnect();
    return n;
  }, (n) => n === 1, 5000, 100);
  t.equal((await api('GET', `/v1/items/${it.id}`, { base })).body.available, 0);
  const s = await connect({}, base);
  t.teardown(() => s.close());
  await s.subscribe([`items/${it.id}`]);
  await api('POST', `/v1/items/${it.id}/stock`, { token: await admin(), body: { delta: 2 }, base });
  await s.next((f) => f.op === 'event' && f.data.available === 2, 5000);
  const late = await customers(2);
  for (const c of late) {
    const r = await until('a hold after the restock', () => api('POST', '/v1/orders', { token: c.token, body: { items: [{ item_id: it.id, quantity: 1 }] }, base }).then((x) => x.status),
      (st) => st === 201, 3000, 20);
    t.equal(r.value, 201);
  }
  t.same(await itemRow(it.id), { available: 0, held: STOCK + 2, sold: 0, stocked: STOCK + 2 });
});
