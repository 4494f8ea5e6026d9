// Reading the engine's ids and tokens outside it (which shard, which row) with the
// engine's own codec (src/router/ids.ts, src/accounts/tokens.ts), so tools, bench and
// tests never decode an id a second, drifting way.
import { parseToken } from '../../src/accounts/tokens.js';
import { decodeRow, decodeUser, KINDS, type Kind, type RowId } from '../../src/router/ids.js';

/** The codec's widest shard count: a shard is one base-36 digit. */
const ANY_SHARDS = 36;
const KIND_OF = new Map<string, Kind>(Object.entries(KINDS).map(([kind, prefix]) => [prefix, kind as Kind]));

/** Shard and local id of a row id (`it_`, `or_`, `pa_`, `ho_`, `ev_`); throws on anything else. */
export function rowOf(id: string): RowId {
  const kind = KIND_OF.get(id.slice(0, 2));
  if (!kind || kind === 'user') throw new Error(`not a row id: ${id}`);
  return decodeRow(kind, id, ANY_SHARDS);
}

/** The shard of a row id or a user id. */
export function shardOf(id: string): number {
  return id.startsWith(`${KINDS.user}_`) ? decodeUser(id, ANY_SHARDS).shard : rowOf(id).shard;
}

/** The shard-local bigint of a row id (the `id` column of its table). */
export const localOf = (id: string): number => rowOf(id).local;

/** The uuid of a user id (the `customer_id` column of orders, holds, limits). */
export const uuidOf = (userId: string): string => decodeUser(userId, ANY_SHARDS).uuid;

/** The shard a bearer token names. */
export function shardOfToken(token: string): number {
  const parsed = parseToken(token, ANY_SHARDS);
  if (!parsed) throw new Error('not a bearer token of the engine');
  return parsed.shard;
}
