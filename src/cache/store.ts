// The Redis side of the read cache. Every operation is best effort: with Redis down
// (or slow past its command timeout) a read is a miss and a write is skipped, never an
// error, and the caller goes to Postgres. Keys of shard i live on Redis forShard(i).
import type { Redis } from 'ioredis';
import { log } from '../log.js';
import { counters } from './counters.js';
import type { RedisSet } from '../redis/set.js';
import { CAS_SET_LUA, VERSION_LEN, type Version } from './version.js';

/** Bumped when the encoding of cached values changes, so old values are never read. */
export const KEY_PREFIX = 'c1:';

// Writes a field of a generation-guarded hash; see setIfGeneration.
const GEN_SET_LUA = `
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return 1`;

// Sets a key only while its generation is the one read before the database read.
const GEN_SET_KEY_LUA = `
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1`;

interface Scripted extends Redis {
  cacheCas(key: string, version: string, value: Buffer, ttlMs: number): Promise<number>;
  cacheGenSet(genKey: string, hashKey: string, gen: string, field: string, value: Buffer,
    ttlMs: number): Promise<number>;
  cacheGenSetKey(genKey: string, key: string, gen: string, value: Buffer, ttlMs: number): Promise<number>;
}

export class CacheStore {
  private lastWarnMs = 0;

  constructor(private readonly redis: RedisSet, private readonly jitterPct: number) {
    for (const c of redis.clients) {
      c.defineCommand('cacheCas', { numberOfKeys: 1, lua: CAS_SET_LUA });
      c.defineCommand('cacheGenSet', { numberOfKeys: 2, lua: GEN_SET_LUA });
      c.defineCommand('cacheGenSetKey', { numberOfKeys: 2, lua: GEN_SET_KEY_LUA });
    }
  }

  /** TTL with jitter, so keys filled together do not expire (and reload) together. */
  ttl(baseMs: number): number {
    const spread = Math.floor((baseMs * this.jitterPct) / 100);
    return baseMs - spread + Math.floor(Math.random() * (2 * spread + 1));
  }

  client(shard: number): Scripted | null { return this.redis.forShard(shard) as Scripted | null; }

  async get(shard: number, key: string): Promise<Buffer | null> {
    const c = this.client(shard);
    if (!c) return null;
    try {
      return await c.getBuffer(key);
    } catch (err) {
      this.failed('get', err);
      return null;
    }
  }

  /** Stores a versioned value unless Redis holds a newer one. False when Redis was unreachable. */
  async setVersioned(shard: number, key: string, version: Version, payload: Buffer, ttlMs: number): Promise<boolean> {
    const c = this.client(shard);
    if (!c) return false;
    try {
      await c.cacheCas(key, version, Buffer.concat([Buffer.from(version, 'latin1'), payload]), this.ttl(ttlMs));
      return true;
    } catch (err) {
      this.failed('set', err);
      return false;
    }
  }

  async set(shard: number, key: string, payload: Buffer, ttlMs: number): Promise<void> {
    const c = this.client(shard);
    if (!c) return;
    try {
      await c.set(key, payload, 'PX', this.ttl(ttlMs));
    } catch (err) {
      this.failed('set', err);
    }
  }

  /** One field of a hash whose generation counter is read alongside; null field on a miss. */
  async hgetWithGen(shard: number, genKey: string, hashKey: string,
    field: string): Promise<{ value: Buffer | null; gen: string } | null> {
    const c = this.client(shard);
    if (!c) return null;
    try {
      const [[e1, value], [e2, gen]] = (await c.multi().hgetBuffer(hashKey,
        field).get(genKey).exec()) as [[Error | null, Buffer | null], [Error | null, string | null]];
      if (e1 || e2) throw e1 ?? e2;
      return { value, gen: gen ?? '0' };
    } catch (err) {
      this.failed('get', err);
      return null;
    }
  }

  /**
   * Fills a field only while the generation is the one read before the database read,
   * so a fill that raced an invalidation never resurrects the old answer.
   */
  async setIfGeneration(shard: number, genKey: string, hashKey: string, gen: string, field: string, payload: Buffer,
    ttlMs: number): Promise<void> {
    const c = this.client(shard);
    if (!c) return;
    try {
      await c.cacheGenSet(genKey, hashKey, gen, field, payload, this.ttl(ttlMs));
    } catch (err) {
      this.failed('set', err);
    }
  }

  /** The generation of a key, read before the database read that may fill it; null when Redis is unreachable. */
  async generation(shard: number, genKey: string): Promise<string | null> {
    const c = this.client(shard);
    if (!c) return null;
    try {
      return (await c.get(genKey)) ?? '0';
    } catch (err) {
      this.failed('get', err);
      return null;
    }
  }

  /** Fills a key only while its generation is still `gen` (see generation()). */
  async setIfKeyGeneration(shard: number, genKey: string, key: string, gen: string, payload: Buffer,
    ttlMs: number): Promise<void> {
    const c = this.client(shard);
    if (!c) return;
    try {
      await c.cacheGenSetKey(genKey, key, gen, payload, this.ttl(ttlMs));
    } catch (err) {
      this.failed('set', err);
    }
  }

  /** A key's invalidation: a new generation (kept `genTtlMs`), then the key goes. Throws when Redis is unreachable. */
  async bumpKeyGeneration(shard: number, genKey: string, key: string, genTtlMs: number): Promise<void> {
    const c = this.client(shard);
    if (!c) return;
    await c.multi().incr(genKey).pexpire(genKey, genTtlMs).del(key).exec();
  }

  /** Invalidation: a new generation, then the hash goes. Throws when Redis is unreachable. */
  async bumpGeneration(shard: number, genKey: string, hashKey: string): Promise<void> {
    const c = this.client(shard);
    if (!c) return;
    await c.multi().incr(genKey).del(hashKey).exec();
  }

  private failed(op: string, err: unknown): void {
    counters.cache_redis_errors_total++;
    const now = Date.now();
    if (now - this.lastWarnMs > 10_000) {
      this.lastWarnMs = now;
      log.warn('cache: redis operation failed, using postgres', { op, err });
    }
  }
}

export function stripVersion(buf: Buffer): { version: Version; payload: Buffer } {
  return { version: buf.subarray(0, VERSION_LEN).toString('latin1'), payload: buf.subarray(VERSION_LEN) };
}
