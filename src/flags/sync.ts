// Keeps every process's flags in step with Postgres. A switch is published on Redis
// (channel `flags`, to every live Redis) and each process that hears it re-reads the
// table; the message carries no value, so a process can never apply what its own
// database does not say. Each process subscribes to every configured Redis and
// re-reads on start, on every (re)connect of a subscriber, and every
// FLAGS_REFRESH_MS as the fallback while Redis is down.
import { Redis } from 'ioredis';
import type { RedisSet } from '../cache/redis.js';
import type { Core } from '../deps.js';
import { log } from '../log.js';
import { applyAll, type FlagRow } from './state.js';
import { HOME_SHARD, SQL } from './sql.js';

export const FLAGS_CHANNEL = 'flags';

export class FlagSync {
  private readonly subs: Redis[] = [];
  private timer: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private again = false;
  private failing = false;

  constructor(private readonly deps: Core, private readonly redis: RedisSet) {}

  start(everyMs: number): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), everyMs);
    this.timer.unref();
    for (const url of this.redis.urls) this.subs.push(this.subscribe(url));
  }

  /** Tells every process (this one included) to re-read. Never throws: the poll is the fallback. */
  announce(name: string): void {
    for (const c of this.redis.clients) {
      if (c.status === 'ready') c.publish(this.redis.channel(FLAGS_CHANNEL), name).catch(() => undefined);
    }
  }

  /**
   * Re-reads the table. Calls while a read is in flight coalesce into one more read
   * after it, so a message that arrives mid-read is never answered by an older read.
   */
  refresh(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.readOnce().finally(() => {
      this.reading = null;
      if (this.again) {
        this.again = false;
        void this.refresh();
      }
    });
    return this.reading;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const s of this.subs) s.disconnect();
  }

  private async readOnce(): Promise<void> {
    try {
      const res = await this.deps.shards.get(HOME_SHARD).query<FlagRow>(SQL.all);
      applyAll(res.rows);
      if (this.failing) log.info('feature flags readable again');
      this.failing = false;
    } catch (err) {
      // Keep applying what was last read; the next poll or message tries again.
      if (!this.failing) log.warn('feature flags not readable; keeping the last values', { err });
      this.failing = true;
    }
  }

  private subscribe(url: string): Redis {
    const sub = new Redis(url, {
      connectionName: 'engine-flags', enableOfflineQueue: true, maxRetriesPerRequest: null, connectTimeout: 1000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    sub.on('error', () => undefined); // RedisSet logs outages; this one just reconnects
    sub.on('ready', () => void this.refresh()); // start and every reconnect: switches may have been missed
    sub.on('message', () => void this.refresh());
    sub.subscribe(this.redis.channel(FLAGS_CHANNEL)).catch(() => undefined);
    return sub;
  }
}
