// A shard that is a primary with a synchronous standby fails over, and the engine
// follows it without a restart. On a scratch pair of its own (never the shared
// stack's clusters): shard 0 lists primary,standby; shard 1 lists standby,primary (its
// first host is read-only from the start); shard 2 is a database of its own on the
// stack, which stays up throughout. The primary is crashed, the standby promoted:
// meanwhile the two shards answer 503 unavailable with Retry-After, shard 2 keeps
// selling; afterwards both heal on the promoted node and the orders made before are
// there. The standby's own log shows the engine connected to it while it was read-only
// and never sent it a write. Then the way back, as a planned switchover: the crashed
// node is rebuilt as a standby, the current primary fenced (read-only, still running,
// the engine's connections to it open) and the rebuilt node promoted; the engine
// follows again and keeps no connection to the fenced node.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { ConfigError, DEFAULT_PG_SHARDS, loadConfig } from '../src/config.js';
import { setLogLevel } from '../src/log.js';
import { ROOT } from '../src/paths.js';
import { admin, api, categoryOnShard, item, localId, useWorld } from './helpers/api.js';
import { startCluster, stop, type Spawned } from './helpers/engine.js';
import { until } from './helpers/live.js';
import { attachStandby, crash, fence, pairRoot, promote, query, removePair, serverLog, startPair, type Node, type Pair } from './helpers/replicas.js';
import { OWN_PORTS } from './setup/env.js';

setLogLevel('warn'); // migrateShard's progress lines are not TAP

const ENGINE_PORT = OWN_PORTS.failoverEngine;
const P = OWN_PORTS.failoverPrimary;
const S = OWN_PORTS.failoverStandby;
const THIRD_DB = `engine_failover_${ENGINE_PORT}`;
const thirdAdminUrl = DEFAULT_PG_SHARDS.split(',')[2]!.replace(/\/[^/]+$/, '/postgres');

async function onThird(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: thirdAdminUrl });
  await c.connect();
  try { await c.query(text); } finally { await c.end(); }
}

