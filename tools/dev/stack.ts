// The local stack: three PostgreSQL clusters and one Redis under .stack/ (git-ignored),
// on their own ports so they never collide with services already on the machine.
// Everything here is idempotent: a running piece is reused, a stopped one restarted.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { ROOT } from '../../src/paths.js';
import { splitShardList } from '../../src/shard/hosts.js';
import { sleep } from '../lib/wait.js';

export const STACK_DIR = process.env.STACK_DIR ?? path.join(ROOT, '.stack');
export const PG_PORTS = [55431, 55432, 55433];
export const REDIS_PORT = Number(process.env.STACK_REDIS_PORT ?? 6391);

export class StackError extends Error {}

/**
 * Where a stack lives. The defaults are the shared dev/test stack; the chaos runner
 * passes its own folder and ports so stopping its pieces never touches the shared ones.
 */
export interface StackOptions { dir: string; pgPorts: number[]; redisPort: number }

export const DEFAULT_STACK: StackOptions = { dir: STACK_DIR, pgPorts: PG_PORTS, redisPort: REDIS_PORT };

const say = (msg: string) => process.stdout.write(`stack: ${msg}\n`);

export function findPgBin(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv && existsSync(path.join(fromEnv, 'initdb'))) return fromEnv;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return path.join(base, versions[0], 'bin');
  const probe = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const dir = probe.status === 0 ? probe.stdout.trim() : '';
  if (dir && existsSync(path.join(dir, 'initdb'))) return dir;
  throw new StackError('PostgreSQL server binaries (initdb, pg_ctl) not found.\n' +
    '  Install them with:  sudo apt-get update && sudo apt-get install -y postgresql\n' +
    '  (or set PG_BIN to the directory holding initdb, or point PG_SHARDS at running servers)');
}

export function findRedisServer(): string {
  const probe = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const bin = process.env.REDIS_SERVER ?? probe.stdout.trim();
  if (bin && existsSync(bin)) return bin;
  throw new StackError('redis-server not found.\n  Install it with:  sudo apt-get update && sudo apt-get install -y redis-server\n' +
    '  (or point REDIS_URLS at a running Redis)');
}

const isRoot = () => process.getuid?.() === 0;

/** Postgres refuses to run as root: run its binaries as the postgres user then. */
export function runPg(bin: string, args: string[]): string {
  const [cmd, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const res = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (res.status !== 0) throw new StackError(`${path.basename(bin)} ${args.join(' ')} failed:\n${res.stdout}${res.stderr}`);
  return res.stdout;
}

/** A folder the Postgres binaries can write (owned by the postgres user when we are root). */
export function pgOwned(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!isRoot()) return;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
}

// Settings for a dev/test box: room for several engines plus the test suite, and
// the 250-connection production budget enforced by the engine, not the server.
const PG_CONF = `
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 256MB
synchronous_commit = on
log_min_messages = warning
log_min_duration_statement = -1
`;

function pgCtl(bin: string, dir: string, args: string[]) {
  return spawnSync(isRoot() ? 'runuser' : path.join(bin, 'pg_ctl'),
    isRoot() ? ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), '-D', dir, ...args] : ['-D', dir, ...args]);
}

export function ensurePgCluster(bin: string, shard: number, opts: StackOptions = DEFAULT_STACK): void {
  const dir = path.join(opts.dir, `pg${shard}`);
  const port = opts.pgPorts[shard]!;
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    pgOwned(dir);
    say(`initdb shard ${shard} in ${dir}`);
    runPg(path.join(bin, 'initdb'), ['-D', dir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C']);
    appendFileSync(path.join(dir, 'postgresql.conf'), `${PG_CONF}port = ${port}\nunix_socket_directories = '${dir}'\n`);
  }
  if (pgCtl(bin, dir, ['status']).status === 0) return;
  say(`starting postgres shard ${shard} on 127.0.0.1:${port}`);
  // The port is given at start too, so a folder made for other ports still serves the wanted one.
  runPg(path.join(bin, 'pg_ctl'), ['-D', dir, '-l', path.join(dir, 'server.log'), '-o', `-p ${port}`, '-w', '-t', '60', 'start']);
}

async function ensureDatabase(port: number, db: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE "${db.replace(/"/g, '')}"`);
  } finally {
    await client.end();
  }
}

async function pgAnswers(port: number): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function redisAnswers(port: number): Promise<boolean> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** Stops one shard's cluster: `immediate` is a crash (no checkpoint), `fast` a clean stop. */
export function stopPgCluster(bin: string, shard: number, opts: StackOptions = DEFAULT_STACK, mode: 'fast' | 'immediate' = 'fast'): void {
  const dir = path.join(opts.dir, `pg${shard}`);
  if (!existsSync(path.join(dir, 'postmaster.pid'))) return;
  say(`stopping postgres shard ${shard} (${mode})`);
  try { runPg(path.join(bin, 'pg_ctl'), ['-D', dir, '-m', mode, '-w', 'stop']); } catch (err) { say(String(err)); }
}

export async function ensureRedis(port: number, opts: StackOptions = DEFAULT_STACK): Promise<void> {
  if (await redisAnswers(port)) return;
  const bin = findRedisServer();
  const dir = path.join(opts.dir, 'redis');
  mkdirSync(dir, { recursive: true });
  say(`starting redis on 127.0.0.1:${port}`);
  const res = spawnSync(bin, ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'yes', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--pidfile', path.join(dir, 'redis.pid'), '--logfile', path.join(dir, 'redis.log')], { encoding: 'utf8' });
  if (res.status !== 0) throw new StackError(`redis-server failed to start: ${res.stderr}`);
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(port)) return;
    await sleep(100);
  }
  throw new StackError(`redis did not answer on port ${port}; see ${dir}/redis.log`);
}

export interface StackUrls { pgShards: string[]; redisUrls: string[] }

/** Brings up whatever the environment does not already point at. */
export async function ensureStack(opts: StackOptions = DEFAULT_STACK): Promise<StackUrls> {
  mkdirSync(opts.dir, { recursive: true, mode: 0o755 });
  let pgShards = splitShardList(process.env.PG_SHARDS ?? '');
  if (pgShards.length === 0) {
    const bin = findPgBin();
    for (let i = 0; i < opts.pgPorts.length; i++) {
      // A stack of another checkout on this machine may already serve the port: share it
      // (every statement is idempotent and tests make their own data) rather than fail.
      if (await pgAnswers(opts.pgPorts[i]!)) continue;
      ensurePgCluster(bin, i, opts);
    }
    await Promise.all(opts.pgPorts.map((p) => ensureDatabase(p, 'engine')));
    pgShards = opts.pgPorts.map((p) => `postgres://postgres@127.0.0.1:${p}/engine`);
  }
  let redisUrls = process.env.REDIS_URLS?.split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  if (redisUrls.length === 0) {
    await ensureRedis(opts.redisPort, opts);
    redisUrls = [`redis://127.0.0.1:${opts.redisPort}`];
  }
  return { pgShards, redisUrls };
}

export function stopStack(opts: StackOptions = DEFAULT_STACK): void {
  const bin = findPgBin();
  for (let i = 0; i < opts.pgPorts.length; i++) stopPgCluster(bin, i, opts);
  spawnSync('redis-cli', ['-p', String(opts.redisPort), 'shutdown', 'nosave'], { stdio: 'ignore' });
  say('stopped');
}
