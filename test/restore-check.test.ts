// The restore drill's judge (tools/ops/restore-check.ts), on two scratch databases of the
// stack's first Postgres: "live", a shard that went on after the target (an order paid,
// orders placed, a price changed, a refusal pruned by retention), and "restored", the
// same shard as it stood at the target. A faithful copy passes, whatever changed in the
// mutable columns since; a copy that lost an acknowledged order, altered a ledger row,
// invented an order or went past the target fails, naming the table. The drill script
// (deploy/6-node/ha/pgbackrest/restore-drill.sh) is checked for syntax and its usage
// here; the restore itself runs in the HA proof.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { DEFAULT_PG_SHARDS } from '../src/config.js';
import { setLogLevel } from '../src/log.js';
import { ROOT } from '../src/paths.js';
import { splitShardList } from '../src/shard/hosts.js';
import { migrateShard } from '../src/shard/migrate.js';
import { TOOLS_DIST_DIR } from '../tools/lib/paths.js';
import { TEST_PORT } from './setup/env.js';

const DRILL = path.join(ROOT, 'deploy', '6-node', 'ha', 'pgbackrest', 'restore-drill.sh');
const server = splitShardList(process.env.PG_SHARDS ?? DEFAULT_PG_SHARDS)[0]!.replace(/\?.*$/, '');
const urlOf = (db: string) => server.replace(/\/[^/]+$/, `/${db}`);
const suffix = `${TEST_PORT}_${process.pid}`;
const LIVE = urlOf(`restore_live_${suffix}`);
const RESTORED = urlOf(`restore_copy_${suffix}`);
// The target: an hour ago, so rows "after" it are still in the past (retention reads now()).
const TARGET = new Date(Date.now() - 3600_000).toISOString().replace('T', ' ').replace('Z', '+00');

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const admin = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(urlOf('postgres'), fn);
const dbName = (url: string) => url.slice(url.lastIndexOf('/') + 1);

const dropDatabases = () => admin(async (c) => {
  for (const url of [LIVE, RESTORED]) await c.query(`DROP DATABASE IF EXISTS "${dbName(url)}" WITH (FORCE)`);
});
t.teardown(dropDatabases);

const C1 = '00000000-0000-4000-8000-0000000000c1';
const CHECKOUT = ['00000000-0000-4000-8000-00000000a001', '00000000-0000-4000-8000-00000000a002', '00000000-0000-4000-8000-00000000a003',
  '00000000-0000-4000-8000-00000000a004', '00000000-0000-4000-8000-00000000a099'];
const TRANSFER = ['00000000-0000-4000-8000-00000000f001', '00000000-0000-4000-8000-00000000f002'];
const at = (offset: string) => `($1::timestamptz + interval '${offset}')`;

/**
 * An order of `qty` units of item 1, its line, its hold and its first event, as place_orders
 * writes them (test constants inlined; ids fixed, so a row re-made in the copy matches the live one).
 */
function orderRows(id: number, checkout: string, qty: number, created: string, status: string, hold: string): string[] {
  return [
    `INSERT INTO orders (id, customer_id, status, currency, total_cents, hold_expires_at, checkout_id, created_at, updated_at)
       OVERRIDING SYSTEM VALUE VALUES (${id}, '${C1}', '${status}', 'EUR', ${500 * qty}, ${created} + interval '15 minutes', '${checkout}', ${created}, ${created})`,
    `INSERT INTO order_lines (order_id, item_id, quantity, price_cents, fulfillment) VALUES (${id}, 1, ${qty}, 500, 'instant')`,
    `INSERT INTO holds (id, order_id, item_id, customer_id, quantity, status, expires_at, created_at)
       OVERRIDING SYSTEM VALUE VALUES (${id}, ${id}, 1, '${C1}', ${qty}, '${hold}', ${created} + interval '15 minutes', ${created})`,
    `INSERT INTO order_events (id, order_id, from_status, to_status, actor, reason, created_at)
       OVERRIDING SYSTEM VALUE VALUES (${100 + id}, ${id}, NULL, 'awaiting_payment', 'test', 'created', ${created})`,
  ];
}

/** Runs each statement with as many of the parameters as it names ($1..$n). */
async function run(c: pg.Client, statements: string[], params: unknown[]): Promise<void> {
  for (const s of statements) await c.query(s, params.slice(0, Math.max(0, ...[...s.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))));
}

