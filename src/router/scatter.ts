// Scatter-gather across shards, and the cursor that keeps cross-shard lists stable.
// Lists are ordered newest first by (created_at, shard, local id); a page asks every
// shard for rows strictly after the cursor in that order and merges the answers.
import { EngineError } from '../errors.js';

export interface SortKey { createdUs: string; shard: number; local: number }
export interface Page<T> { data: T[]; next_cursor: string | null }

export function encodeCursor(k: SortKey): string {
  return Buffer.from(`${k.createdUs}.${k.shard}.${k.local}`).toString('base64url');
}

// Year 2100 in microseconds: later than any row, small enough for interval arithmetic.
const NO_BOUND = { createdUs: '4102444800000000', local: Number.MAX_SAFE_INTEGER };

/**
 * Cursors come back from clients, so they are untrusted: a time past NO_BOUND names
 * no row and would overflow bigint or timestamptz in SQL (a 500), so it is malformed.
 */
export function decodeCursor(raw: string | undefined, shardCount: number): SortKey | null {
  if (raw === undefined || raw === '') return null;
  const m = /^(\d{1,19})\.(\d{1,2})\.(\d{1,16})$/.exec(Buffer.from(raw, 'base64url').toString());
  const shard = m ? Number(m[2]) : -1;
  if (!m || shard >= shardCount || !Number.isSafeInteger(Number(m[3]))) throw new EngineError('invalid_cursor');
  if (BigInt(m[1]!) > BigInt(NO_BOUND.createdUs)) throw new EngineError('invalid_cursor');
  return { createdUs: m[1]!, shard, local: Number(m[3]) };
}

/**
 * The (created_us, id) bound one shard uses so that its rows after the bound are
 * exactly the rows after the cursor in (created, shard, id) order.
 */
export function shardBound(cursor: SortKey | null, shard: number): { createdUs: string; local: number } {
  if (!cursor) return NO_BOUND;
  if (shard < cursor.shard) return { createdUs: cursor.createdUs, local: Number.MAX_SAFE_INTEGER };
  if (shard > cursor.shard) return { createdUs: cursor.createdUs, local: 0 };
  return { createdUs: cursor.createdUs, local: cursor.local };
}

export interface Keyed<T> { key: SortKey; value: T }

function compareDesc(a: SortKey, b: SortKey): number {
  const ta = BigInt(a.createdUs), tb = BigInt(b.createdUs);
  if (ta !== tb) return ta > tb ? -1 : 1;
  if (a.shard !== b.shard) return b.shard - a.shard;
  return b.local - a.local;
}

export function mergePage<T>(perShard: Keyed<T>[][], limit: number): Page<T> {
  const all = perShard.flat().sort((a, b) => compareDesc(a.key, b.key));
  const page = all.slice(0, limit);
  const last = page[page.length - 1];
  return { data: page.map((k) => k.value), next_cursor: all.length > limit && last ? encodeCursor(last.key) : null };
}

/** Runs fn on every shard in parallel; any shard failing fails the whole read (503). */
export function scatter<T>(shards: number[], fn: (shard: number) => Promise<T>): Promise<T[]> {
  return Promise.all(shards.map(fn));
}

/** SQL fragment helpers shared by list statements: rows strictly after the bound. */
export const AFTER_BOUND = `(created_at, id) < (timestamptz 'epoch' + $1::bigint * interval '1 microsecond',
  $2::bigint)`;
export const CREATED_US = `(extract(epoch from created_at) * 1000000)::bigint AS created_us`;
