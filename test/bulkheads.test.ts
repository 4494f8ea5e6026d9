// Bulkheads: reads, writes and payments draw on connection pools of their own, so a
// storm of one class waits in its own queue and never takes another class's
// connections. Proven on an engine of its own with tiny pools (PG_POOL_SIZE=8: 2 read,
// 4 write, 2 payment) and no read cache, where every category read goes to Postgres.
import pg from 'pg';
import t from 'tap';
import { sleep } from '../tools/lib/wait.js';
import { api, categoryOnShard, customer, item, onShard, order, useWorld, world } from './helpers/api.js';
import { isolatedShards, startReady, stop } from './helpers/engine.js';
import { OWN_PORTS } from './setup/env.js';

// Databases of its own: the lock this file takes must not stall other files' reads.
const shards = await isolatedShards(`engine_bulkheads_${OWN_PORTS.bulkheadsEngine}`);
const engine = await startReady(OWN_PORTS.bulkheadsEngine, {
  PG_SHARDS: shards, WORKERS: '1', PG_POOL_SIZE: '8', CACHE_ENABLED: 'false', PG_LOCK_TIMEOUT_MS: '20000', PG_STATEMENT_TIMEOUT_MS: '30000',
});
useWorld({ engine: engine.url, shards });
t.teardown(() => stop(engine));

t.test('a storm of reads stuck in the database does not hold up a checkout or a payment', async (t) => {
  const it = await item({ stock: 5, category_id: (await categoryOnShard(0)).id }); // on the shard whose reads are stuck
  const c = await customer();
  // Every category list read now waits on a lock the test holds: the read lane's
  // connections are all stuck, and more reads queue behind them.
  const locker = new pg.Client({ connectionString: world.shards.split(',')[0]! });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE categories IN ACCESS EXCLUSIVE MODE');
  let readsSettled = 0;
  const reads = Array.from({ length: 12 }, () => api('GET', '/v1/categories').finally(() => { readsSettled++; }));
  try {
    await sleep(300);
    const waiting = await onShard(0, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE 'engine-worker-read%'");
    t.equal(waiting[0].n, 2, 'both read connections are stuck on the lock');
    const made = await order(c.token, [{ item_id: it.id, quantity: 1 }]);
    t.equal(made.status, 201, 'a checkout is answered meanwhile');
    const paid = await api('POST', `/v1/orders/${made.body.orders[0].id}/payments`, { token: c.token, body: { method: 'card' } });
    t.equal(paid.status, 201, 'and so is a payment');
    t.equal(readsSettled, 0, 'while every read is still waiting');
  } finally {
    await locker.query('ROLLBACK');
    await locker.end();
  }
  const answered = await Promise.all(reads);
  t.ok(answered.every((r) => r.status === 200 || r.status === 503), 'the reads are answered (or shed) once the lock goes');
});
