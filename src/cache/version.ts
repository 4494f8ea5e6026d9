// Versions of what one shard read: several processes refresh the same cache key after
// their own commits, and their writes reach Redis in any order. Each refresh reads
// the row together with its statement snapshot (pg_current_snapshot()), and the cache
// keeps the read with the newest snapshot. Snapshots of one Postgres server order by
// (xmax, fewer in-progress xids):
//   - xmax (latestCompletedXid + 1) never decreases;
//   - with equal xmax no xid below it was assigned in between, so the later snapshot's
//     in-progress list is a subset of the earlier one's: it can only shrink;
//   - a commit that changes what a read sees either raises xmax or leaves the
//     in-progress list, so a newer state always has a strictly greater version, and
//     equal versions saw the same committed state.
// Encoded as 24 fixed-width hex digits so strings compare like the tuples.
import { invariant } from '../errors.js';

export type Version = string;
export const VERSION_LEN = 24;

const SNAPSHOT_RE = /^(\d+):(\d+):([\d,]*)$/;

export function versionOf(snapshot: string): Version {
  const m = SNAPSHOT_RE.exec(snapshot);
  invariant(m, `a pg_snapshot looks like xmin:xmax:xip,... (got ${snapshot})`);
  const inProgress = m[3] ? m[3].split(',').length : 0;
  const xmax = BigInt(m[2]!).toString(16).padStart(16, '0');
  return xmax + (0xffffffff - Math.min(inProgress, 0xffffffff)).toString(16).padStart(8, '0');
}

/**
 * Redis side of the same order: SET the value only if what is stored is not newer.
 * Compared as three 32-bit numbers (Lua string comparison follows the server locale).
 * KEYS[1] key; ARGV[1] version; ARGV[2] value (version + payload); ARGV[3] ttl ms.
 */
export const CAS_SET_LUA = `
local cur = redis.call('GETRANGE', KEYS[1], 0, ${VERSION_LEN - 1})
if string.len(cur) == ${VERSION_LEN} then
  for i = 1, ${VERSION_LEN - 7}, 8 do
    local x = tonumber(string.sub(cur, i, i + 7), 16)
    local y = tonumber(string.sub(ARGV[1], i, i + 7), 16)
    if x > y then return 0 end
    if x < y then break end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;