let pair: Pair | null = null;
let engine: Spawned | null = null;
const engineOut: Buffer[] = []; // all of it (startCluster keeps the tail), for a failed run's record
// One teardown, in order: the engine first, then what explains a failure, then the nodes.
t.teardown(async () => {
  if (engine) await stop(engine);
  if (!t.passing() && pair) {
    const dir = path.join(ROOT, '.stack', `failover-${ENGINE_PORT}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'engine.log'), Buffer.concat(engineOut));
    writeFileSync(path.join(dir, 'primary.log'), serverLog(pair.primary));
    writeFileSync(path.join(dir, 'standby.log'), serverLog(pair.standby));
    t.comment(`logs of the failed run: ${dir}`);
  }
  removePair(pairRoot('failover', P));
  await onThird(`DROP DATABASE IF EXISTS "${THIRD_DB}" WITH (FORCE)`).catch(() => undefined);
});

// If this process is ended before its teardown (a tap timeout), still stop what it started.
process.once('exit', () => {
  if (engine && engine.child.exitCode === null) engine.child.kill('SIGTERM');
  removePair(pairRoot('failover', P));
});

pair = await startPair('failover', P, S, ['engine0', 'engine1']);
await onThird(`DROP DATABASE IF EXISTS "${THIRD_DB}" WITH (FORCE)`);
await onThird(`CREATE DATABASE "${THIRD_DB}"`);
const hosts = (first: number, second: number, db: string) => `postgres://postgres@127.0.0.1:${first},127.0.0.1:${second}/${db}`;
const PG_SHARDS = [hosts(P, S, 'engine0'), hosts(S, P, 'engine1'), DEFAULT_PG_SHARDS.split(',')[2]!.replace(/\/[^/]+$/, `/${THIRD_DB}`)].join(',');

engine = startCluster(ENGINE_PORT, {
  PG_SHARDS, WORKERS: '1', LOG_LEVEL: 'info',
  // Test speed: a down shard is probed again after 200 ms, its hosts at most every 200 ms.
  SHARD_DOWN_COOLDOWN_MS: '200', PG_PRIMARY_PROBE_EVERY_MS: '200', PG_PRIMARY_PROBE_TIMEOUT_MS: '2000', PG_CONNECT_TIMEOUT_MS: '2000',
});
engine.child.stdout!.on('data', (d: Buffer) => engineOut.push(d));
engine.child.stderr!.on('data', (d: Buffer) => engineOut.push(d));
const cluster = engine;
await until('the engine is ready', async () => cluster.out(), (o) => o.includes('"msg":"engine ready"') || cluster.child.exitCode !== null, 60_000, 100);
if (cluster.child.exitCode !== null) throw new Error(`the engine exited at start:\n${cluster.out()}`);
useWorld({ engine: cluster.url });

interface Answer { status: number; type?: string; retryAfter: string | null; body: any }

/** A request that must be answered: one that hangs fails the test instead of waiting for tap. */
async function call(method: string, path: string, token: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${cluster.url}${path}`, {
    method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(15_000),
  });
  const parsed = await res.json().catch(() => null);
  return { status: res.status, type: parsed?.error?.type, retryAfter: res.headers.get('retry-after'), body: parsed };
}

const buy = (token: string, itemId: string) => call('POST', '/v1/orders', token, { items: [{ item_id: itemId, quantity: 1 }] });

/** A customer whose account lives on shard 2, so signing in does not depend on the shards that fail over. */
async function customerOnThird(): Promise<string> {
  for (let i = 0; i < 30; i++) {
    const email = `failover-${ENGINE_PORT}-${i}-${Date.now()}@example.com`;
    const reg = await api('POST', '/v1/users', { body: { email, password: 'correct-horse-battery' } });
    if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
    if (reg.body.id[3] !== '2') continue;
    const login = await api('POST', '/v1/sessions', { body: { email, password: 'correct-horse-battery' } });
    return login.body.token as string;
  }
  throw new Error('no account landed on shard 2');
}

const primaryChanges = () => Buffer.concat(engineOut).toString().split('\n').filter((l) => l.includes('"msg":"shard primary changed"')).map((l) => JSON.parse(l));

/**
 * Admin /readyz once every shard answers it: each lane of a shard heals on its own first
 * request (one probe at a time), so right after the writes heal a read may still be the
 * probe's neighbour and get a fast 503.
 */
async function readyzAsAdmin(): Promise<any> {
  const token = await admin();
  const ready = await until('admin /readyz answers ok', async () => (await api('GET', '/readyz', { token })).body,
    (b) => b?.status === 'ok' && Array.isArray(b.pools), 10_000, 100);
  return ready.value;
}

const token = await customerOnThird();
const [c0, c1, c2] = [await categoryOnShard(0), await categoryOnShard(1), await categoryOnShard(2)];
const [i0, i1, i2] = [await item({ category_id: c0.id, stock: 50 }), await item({ category_id: c1.id, stock: 50 }), await item({ category_id: c2.id, stock: 50 })];
const orderIds = async (node: Node, db: string) => (await query(node, db, 'SELECT id FROM orders ORDER BY id')).map((r) => Number(r.id));
const made: Record<0 | 1, number[]> = { 0: [], 1: [] };
const keep = (shard: 0 | 1, a: Answer) => { if (a.status === 201) made[shard].push(localId(a.body.orders[0].id)); return a; };

t.test('the engine follows a shard primary through a failover, with no restart', async (t) => {
  // Before: writes work on both shards; shard 1's first host is the standby, so it is
  // served by its second, the primary, from its first request.
  const before0 = keep(0, await buy(token, i0.id));
  t.equal(before0.status, 201, 'an order on shard 0 (hosts: primary, standby)');
  const before1 = keep(1, await buy(token, i1.id));
  t.equal(before1.status, 201, 'an order on shard 1 (hosts: standby, primary) is served by the primary from the start');
  const ready = await readyzAsAdmin();
  t.match(ready.shards, [
    { shard: 0, status: 'up', primary: `127.0.0.1:${P}`, follows: true },
    { shard: 1, status: 'up', primary: `127.0.0.1:${P}`, follows: true },
    { shard: 2, status: 'up', primary: '127.0.0.1:55433', follows: false },
  ], 'admin /readyz names each shard\'s primary');
  t.ok(primaryChanges().some((l) => l.shard === 1 && l.from === `127.0.0.1:${S}` && l.to === `127.0.0.1:${P}`),
    'the move off shard 1\'s read-only first host is logged (shard, from, to)');

  // The failover: the primary crashes; until the standby is promoted, neither shard has a writable host.
  crash(pair!.primary);
  const gap: Answer[] = [];
  for (let i = 0; i < 6; i++) gap.push(await buy(token, i % 2 === 0 ? i0.id : i1.id));
  t.same(gap.map((a) => [a.status, a.type]), Array.from({ length: 6 }, () => [503, 'unavailable']),
    'during the gap each order on the failing shards is answered 503 unavailable (none hangs)');
  t.ok(gap.every((a) => Number(a.retryAfter) >= 1), 'each with Retry-After');
  t.equal((await buy(token, i2.id)).status, 201, 'shard 2 keeps selling meanwhile');
  const gone = await call('GET', `/v1/orders/${before0.body.orders[0].id}/events`, token);
  t.same([gone.status, gone.type], [503, 'unavailable'], 'a read of shard 0 too');

  promote(pair!.standby);
  // Healed without a restart: both shards write on the promoted node.
  const healed0 = await until('an order on shard 0 after the promotion', async () => keep(0, await buy(token, i0.id)), (a) => a.status === 201, 30_000, 100);
  t.equal(healed0.value.status, 201, `shard 0 healed on its own (${Math.round(healed0.ms)} ms after the promotion)`);
  const healed1 = await until('an order on shard 1 after the promotion', async () => keep(1, await buy(token, i1.id)), (a) => a.status === 201, 30_000, 100);
  t.equal(healed1.value.status, 201, 'shard 1 healed on its own');
  t.equal(cluster.child.exitCode, null, 'the engine was not restarted');
  t.notMatch(Buffer.concat(engineOut).toString(), /process died, respawning/, 'nor any of its workers or its cron process');

  // The orders made before the crash are on the promoted node (the standby was synchronous), and readable.
  const standby = pair!.standby;
  t.same(await orderIds(standby, 'engine0'), [localId(before0.body.orders[0].id), localId(healed0.value.body.orders[0].id)], 'shard 0: the order from before and the new one, on the promoted node');
  t.same(await orderIds(standby, 'engine1'), [localId(before1.body.orders[0].id), localId(healed1.value.body.orders[0].id)], 'shard 1 likewise');
  const events = await call('GET', `/v1/orders/${before0.body.orders[0].id}/events`, token);
  t.equal(events.status, 200, 'the order made before the failover is readable through the engine');
  t.ok(events.body.data.length > 0, 'with its audit trail');

  const after = await readyzAsAdmin();
  t.match(after.shards, [{ shard: 0, primary: `127.0.0.1:${S}` }, { shard: 1, primary: `127.0.0.1:${S}` }], 'admin /readyz names the promoted node');
  for (const shard of [0, 1]) {
    t.ok(primaryChanges().some((l) => l.shard === shard && l.from === `127.0.0.1:${P}` && l.to === `127.0.0.1:${S}`), `shard ${shard}: the change is logged`);
  }

  // What the standby saw while it was read-only (its log up to the promotion): the
  // engine connected (its connections were checked there) and never sent a write.
  const log = serverLog(standby);
  const promotedAt = log.indexOf('selected new timeline ID');
  t.ok(promotedAt > 0, 'the standby logged its promotion');
  const readOnly = log.slice(0, promotedAt);
  t.match(readOnly, /connection authorized: .*application_name=engine-/, 'the engine connected to the standby while it was read-only');
  t.notMatch(log, /app=engine-\S* sqlstate=25006/, 'and never had a write refused there (no 25006 from the engine)');
  t.notMatch(log, /cannot execute .* in a read-only transaction/, 'no statement was refused as read-only at all');
});

t.test('the way back, a planned switchover: the primary fenced, the rebuilt node promoted; no connection stays at the fenced one', async (t) => {
  const [formerPrimary, current] = [pair!.primary, pair!.standby];
  await attachStandby(current, formerPrimary);
  for (const shard of [0, 1] as const) t.equal(keep(shard, await buy(token, shard === 0 ? i0.id : i1.id)).status, 201, `shard ${shard} writes on the current primary`);
  const engineOn = async (node: Node) => (await query(node, 'postgres',
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'engine-%' AND application_name NOT LIKE '%-probe'"))[0].n as number;
  t.ok((await engineOn(current)) > 0, 'the engine holds pooled connections to the current primary');

  await fence(current);
  const refused = await buy(token, i0.id);
  t.same([refused.status, refused.type], [503, 'unavailable'], 'a write meeting the fenced primary is answered 503 unavailable');
  t.ok(Number(refused.retryAfter) >= 1, 'with Retry-After');
  promote(formerPrimary);
  for (const shard of [0, 1] as const) {
    const healed = await until(`an order on shard ${shard} after the switchover`, async () => keep(shard, await buy(token, shard === 0 ? i0.id : i1.id)), (a) => a.status === 201, 30_000, 100);
    t.equal(healed.value.status, 201, `shard ${shard} follows to the rebuilt node (${Math.round(healed.ms)} ms after the promotion)`);
  }
  // Idle connections at the fenced node are dropped when a process re-resolves (well
  // before the pools' 30 s idle timeout); busy ones when handed back.
  const left = await until('no engine connection left at the fenced node', () => engineOn(current), (n) => n === 0, 20_000, 200);
  t.equal(left.value, 0, `no engine connection is left at the fenced former primary (${Math.round(left.ms)} ms after)`);
  const after = await readyzAsAdmin();
  t.match(after.shards, [{ shard: 0, primary: `127.0.0.1:${P}` }, { shard: 1, primary: `127.0.0.1:${P}` }], 'admin /readyz names the rebuilt node');
  for (const shard of [0, 1]) {
    t.ok(primaryChanges().some((l) => l.shard === shard && l.from === `127.0.0.1:${S}` && l.to === `127.0.0.1:${P}`), `shard ${shard}: the switchover is logged`);
  }
  t.same(await orderIds(formerPrimary, 'engine0'), made[0], 'every order of shard 0 ever acknowledged is on the new primary');
  t.same(await orderIds(formerPrimary, 'engine1'), made[1], 'and of shard 1');
  t.notMatch(serverLog(formerPrimary), /sqlstate=25006/, 'no write was ever refused on the rebuilt node (a standby until promoted)');
});

t.test('PG_SHARDS: several hosts per shard in the libpq form are accepted; a malformed list is refused naming the shard', async (t) => {
  const two = 'postgres://engine:s3cret@10.0.0.1:5432,10.0.0.2:5433/engine?query_timeout=6000&target_session_attrs=read-write';
  const one = 'postgres://engine:s3cret@10.0.0.3:5432/engine';
  t.same(loadConfig({ PG_SHARDS: `${two},${one}` }).pgShards, [two, one], 'a comma inside a URL does not split the list');
  const refused = (url: string) => {
    try {
      loadConfig({ PG_SHARDS: `${one},${url}` });
      return 'accepted';
    } catch (err) {
      return err instanceof ConfigError ? err.message : `not a ConfigError: ${String(err)}`;
    }
  };
  t.match(refused('postgres://engine:s3cret@10.0.0.1:5432,10.0.0.2:x/engine'), /^PG_SHARDS shard 1: invalid host "10.0.0.2:x"/);
  t.match(refused('postgres://engine:s3cret@10.0.0.1:5432,/engine'), /^PG_SHARDS shard 1: invalid host ""/);
  t.match(refused('postgres://engine:s3cret@10.0.0.1,10.0.0.1/engine'), /^PG_SHARDS shard 1: a host is listed twice/);
  t.match(refused('postgres://engine:s3cret@10.0.0.1,10.0.0.2/engine?target_session_attrs=any'), /target_session_attrs=any is not supported/);
  t.match(refused('postgres://engine:s3cret@10.0.0.1/engine?host=a,b'), /list the hosts in the URL instead/);
  t.notMatch(refused('postgres://engine:s3cret@10.0.0.1,10.0.0.2:99999/engine'), /s3cret/, 'the password is not in the message');
});
