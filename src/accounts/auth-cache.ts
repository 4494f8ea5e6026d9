// A per-process cache of resolved bearer tokens, so an authenticated request costs no
// database call in the common case. Revocation (logout, password change, deletion)
// evicts at once in the process that did it and is broadcast over Redis to every other
// process; a process that misses the broadcast (Redis down) honours a revoked token for
// at most AUTH_CACHE_MS. AUTH_CACHE_MS=0 turns the cache off.
import type { Redis } from 'ioredis';
import type { RedisSet } from '../redis/set.js';
import type { Principal } from './principal.js';

const CHANNEL = 'auth1:revoked';
const MAX_ENTRIES = 50_000;

export class AuthCache {
  private readonly byToken = new Map<string, { p: Principal; until: number }>();
  private readonly subscribers: Redis[] = [];
  private readonly revokedListeners: ((uuid: string) => void)[] = [];

  constructor(private readonly ttlMs: number, private readonly redis: RedisSet) {}

  get(tokenHash: string): Principal | null {
    const e = this.byToken.get(tokenHash);
    if (!e) return null;
    if (e.until > Date.now()) return e.p;
    this.byToken.delete(tokenHash);
    return null;
  }

  /** Never past the session's own expiry, so a token expires on time in every process. */
  set(tokenHash: string, p: Principal, sessionExpiresAtMs: number): void {
    if (this.ttlMs <= 0) return;
    if (this.byToken.size >= MAX_ENTRIES) this.byToken.delete(this.byToken.keys().next().value!);
    this.byToken.set(tokenHash, { p, until: Math.min(Date.now() + this.ttlMs, sessionExpiresAtMs) });
  }

  /** Called in this process whenever a user's sessions may have ended (here or elsewhere). */
  onRevoked(fn: (uuid: string) => void): void { this.revokedListeners.push(fn); }

  private evictLocal(uuid: string): void {
    for (const [k, e] of this.byToken) if (e.p.uuid === uuid) this.byToken.delete(k);
    for (const fn of this.revokedListeners) fn(uuid);
  }

  /** Forget every cached token of a user, here and (best effort) in every other process. */
  async revoked(uuid: string): Promise<void> {
    this.evictLocal(uuid);
    await Promise.allSettled(this.redis.clients.filter((c) => c.status === 'ready').map((c) =>
      c.publish(this.redis.channel(CHANNEL), uuid)));
  }

  /** Workers listen for revocations from other processes on every Redis. */
  listen(): void {
    this.redis.urls.forEach((_, i) => {
      const sub = this.redis.subscriber(i, 'engine-auth');
      sub.on('message', (_channel: string, uuid: string) => this.evictLocal(uuid));
      sub.subscribe(this.redis.channel(CHANNEL)).catch(() => undefined);
      this.subscribers.push(sub);
    });
  }

  close(): void {
    for (const s of this.subscribers) s.disconnect();
  }
}