/** The shard as it stood at the target: one order paid, one awaiting payment, two refusals (one since pruned). */
async function seedAtTarget(c: pg.Client): Promise<void> {
  await c.query('BEGIN');
  await run(c, [
    `INSERT INTO categories (id, name, created_at) VALUES (1, 'restore drill', ${at('-2 hours')})`,
    `INSERT INTO items (id, category_id, name, price_cents, currency, available, held, sold, stocked, created_at)
       OVERRIDING SYSTEM VALUE VALUES (1, 1, 'ticket', 500, 'EUR', 7, 1, 2, 10, ${at('-2 hours')})`,
    `INSERT INTO users (id, email, password_hash, role, created_at) VALUES ('${C1}', 'c1@example.com', 'x', 'customer', ${at('-2 hours')})`,
  ], [TARGET]);
  await run(c, orderRows(1, CHECKOUT[0]!, 2, at('-1 hour'), 'paid', 'consumed'), [TARGET]);
  await run(c, [
    `INSERT INTO payments (id, order_id, customer_id, status, method, amount_cents, currency, escrow, expires_at, captured_at, created_at)
       OVERRIDING SYSTEM VALUE VALUES (1, 1, '${C1}', 'succeeded', 'card', 1000, 'EUR', 'held', ${at('-45 minutes')}, ${at('-58 minutes')}, ${at('-59 minutes')})`,
    `UPDATE orders SET payment_id = 1 WHERE id = 1`,
    `INSERT INTO ledger_entries (id, transfer_id, order_id, payment_id, account, amount_cents, currency, kind, created_at) OVERRIDING SYSTEM VALUE VALUES
       (1, '${TRANSFER[0]}', 1, 1, 'customer', -1000, 'EUR', 'capture', ${at('-58 minutes')}),
       (2, '${TRANSFER[0]}', 1, 1, 'escrow', 1000, 'EUR', 'capture', ${at('-58 minutes')})`,
    `INSERT INTO order_events (order_id, from_status, to_status, actor, reason, created_at) VALUES (1, 'awaiting_payment', 'paid', 'gateway', NULL, ${at('-58 minutes')})`,
    `INSERT INTO gateway_events (event_id, payment_id, type, received_at) VALUES ('evt-1', 1, 'payment.succeeded', ${at('-58 minutes')})`,
  ], [TARGET]);
  await run(c, orderRows(2, CHECKOUT[1]!, 1, at('-30 minutes'), 'awaiting_payment', 'active'), [TARGET]);
  await run(c, [
    `INSERT INTO payments (id, order_id, customer_id, method, amount_cents, currency, expires_at, created_at)
       OVERRIDING SYSTEM VALUE VALUES (2, 2, '${C1}', 'card', 500, 'EUR', ${at('-15 minutes')}, ${at('-29 minutes')})`,
    `INSERT INTO checkout_refusals (customer_id, request_key, request_hash, sqlstate, detail, hint, created_at) VALUES
       ('${C1}', 'kept', 'h1', 'BFSO1', 'sold out', '0', ${at('-10 minutes')}),
       ('${C1}', 'old', 'h2', 'BFSO1', 'sold out', '0', ${at('-2 days')})`,
  ], [TARGET]);
  await c.query('COMMIT');
}

/**
 * What the live shard did after the target: order 2 paid, order 3 placed, order 4 placed
 * in a transaction that began 2 s before the target (committed after it), the price
 * changed, the old refusal pruned by retention.
 */
async function liveGoesOn(c: pg.Client): Promise<void> {
  await c.query('BEGIN');
  await run(c, [
    `UPDATE orders SET status = 'paid', payment_id = 2, updated_at = ${at('5 minutes')} WHERE id = 2`,
    `UPDATE holds SET status = 'consumed', ended_at = ${at('5 minutes')} WHERE id = 2`,
    `UPDATE payments SET status = 'succeeded', escrow = 'held', captured_at = ${at('5 minutes')}, gateway_session_id = 'gs-2' WHERE id = 2`,
    `INSERT INTO ledger_entries (id, transfer_id, order_id, payment_id, account, amount_cents, currency, kind, created_at) OVERRIDING SYSTEM VALUE VALUES
       (3, '${TRANSFER[1]}', 2, 2, 'customer', -500, 'EUR', 'capture', ${at('5 minutes')}),
       (4, '${TRANSFER[1]}', 2, 2, 'escrow', 500, 'EUR', 'capture', ${at('5 minutes')})`,
    `INSERT INTO order_events (order_id, from_status, to_status, actor, reason, created_at) VALUES (2, 'awaiting_payment', 'paid', 'gateway', NULL, ${at('5 minutes')})`,
    `INSERT INTO gateway_events (event_id, payment_id, type, received_at) VALUES ('evt-2', 2, 'payment.succeeded', ${at('5 minutes')})`,
    `UPDATE items SET held = 0, sold = 3, price_cents = 600 WHERE id = 1`,
    `DELETE FROM checkout_refusals WHERE request_key = 'old'`,
  ], [TARGET]);
  await run(c, orderRows(3, CHECKOUT[2]!, 1, at('10 minutes'), 'awaiting_payment', 'active'), [TARGET]);
  await run(c, orderRows(4, CHECKOUT[3]!, 1, at('-2 seconds'), 'awaiting_payment', 'active'), [TARGET]);
  await c.query('UPDATE items SET available = 5, held = 2 WHERE id = 1');
  await c.query('COMMIT');
}

