// Versioned, idempotent migrations: sql/NNN_name.sql applied in order on every
// shard, each in its own transaction, recorded per shard. An advisory lock makes
// concurrent starters (three app servers booting at once) apply each file once.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { log } from '../log.js';
import { SQL_DIR } from '../paths.js';
import { connectWritable } from './primary.js';

const LOCK_KEY = 7_311_042;

export interface Migration { version: number; name: string; sql: string; checksum: string }

export function loadMigrations(dir = SQL_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => {
      const sql = readFileSync(path.join(dir, f), 'utf8');
      return { version: Number(f.slice(0, 3)), name: f, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

export async function migrateShard(url: string, shard: number, migrations = loadMigrations()): Promise<number[]> {
  // Migrations write: on a shard with standbys, to the host that takes writes.
  const client = await connectWritable(url, { application_name: 'engine-migrate' });
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = await client.query<{ version: number;
      checksum: string }>('SELECT version, checksum FROM schema_migrations');
    const applied = new Map(done.rows.map((r) => [r.version, r.checksum]));
    const ran: number[] = [];
    for (const m of migrations) {
      const prior = applied.get(m.version);
      if (prior !== undefined) {
        if (prior !== m.checksum) log.warn('applied migration changed on disk', { shard, migration: m.name });
        continue;
      }
      await applyOne(client, m);
      ran.push(m.version);
      log.info('migration applied', { shard, migration: m.name });
    }
    return ran;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}

async function applyOne(client: pg.Client, m: Migration): Promise<void> {
  try {
    await client.query('BEGIN');
    await client.query(m.sql);
    await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
      [m.version, m.name, m.checksum]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new Error(`migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
  }
}

export async function migrateAll(urls: string[]): Promise<void> {
  const migrations = loadMigrations();
  await Promise.all(urls.map((u, i) => migrateShard(u, i, migrations)));
}

/**
 * For the engine's own start: a shard that cannot be reached is skipped with a warning
 * (its categories answer 503 until it returns; run `npm run migrate` then), so one
 * database outage does not keep every app server from starting. A migration that fails
 * on a reachable shard still stops the start.
 */
export async function migrateReachable(urls: string[]): Promise<number[]> {
  const migrations = loadMigrations();
  const results = await Promise.allSettled(urls.map((u, i) => migrateShard(u, i, migrations)));
  const skipped: number[] = [];
  results.forEach((r, shard) => {
    if (r.status === 'fulfilled') return;
    if (String((r.reason as Error)?.message).startsWith('migration ')) throw r.reason;
    log.error('shard unreachable at start; migrations skipped', { shard, err: r.reason });
    skipped.push(shard);
  });
  return skipped;
}
