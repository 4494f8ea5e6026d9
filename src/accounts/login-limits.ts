// Login brute-force limits: failed attempts are counted per account and per client
// address over a window; past a limit, logins answer 429 with Retry-After. Only
// failures count, so a busy storefront's real logins are never throttled. Counters
// live in Redis so every worker and server shares them; while Redis is down each
// worker counts on its own (a weaker but still bounded limit).
import { createHash } from 'node:crypto';
import type { RedisSet } from '../cache/redis.js';
import { EngineError } from '../errors.js';

export interface LoginLimitConfig { loginWindowS: number; loginMaxFailsAccount: number; loginMaxFailsAddress: number }

const LOCAL_MAX_KEYS = 100_000;

export class LoginLimiter {
  private readonly local = new Map<string, { count: number; resetAt: number }>();

  constructor(private readonly redis: RedisSet, private readonly cfg: LoginLimitConfig) {}

  private keys(email: string, ip: string): [string, number][] {
    const acct = createHash('sha256').update(email).digest('hex').slice(0, 32);
    return [[`rl:login:acct:${acct}`, this.cfg.loginMaxFailsAccount], [`rl:login:ip:${ip}`, this.cfg.loginMaxFailsAddress]];
  }

  /** Throws 429 when the account or the address has failed too often in the window. */
  async check(email: string, ip: string): Promise<void> {
    for (const [key, max] of this.keys(email, ip)) {
      const { count, ttlS } = await this.read(key);
      if (count >= max) throw new EngineError('rate_limited', 'Too many failed logins; try again later', { retryAfterS: Math.max(1, ttlS) });
    }
  }

  async failed(email: string, ip: string): Promise<void> {
    for (const [key] of this.keys(email, ip)) await this.bump(key);
  }

  async succeeded(email: string, ip: string): Promise<void> {
    const [acct] = this.keys(email, ip)[0]!;
    this.local.delete(acct);
    await this.redis.any()?.del(acct).catch(() => undefined);
  }

  private async read(key: string): Promise<{ count: number; ttlS: number }> {
    const r = this.redis.any();
    if (r) {
      try {
        const [[, count], [, ttl]] = (await r.multi().get(key).ttl(key).exec()) as [[unknown, string | null], [unknown, number]];
        return { count: Number(count ?? 0), ttlS: ttl > 0 ? ttl : this.cfg.loginWindowS };
      } catch { /* fall through to the local count */ }
    }
    const l = this.local.get(key);
    if (!l || l.resetAt <= Date.now()) return { count: 0, ttlS: 0 };
    return { count: l.count, ttlS: Math.ceil((l.resetAt - Date.now()) / 1000) };
  }

  private async bump(key: string): Promise<void> {
    const r = this.redis.any();
    if (r) {
      try {
        await r.multi().incr(key).expire(key, this.cfg.loginWindowS, 'NX').exec();
        return;
      } catch { /* fall through */ }
    }
    const now = Date.now();
    const l = this.local.get(key);
    if (l && l.resetAt > now) l.count++;
    else {
      if (this.local.size >= LOCAL_MAX_KEYS) this.local.delete(this.local.keys().next().value!);
      this.local.set(key, { count: 1, resetAt: now + this.cfg.loginWindowS * 1000 });
    }
  }
}
