// Keeps every process's flags in step with Postgres. A switch is published on Redis
// (channel `flags`, to every live Redis) and each process that hears it re-reads the
// table; the message carries no value, so a process can never apply what its own
// database does not say. Each process subscribes to every configured Redis and
// re-reads on start, on every (re)connect of a subscriber, and every
// FLAGS_REFRESH_MS as the fallback while Redis is down.
import type { Redis } from 'ioredis';
import type { RedisSet } from '../redis/set.js';
import { log } from '../log.js';
import type { ShardSet } from '../shard/shards.js';
import type { FlagRow, FlagState } from './state.js';
import { HOME_SHARD, SQL } from './sql.js';

export const FLAGS_CHANNEL = 'flags';

export class FlagSync {
  private readonly subs: Redis[] = [];
  private timer: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private again = false;
  private failing = false;

  constructor(private readonly shards: ShardSet, private readonly flags: FlagState, private readonly redis: RedisSet) {}

  start(everyMs: number): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), everyMs);
    this.timer.unref();
    this.redis.urls.forEach((_, i) => this.subs.push(this.subscribe(i)));
  }

  /** Tells every process (this one included) to re-read. Never rejects: the poll is the fallback. */
  async announce(name: string): Promise<void> {
    const ready = this.redis.clients.filter((c) => c.status === 'ready');
    await Promise.all(ready.map((c) => c.publish(this.redis.channel(FLAGS_CHANNEL), name).catch(() => undefined)));
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
      const res = await this.shards.get(HOME_SHARD).query<FlagRow>(SQL.all);
      this.flags.applyAll(res.rows);
      if (this.failing) log.info('feature flags readable again');
      this.failing = false;
    } catch (err) {
      // Keep applying what was last read; the next poll or message tries again.
      if (!this.failing) log.warn('feature flags not readable; keeping the last values', { err });
      this.failing = true;
    }
  }

  private subscribe(index: number): Redis {
    const sub = this.redis.subscriber(index, 'engine-flags');
    sub.on('ready', () => void this.refresh()); // start and every reconnect: switches may have been missed
    sub.on('message', () => void this.refresh());
    sub.subscribe(this.redis.channel(FLAGS_CHANNEL)).catch(() => undefined);
    return sub;
  }
}
