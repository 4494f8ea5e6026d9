// Brute-force limits: failed logins are counted per account and per client address
// over a window, registrations (each one an scrypt call) per address; past a limit,
// 429 with Retry-After. Successful logins are not counted, so a busy storefront's
// real logins are never throttled.
//
// A login reserves its slot BEFORE the password is checked, in one atomic step: an
// attempt in flight counts against the limit until it is decided (a failure stays
// counted, a success gives its slot back and forgives the account's failures). So a
// burst sent at once meets exactly the limit a serial run meets; reading the counters
// first and counting afterwards let every attempt of a burst through.
//
// Counters live in Redis so every worker and server shares them; while Redis is down
// each worker counts on its own, just as atomically (a weaker but still bounded limit).
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisSet } from '../redis/set.js';
import { EngineError } from '../errors.js';

export interface LoginLimitConfig {
  loginWindowS: number; loginMaxFailsAccount: number; loginMaxFailsAddress: number; registerMaxAddress: number;
}

/** How a reserved login attempt ended; 'undecided' (an error) gives the slot back uncounted. */
export type Outcome = 'failed' | 'succeeded' | 'undecided';

/** A reserved slot on each limit of one attempt, held until settle(). */
interface Ticket { id: string; keys: string[]; redis: Redis | null }

const LOCAL_MAX_KEYS = 100_000;
/**
 * How long a reservation may stay in flight. Longer than any login takes (query
 * deadlines plus scrypt in a busy thread pool); a worker that dies mid-attempt holds
 * its slot no longer than this.
 */
const ATTEMPT_LEASE_MS = 60_000;

// KEYS: pairs of (failures counter, in-flight set) per limit. ARGV: attempt id, lease ms,
// then each limit's maximum. Returns 0 when every slot was taken, else Retry-After in s.
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now)
  local fails = tonumber(redis.call('GET', KEYS[i]) or '0')
  local max = tonumber(ARGV[2 + (i + 1) / 2])
  if fails + redis.call('ZCARD', KEYS[i + 1]) >= max then
    if fails >= max then return math.max(redis.call('TTL', KEYS[i]), 1) end
    return 1
  end
end
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i + 1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i + 1], ARGV[2])
end
return 0`;

// KEYS as RESERVE (the account's pair first). ARGV: attempt id, outcome, window s.
const SETTLE = `
for i = 1, #KEYS, 2 do
  redis.call('ZREM', KEYS[i + 1], ARGV[1])
  if ARGV[2] == 'failed' then
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[3], 'NX')
  end
end
if ARGV[2] == 'succeeded' then redis.call('DEL', KEYS[1]) end
return 0`;

// KEYS: one counter. ARGV: maximum, window s. Counts the attempt unless the limit is met.
const TAKE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return math.max(redis.call('TTL', KEYS[1]), 1) end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return 0`;

const inflightKey = (key: string) => `${key}:inflight`;

function limited(what: string, retryAfterS: number): EngineError {
  return new EngineError('rate_limited', `Too many ${what}; try again later`,
    { retryAfterS: Math.max(1, retryAfterS) });
}

export class LoginLimiter {
  private readonly local: LocalCounts;

  constructor(private readonly redis: RedisSet, private readonly cfg: LoginLimitConfig) {
    this.local = new LocalCounts(cfg.loginWindowS);
  }

  /**
   * Runs one login check under the limits: a slot is reserved first (429 when none is
   * left), `check` returns the user or null for a wrong email or password, and the slot
   * is then counted as a failure, or given back.
   */
  async attempt<T>(email: string, ip: string, check: () => Promise<T | null>): Promise<T | null> {
    const ticket = await this.reserve(email, ip);
    let outcome: Outcome = 'undecided';
    try {
      const user = await check();
      outcome = user ? 'succeeded' : 'failed';
      return user;
    } finally {
      await this.settle(ticket, outcome);
    }
  }

  /** Counts one registration from `ip`; throws 429 once the address has used its window's share. */
  async registering(ip: string): Promise<void> {
    const key = `rl:register:ip:${ip}`;
    const max = this.cfg.registerMaxAddress;
    const r = this.redis.any();
    let retryAfterS: number | null = null;
    if (r) {
      // A Redis error counts here instead, as while Redis is down.
      retryAfterS = await r.eval(TAKE, 1, key, max, this.cfg.loginWindowS).then(Number, () => null);
    }
    retryAfterS ??= this.local.take(key, max);
    if (retryAfterS > 0) throw limited('registrations from this address', retryAfterS);
  }

