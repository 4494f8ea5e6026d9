// Leader election for cron jobs with redlock over the Redis instances as independent
// masters (quorum = majority). It is only an efficiency lock: every job is fenced by
// conditional updates in Postgres, so when Redis is unreachable the job runs anyway.
import Redlock from 'redlock';
import type { RedisSet } from '../redis/set.js';

export type LeaderOutcome<T> = { ran: true; result: T; locked: boolean } | { ran: false };

export class Leader {
  private readonly redlock: Redlock;

  constructor(private readonly redis: RedisSet) {
    this.redlock = new Redlock(redis.clients, { retryCount: 0, driftFactor: 0.01 });
    // Failed acquisitions are expected (someone else leads); errors surface per call.
    this.redlock.on('error', () => undefined);
  }

  async run<T>(resource: string, ttlMs: number, fn: () => Promise<T>): Promise<LeaderOutcome<T>> {
    const live = this.redis.clients.filter((c) => c.status === 'ready').length;
    if (live * 2 <= this.redis.clients.length) return { ran: true, result: await fn(), locked: false };
    let lock;
    try {
      lock = await this.redlock.acquire([`lock:${resource}`], ttlMs);
    } catch {
      return { ran: false };
    }
    try {
      return { ran: true, result: await fn(), locked: true };
    } finally {
      await lock.release().catch(() => undefined);
    }
  }
}
