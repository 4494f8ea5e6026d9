// The id codec. Every id the engine hands out names its shard, so a request that
// carries an id is routed with no lookup: `<kind>_<shard digit><payload>`.
// Row ids carry the shard-local bigint in base 36; user ids carry 32 hex digits.
import { EngineError } from '../errors.js';

export const KINDS = { item: 'it', order: 'or', payment: 'pa', hold: 'ho', user: 'us', event: 'ev' } as const;
export type Kind = keyof typeof KINDS;

export interface RowId { shard: number; local: number }

const ROW_RE = /^([a-z]{2})_([0-9a-z])([0-9a-z]{1,11})$/;
const USER_RE = /^us_([0-9a-z])([0-9a-f]{32})$/;

export function encodeRow(kind: Kind, shard: number, local: number | string | bigint): string {
  const n = typeof local === 'number' ? local : Number(local);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`bad local id ${String(local)}`);
  return `${KINDS[kind]}_${shard.toString(36)}${n.toString(36)}`;
}

/** A malformed or foreign id is indistinguishable from a missing one: 404, never a crash. */
export function decodeRow(kind: Kind, id: unknown, shardCount: number): RowId {
  const m = typeof id === 'string' ? ROW_RE.exec(id) : null;
  if (!m || m[1] !== KINDS[kind]) throw new EngineError('invalid_id', `No such ${kind}`);
  const shard = parseInt(m[2]!, 36);
  const local = parseInt(m[3]!, 36);
  if (shard >= shardCount || !Number.isSafeInteger(local) || local <= 0) throw new EngineError('invalid_id',
    `No such ${kind}`);
  return { shard, local };
}

export function encodeUser(shard: number, hex: string): string {
  return `us_${shard.toString(36)}${hex}`;
}

export function decodeUser(id: unknown, shardCount: number): { shard: number; uuid: string } {
  const m = typeof id === 'string' ? USER_RE.exec(id) : null;
  const shard = m ? parseInt(m[1]!, 36) : -1;
  if (!m || shard >= shardCount) throw new EngineError('invalid_id', 'No such user');
  return { shard, uuid: hexToUuid(m[2]!) };
}

export function hexToUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function uuidToHex(uuid: string): string { return uuid.replace(/-/g, ''); }

/** FNV-1a 32-bit: a stable hash that places users and emails on shards. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
