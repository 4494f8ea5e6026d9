// Notices are never lost: the dispatcher is killed while a delivery hangs, and the
// respawned one delivers every notice once the lease runs out.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import t from 'tap';
import pg from 'pg';
import { api, eventually, uniq } from './helpers/api.js';
import { childrenWithRole, isolatedShards, startReady, stop } from './helpers/engine.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, OWN_PORTS } from './setup/env.js';

const PORT = OWN_PORTS.outboxEngine;

t.test('a dispatcher killed mid-delivery loses no notice', async (t) => {
  let hang = true;
  const received = new Map<string, number>();
  const held: ServerResponse[] = [];
  const sink = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => {
      if (hang) { held.push(res); return; }
      for (const n of (JSON.parse(body) as { notices: { id: string }[] }).notices) received.set(n.id, (received.get(n.id) ?? 0) + 1);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const sinkPort = (sink.address() as { port: number }).port;
  // Its own databases: this engine must be the only dispatcher of these outbox rows.
  const shards = await isolatedShards(`engine_outbox_${PORT}`);
  const engine = await startReady(PORT, { PG_SHARDS: shards, NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${sinkPort}/notices`, NOTIFY_FILE: '', OUTBOX_LEASE_S: '2', OUTBOX_EVERY_MS: '100' });
  t.teardown(async () => { await stop(engine); for (const r of held) r.destroy(); sink.close(); });
  const call = (m: string, p: string, token: string | null, body?: unknown) => api(m, p, { base: engine.url, token, body });

  const adminToken = (await call('POST', '/v1/sessions', null, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })).body.token;
  const cat = (await call('POST', '/v1/categories', adminToken, { name: uniq('cat') })).body;
  const it = (await call('POST', '/v1/items', adminToken, { category_id: cat.id, name: uniq('it'), price_cents: 100, currency: 'USD', stock: 20 })).body;
  const email = `${uniq('c')}@example.com`;
  await call('POST', '/v1/users', null, { email, password: 'long-enough-pw' });
  const token = (await call('POST', '/v1/sessions', null, { email, password: 'long-enough-pw' })).body.token;
  for (let i = 0; i < 5; i++) t.equal((await call('POST', '/v1/orders', token, { items: [{ item_id: it.id, quantity: 1 }] })).status, 201);
  const shard = cat.shard as number;
  const db = new pg.Client({ connectionString: shards.split(',')[shard] });
  await db.connect();
  t.teardown(() => db.end());

  t.ok(await eventually(async () => held.length > 0, 10_000), 'the dispatcher is inside a hanging delivery');
  const [cron] = childrenWithRole(engine.child.pid!, 'cron');
  t.ok(cron, 'found the cron process');
  process.kill(cron!, 'SIGKILL');
  hang = false;

  const undelivered = async () => (await db.query('SELECT count(*)::int AS n FROM outbox WHERE delivered_at IS NULL')).rows[0].n as number;
  const drained = await eventually(async () => (await undelivered()) === 0, 20_000, 200);
  t.ok(drained, 'every notice delivered after the respawn');
  if (!drained) t.comment(engine.out().split('\n').filter((l) => /warn|error|cron/.test(l)).slice(-15).join('\n'));
  const rows = (await db.query('SELECT id FROM outbox')).rows;
  t.equal(rows.length, 5, 'one notice per order creation');
  for (const r of rows) t.ok((received.get(`${shard}:${r.id}`) ?? 0) >= 1, `notice ${r.id} reached the sink`);
  t.ok(childrenWithRole(engine.child.pid!, 'cron').length === 1, 'the primary respawned the cron process');
});