  /** [failures key, maximum] of each limit; the account's first (a success clears it). */
  private limits(email: string, ip: string): [string, number][] {
    const acct = createHash('sha256').update(email).digest('hex').slice(0, 32);
    return [[`rl:login:acct:${acct}`, this.cfg.loginMaxFailsAccount],
      [`rl:login:ip:${ip}`, this.cfg.loginMaxFailsAddress]];
  }

  private async reserve(email: string, ip: string): Promise<Ticket> {
    const limits = this.limits(email, ip);
    const keys = limits.map(([k]) => k);
    const id = randomUUID();
    const r = this.redis.any();
    if (r) {
      const redisKeys = keys.flatMap((k) => [k, inflightKey(k)]);
      const got = await r.eval(RESERVE, redisKeys.length, ...redisKeys, id, ATTEMPT_LEASE_MS,
        ...limits.map(([, max]) => max))
        .then(Number, () => null); // a Redis error: reserve in this process instead
      if (got !== null) {
        if (got > 0) throw limited('failed logins', got);
        return { id, keys, redis: r };
      }
    }
    const retryAfterS = this.local.reserve(limits);
    if (retryAfterS > 0) throw limited('failed logins', retryAfterS);
    return { id, keys, redis: null };
  }

  private async settle(ticket: Ticket, outcome: Outcome): Promise<void> {
    if (ticket.redis) {
      const redisKeys = ticket.keys.flatMap((k) => [k, inflightKey(k)]);
      const done = await ticket.redis.eval(SETTLE, redisKeys.length, ...redisKeys, ticket.id, outcome,
        this.cfg.loginWindowS)
        .then(() => true, () => false);
      // Redis went away mid-attempt: its slot expires with the lease; a failure still counts here.
      if (!done && outcome === 'failed') this.local.countFailure(ticket.keys);
      return;
    }
    this.local.settle(ticket.keys, outcome);
  }
}

/**
 * The same limits in one process's memory, for while Redis is down. Every method runs
 * to completion without awaiting, so reserving is as atomic here as the Lua step is in Redis.
 */
class LocalCounts {
  private readonly fails = new Map<string, { count: number; resetAt: number }>();
  private readonly inflight = new Map<string, number>();

  constructor(private readonly windowS: number) {}

  /** 0 when a slot of every limit was taken, else Retry-After in seconds. */
  reserve(limits: [string, number][]): number {
    for (const [key, max] of limits) {
      const fails = this.failures(key);
      if (fails.count + (this.inflight.get(key) ?? 0) >= max) return fails.count >= max ? fails.retryAfterS : 1;
    }
    for (const [key] of limits) this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    return 0;
  }

  settle(keys: string[], outcome: Outcome): void {
    for (const key of keys) {
      const n = (this.inflight.get(key) ?? 1) - 1;
      if (n > 0) this.inflight.set(key, n);
      else this.inflight.delete(key);
    }
    if (outcome === 'failed') this.countFailure(keys);
    if (outcome === 'succeeded') this.fails.delete(keys[0]!);
  }

  countFailure(keys: string[]): void {
    for (const key of keys) this.bump(key);
  }

  /** A counter that counts every attempt (registrations): 0 when counted, else Retry-After. */
  take(key: string, max: number): number {
    const fails = this.failures(key);
    if (fails.count >= max) return fails.retryAfterS;
    this.bump(key);
    return 0;
  }

  private failures(key: string): { count: number; retryAfterS: number } {
    const l = this.fails.get(key);
    const now = Date.now();
    if (!l || l.resetAt <= now) return { count: 0, retryAfterS: 0 };
    return { count: l.count, retryAfterS: Math.max(1, Math.ceil((l.resetAt - now) / 1000)) };
  }

  private bump(key: string): void {
    const now = Date.now();
    const l = this.fails.get(key);
    if (l && l.resetAt > now) {
      l.count++;
      return;
    }
    if (this.fails.size >= LOCAL_MAX_KEYS) this.fails.delete(this.fails.keys().next().value!);
    this.fails.set(key, { count: 1, resetAt: now + this.windowS * 1000 });
  }
}
