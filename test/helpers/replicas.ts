// A scratch Postgres primary with a synchronous streaming standby, for a test that
// fails a shard over. It never touches the shared stack's clusters: its own folder
// (keyed by port, so a run killed half-way is cleaned up by the next) and ports.
// As root the binaries run as the postgres user (tools/dev/stack.ts).
import { existsSync, readFileSync, rmSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { findPgBin, pgOwned, runPg } from '../../tools/dev/stack.js';
import { migrateShard } from '../../src/shard/migrate.js';

export interface Node { port: number; dir: string; log: string }
export interface Pair { root: string; primary: Node; standby: Node }

const bin = (name: string) => path.join(findPgBin(), name);

// fsync off: nothing here must survive a power cut, and the box's disk is shared.
// TCP only: a socket's lock file in the data folder would be copied by pg_basebackup,
// and a node rebuilt from that copy may refuse to start while the former postmaster
// it names is not yet reaped. Connections and errors are logged with the client's
// application_name and SQLSTATE, so a test can read what the engine did on each node.
const conf = (node: Node) => `
listen_addresses = '127.0.0.1'
port = ${node.port}
unix_socket_directories = ''
max_connections = 60
shared_buffers = 32MB
fsync = off
log_connections = on
log_line_prefix = '%m [%p] app=%a sqlstate=%e '
`;

function pgCtl(node: Node, args: string[]): void {
  try {
    runPg(bin('pg_ctl'), ['-D', node.dir, ...args]);
  } catch (err) {
    // pg_ctl says only "examine the log output": the log's tail says why.
    throw new Error(`${(err as Error).message}\n--- ${node.log} (tail) ---\n${serverLog(node).split('\n').slice(-15).join('\n')}`);
  }
}

/** Stops whatever runs in a folder (a crash: nothing to keep); quiet when nothing does. */
function stopQuietly(dir: string): void {
  if (!existsSync(path.join(dir, 'postmaster.pid'))) return;
  try { runPg(bin('pg_ctl'), ['-D', dir, '-m', 'immediate', '-w', 'stop']); } catch { /* already gone */ }
}

/** Where a pair lives: known before it exists, so a run ended half-way can be cleaned up. */
export const pairRoot = (name: string, primaryPort: number) => path.join(os.tmpdir(), `bf-${name}-${primaryPort}`);

export const urlOf = (port: number, db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;

async function sql<T extends pg.QueryResultRow = any>(port: number, db: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: urlOf(port, db), connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** Queries one node, or undefined when it does not answer. */
export async function query<T extends pg.QueryResultRow = any>(node: Node, db: string, text: string, params: unknown[] = []): Promise<T[]> {
  return sql<T>(node.port, db, text, params);
}

/**
 * A primary on `primaryPort` holding `dbs`, each migrated like a shard, and a standby
 * on `standbyPort` streaming from it synchronously (pg_basebackup -R): a commit the
 * primary acknowledged is on the standby, so a crash of the primary loses nothing.
 */
export async function startPair(name: string, primaryPort: number, standbyPort: number, dbs: string[]): Promise<Pair> {
  const root = pairRoot(name, primaryPort);
  removePair(root);
  pgOwned(root);
  const primary: Node = { port: primaryPort, dir: path.join(root, 'primary'), log: path.join(root, 'primary.log') };
  const standby: Node = { port: standbyPort, dir: path.join(root, 'standby'), log: path.join(root, 'standby.log') };
  const pair = { root, primary, standby };
  pgOwned(primary.dir);
  runPg(bin('initdb'), ['-D', primary.dir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C']);
  appendFileSync(path.join(primary.dir, 'postgresql.conf'), conf(primary));
  pgCtl(primary, ['-l', primary.log, '-w', '-t', '60', 'start']);
  for (const [i, db] of dbs.entries()) {
    await sql(primaryPort, 'postgres', `CREATE DATABASE "${db}"`);
    await migrateShard(urlOf(primaryPort, db), i);
  }
  await attachStandby(primary, standby);
  return pair;
}

/**
 * Makes `standby` (its folder replaced) a synchronous streaming standby of `from`,
 * as the failover tool does when it rebuilds a former primary.
 */
export async function attachStandby(from: Node, standby: Node): Promise<void> {
  stopQuietly(standby.dir);
  rmSync(standby.dir, { recursive: true, force: true });
  runPg(bin('pg_basebackup'), ['-D', standby.dir, '-h', '127.0.0.1', '-p', String(from.port), '-U', 'postgres', '-R', '-X', 'stream', '-c', 'fast']);
  appendFileSync(path.join(standby.dir, 'postgresql.conf'), conf(standby));
  pgCtl(standby, ['-l', standby.log, '-w', '-t', '60', 'start']);
  // From now on every commit waits for the standby, as with the failover tool's
  // synchronous standby (set only now: before, a commit would wait for no one forever;
  // and not in the copy the standby got, so promoted it waits for no standby of its own).
  await sql(from.port, 'postgres', "ALTER SYSTEM SET synchronous_standby_names = '*'");
  await sql(from.port, 'postgres', 'SELECT pg_reload_conf()');
  for (let i = 0; ; i++) {
    const rows = await sql(from.port, 'postgres', 'SELECT sync_state FROM pg_stat_replication');
    if (rows[0]?.sync_state === 'sync') return;
    if (i > 300) throw new Error(`the standby on ${standby.port} is not a synchronous standby: ${JSON.stringify(rows)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A planned switchover's first step: the primary is fenced (every new transaction
 * read-only, 25006 on a write) while it keeps running, its sessions open.
 */
export async function fence(node: Node): Promise<void> {
  await sql(node.port, 'postgres', 'ALTER SYSTEM SET default_transaction_read_only = on');
  await sql(node.port, 'postgres', 'SELECT pg_reload_conf()');
  // pg_reload_conf only signals the postmaster, which re-reads the file and then signals
  // its sessions; a write sent meanwhile would still commit. A new session (forked from
  // the reloaded postmaster) reading 'on' means every open session has been signalled,
  // and a session applies the reload before the next command it reads.
  for (let i = 0; (await sql(node.port, 'postgres', 'SHOW default_transaction_read_only'))[0].default_transaction_read_only !== 'on'; i++) {
    if (i > 100) throw new Error(`the node on ${node.port} did not reload its configuration`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The primary dies without a checkpoint or a goodbye to its clients. */
export function crash(node: Node): void { pgCtl(node, ['-m', 'immediate', '-w', 'stop']); }

/** What the failover tool does next: the standby becomes a primary. */
export function promote(node: Node): void { pgCtl(node, ['-w', '-t', '60', 'promote']); }

export const serverLog = (node: Node) => (existsSync(node.log) ? readFileSync(node.log, 'utf8') : '');

/** Both nodes stopped and their folder gone, whatever state a test left them in. */
export function removePair(root: string): void {
  for (const dir of ['primary', 'standby']) stopQuietly(path.join(root, dir));
  rmSync(root, { recursive: true, force: true });
}
