// `node dist/tools/ops/migrate-cli.js [--check] [--lock-timeout-ms N]`
// Applies sql/NNN_*.sql to every shard in PG_SHARDS with src/shard/migrate.ts
// migrateShard (the code the engine runs when MIGRATE_ON_START=true) and prints what
// each shard got. An operator runs it before a release, from an app server, with the
// engine's environment:
//   node --env-file=/etc/bf-engine/engine.env dist/tools/ops/migrate-cli.js
// --check changes nothing: it lists what is pending and exits 1 if anything is.
// Exit 0 = every shard is at the latest version, 1 = a shard failed or is behind,
// 78 = the environment is invalid, 2 = usage.
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config.js';
import { setLogLevel } from '../../src/log.js';
import { SQL_DIR } from '../../src/paths.js';
import { parseShardUrl } from '../../src/shard/hosts.js';
import { loadMigrations, migrateShard, type Migration } from '../../src/shard/migrate.js';
import { connectWritable } from '../../src/shard/primary.js';
import { parseCli, UsageError, isEntry } from '../lib/args.js';

const say = (msg: string) => process.stdout.write(`migrate: ${msg}\n`);

interface Args { check: boolean; lockTimeoutMs: number; verbose: boolean }

function parseArgs(argv: string[]): Args {
  const { values } = parseCli(argv, { options: { check: { type: 'boolean' }, verbose: { type: 'boolean' }, 'lock-timeout-ms': { type: 'string' } } });
  const lockTimeoutMs = Number(values['lock-timeout-ms'] ?? 5000);
  if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 100) throw new UsageError('--lock-timeout-ms must be an integer >= 100');
  return { check: values.check ?? false, verbose: values.verbose ?? false, lockTimeoutMs };
}

/**
 * The migration session: no statement timeout (an index build may take long) but a
 * short lock timeout, so DDL waiting behind a busy hot table gives up (rerun it)
 * instead of queueing every request behind its lock. A client-side query_timeout
 * from PG_SHARDS is dropped for the same reason.
 */
export function migrationUrl(url: string, lockTimeoutMs: number): string {
  // Only the query is edited: a shard of several hosts is no URL that `new URL` accepts.
  const at = url.indexOf('?');
  const params = new URLSearchParams(at >= 0 ? url.slice(at + 1) : '');
  params.delete('query_timeout');
  const prior = params.get('options');
  params.set('options', `${prior ? `${prior} ` : ''}-c statement_timeout=0 -c lock_timeout=${lockTimeoutMs}`);
  return `${at >= 0 ? url.slice(0, at) : url}?${params.toString()}`;
}

/** host:port/db of a shard URL (every host of a shard with standbys), never its password. */
export function where(url: string): string {
  return parseShardUrl(url).display;
}

async function appliedVersions(url: string): Promise<Set<number>> {
  // A standby would answer as well, but the writable host is the one migrations go to.
  const client = await connectWritable(url, { application_name: 'engine-migrate-check', connectionTimeoutMillis: 5000 });
  try {
    const res = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    return new Set(res.rows.map((r) => r.version));
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return new Set(); // no table yet: nothing applied
    throw err;
  } finally {
    await client.end();
  }
}

const names = (ms: Migration[]) => ms.map((m) => m.name).join(', ');

async function checkShard(url: string, shard: number, all: Migration[]): Promise<boolean> {
  const done = await appliedVersions(url);
  const pending = all.filter((m) => !done.has(m.version));
  say(`shard ${shard} ${where(url)}  ${pending.length ? `PENDING ${names(pending)}` : `up to date (${all.length} of ${all.length})`}`);
  return pending.length === 0;
}

async function migrateOne(url: string, shard: number, all: Migration[], lockTimeoutMs: number): Promise<number> {
  const started = Date.now();
  const ran = await migrateShard(migrationUrl(url, lockTimeoutMs), shard, all);
  const applied = all.filter((m) => ran.includes(m.version));
  const ms = Date.now() - started;
  say(`shard ${shard} ${where(url)}  ${applied.length ? `applied ${names(applied)}` : `up to date (${all.length} of ${all.length})`} (${ms} ms)`);
  return applied.length;
}

async function main(): Promise<void> {
  let args: Args;
  let shards: string[];
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`migrate: ${(err as Error).message}\nusage: migrate-cli [--check] [--lock-timeout-ms N] [--verbose]\n`);
    process.exit(2);
  }
  try {
    shards = loadConfig().pgShards;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`migrate: ${err.message}\n`);
    process.exit(78);
  }
  if (!args.verbose) setLogLevel('warn');
  const all = loadMigrations();
  say(`${all.length} migrations in ${path.relative(process.cwd(), SQL_DIR) || SQL_DIR} (${all[0]?.name ?? '-'} .. ${all.at(-1)?.name ?? '-'}), ${shards.length} shards${args.check ? ', check only' : ''}`);
  let failed = 0;
  let applied = 0;
  let behind = 0;
  for (const [i, url] of shards.entries()) {
    try {
      if (args.check) behind += (await checkShard(url, i, all)) ? 0 : 1;
      else applied += await migrateOne(url, i, all, args.lockTimeoutMs);
    } catch (err) {
      failed++;
      say(`shard ${i} ${where(url)}  FAILED: ${(err as Error).message}`);
    }
  }
  say(`done: ${shards.length} shards, ${args.check ? `${behind} behind` : `${applied} migrations applied`}, ${failed} failed`);
  process.exit(failed > 0 || behind > 0 ? 1 : 0);
}

if (isEntry(import.meta.url)) await main();