/** The restored copy afresh, as it stood at the target. */
async function restoreCopy(): Promise<void> {
  await withClient(RESTORED, async (c) => {
    await c.query(`TRUNCATE categories, items, users, orders, order_lines, holds, payments, ledger_entries, order_events,
      gateway_events, checkout_refusals, outbox RESTART IDENTITY CASCADE`);
    await seedAtTarget(c);
  });
}

/** Changes the restored copy behind the engine's back (foreign keys and the append-only trigger off). */
const tamper = (...statements: string[]) => withClient(RESTORED, async (c) => {
  await c.query('SET session_replication_role = replica');
  await run(c, statements, [TARGET]);
});

interface Tally { live: number; restored: number; missing: number; invented: number; differing: number; after_target: number; pruned: number }
interface Result { ok: boolean; tables: Record<string, Tally>; invariants_ok: boolean; invariants_broken: string[]; cutoff: string }

function check(...extra: string[]): { status: number | null; out: string; result: Result | null } {
  const r = spawnSync(process.execPath, [path.join(TOOLS_DIST_DIR, 'ops', 'restore-check.js'),
    '--restored', RESTORED, '--live', LIVE, '--target', TARGET, '--shard', '1', ...extra], { encoding: 'utf8', timeout: 60_000 });
  const line = /^RESULT restore-check (.*)$/m.exec(r.stdout)?.[1];
  return { status: r.status, out: `${r.stdout}${r.stderr}`, result: line ? JSON.parse(line) as Result : null };
}

setLogLevel('warn');
try {
  await dropDatabases();
  await admin(async (c) => { for (const url of [LIVE, RESTORED]) await c.query(`CREATE DATABASE "${dbName(url)}"`); });
  for (const url of [LIVE, RESTORED]) await migrateShard(url, 0);
  await withClient(LIVE, async (c) => { await seedAtTarget(c); await liveGoesOn(c); });
  await restoreCopy();
} catch (err) {
  await dropDatabases(); // a setup that throws ends the file before its teardown runs
  throw err;
}

t.test('a faithful copy passes, whatever changed since in the mutable columns', async (t) => {
  for (const batch of ['5000', '1']) {
    const { status, out, result } = check('--batch', batch);
    t.equal(status, 0, `exit 0 with pages of ${batch}`, { out });
    if (!result) return;
    t.equal(result.ok, true);
    t.equal(result.invariants_ok, true, 'the copy keeps every always invariant');
    t.same(result.tables.orders, { live: 2, restored: 2, missing: 0, invented: 0, differing: 0, after_target: 0, pruned: 0 },
      'orders: the two made before the cutoff, in the copy; the one paid since is not "differing"; the later ones not asked for');
    t.same(result.tables.ledger_entries, { live: 2, restored: 2, missing: 0, invented: 0, differing: 0, after_target: 0, pruned: 0 },
      'the ledger rows written after the target are not asked for');
    t.equal(result.tables.items!.differing, 0, 'a price changed since is not a difference');
    t.equal(result.tables.payments!.differing, 0, 'nor a payment captured since');
    t.equal(result.tables.checkout_refusals!.pruned, 1, 'a refusal retention deleted since is counted apart');
    t.equal(result.tables.checkout_refusals!.invented, 0, 'not as invented');
    t.match(out, /^restore-check: orders +live<=cutoff 2 +restored 2 +missing 0 +invented 0 +differing 0 +after_target 0 +pruned 0 +ok/m);
  }
});

t.test('without slack, an order whose transaction began before the target counts as missing', async (t) => {
  const { status, result } = check('--slack-s', '0');
  t.equal(status, 1);
  t.equal(result?.tables.orders!.missing, 1, 'order 4 began 2 s before the target and committed after it');
  t.equal(result?.tables.order_lines!.missing, 1, 'and its line');
});

t.test('an acknowledged order lost by the restore is missing', async (t) => {
  await restoreCopy();
  await tamper('DELETE FROM orders WHERE id = 2');
  const { status, out, result } = check();
  t.equal(status, 1, 'exit 1');
  t.equal(result?.ok, false);
  t.equal(result?.tables.orders!.missing, 1, 'orders: 1 missing', { out });
  t.match(out, /^restore-check: +missing \[2\] live \[2,/m, 'the sample names the order');
});

t.test('a ledger row that differs is reported, and breaks the ledger invariant', async (t) => {
  await restoreCopy();
  await tamper('UPDATE ledger_entries SET amount_cents = -999 WHERE id = 1');
  const { status, out, result } = check();
  t.equal(status, 1);
  t.equal(result?.tables.ledger_entries!.differing, 1, 'ledger_entries: 1 differing', { out });
  t.equal(result?.invariants_ok, false);
  t.ok(result?.invariants_broken.includes('ledger sums to zero per currency'), 'the broken rule is named');
  t.match(out, /shard 1: ledger sums to zero per currency/, 'under the drill\'s shard number');
});

t.test('an order the live shard never had is invented', async (t) => {
  await restoreCopy();
  await tamper(...orderRows(99, CHECKOUT[4]!, 1, at('-20 minutes'), 'canceled', 'released'));
  const { status, out, result } = check();
  t.equal(status, 1);
  t.equal(result?.tables.orders!.invented, 1, 'orders: 1 invented', { out });
  t.equal(result?.tables.order_lines!.invented, 1, 'and its line');
  t.equal(result?.tables.order_events!.invented, 1, 'and its event');
  t.equal(result?.invariants_ok, true, 'a consistent invention keeps the invariants: only the comparison finds it');
});

t.test('a row made after the target means the recovery overshot', async (t) => {
  await restoreCopy();
  await tamper(...orderRows(3, CHECKOUT[2]!, 1, at('10 minutes'), 'canceled', 'released'));
  const { status, out, result } = check();
  t.equal(status, 1);
  t.equal(result?.tables.orders!.after_target, 1, 'orders: 1 after the target', { out });
  t.equal(result?.tables.orders!.invented, 0, 'the live shard has it');
  t.equal(result?.tables.orders!.differing, 0, 'with the same immutable columns');
  t.equal(result?.tables.order_events!.after_target, 1, 'its event too');
});

t.test('usage and an unreachable database', async (t) => {
  const tool = path.join(TOOLS_DIST_DIR, 'ops', 'restore-check.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [tool, ...args], { encoding: 'utf8', timeout: 30_000 });
  t.equal(run('--help').status, 0);
  t.equal(run('--live', LIVE, '--target', TARGET).status, 2, '--restored missing');
  t.equal(run('--restored', RESTORED, '--live', LIVE, '--target', '2026-01-10 14:03:00').status, 2, 'a target without its zone');
  t.equal(run('--restored', RESTORED, '--live', LIVE, '--target', TARGET, '--slack-s', '-1').status, 2);
  const down = run('--restored', 'postgres://postgres@127.0.0.1:1/engine', '--live', LIVE, '--target', TARGET);
  t.equal(down.status, 3, 'a database that cannot be read: exit 3, not a pass');
  t.match(down.stdout, /^RESULT restore-check \{"ok":false,"error":/m);
});

t.test('restore-drill.sh: syntax, usage, argument errors (exit 2) before anything runs', async (t) => {
  t.equal(spawnSync('bash', ['-n', DRILL]).status, 0, 'bash -n');
  const drill = (...args: string[]) => spawnSync('bash', [DRILL, ...args], { encoding: 'utf8', timeout: 30_000 });
  const help = drill('--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /usage: restore-drill\.sh --shard N --target/);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bf-drill-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const busy = path.join(tmp, 'busy');
  mkdirSync(busy);
  writeFileSync(path.join(busy, 'PG_VERSION'), '15\n');
  const good = ['--shard', '0', '--target', '2026-01-10 14:03:00.000+00', '--live', LIVE];
  for (const [args, why] of [
    [[], 'no arguments'],
    [good.filter((_, i) => i > 1), '--shard missing'],
    [['--shard', 'x', ...good.slice(2)], 'a shard that is not a number'],
    [[...good.slice(0, 2), '--target', '2026-01-10 14:03', ...good.slice(4)], 'a target without seconds and zone'],
    [good.slice(0, 4), '--live missing'],
    [[...good, '--port', '99999'], 'a port out of range'],
    [[...good, '--frobnicate'], 'an unknown option'],
    [[...good, '--dir', busy], 'a --dir that is not empty (it would be deleted afterwards)'],
    [[...good, '--dir', 'relative/dir'], 'a relative --dir'],
  ] as [string[], string][]) {
    const r = drill(...args);
    t.equal(r.status, 2, `${why}: exit 2 (${r.stderr.trim().split('\n')[0]})`);
  }
});
