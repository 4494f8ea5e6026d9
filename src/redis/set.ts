// The engine's connections to Redis, in one place: one ioredis client per configured
// Redis for commands, and subscriber connections for pub/sub. Redis is never the source
// of truth, so commands fail fast while it is down (no offline queue) and callers fall
// back to Postgres; ioredis keeps reconnecting in the background and the engine heals.
// Its users: the read cache (src/cache), the bus and the stream (src/realtime), feature
// flags, the auth cache and login limits (src/accounts), cron leader election.
import { Redis } from 'ioredis';
import { log } from '../log.js';

export class RedisSet {
  readonly clients: Redis[];
  readonly urls: string[];
  /** Prefix of keys (applied by ioredis) and of channels (ioredis leaves those alone). */
  readonly namespace: string;
  private readonly readyListeners: ((redis: number) => void)[] = [];

  constructor(urls: string[], name: string, namespace = '') {
    this.urls = urls;
    this.namespace = namespace;
    this.clients = urls.map((url, i) => {
      const c = new Redis(url, {
        connectionName: name, keyPrefix: namespace, lazyConnect: false, enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        // Commands issued in the same tick share one write: many requests, few syscalls.
        enableAutoPipelining: true,
        connectTimeout: 1000, commandTimeout: 500,
        retryStrategy: (times) => Math.min(times * 200, 2000),
      });
      let announced = false;
      c.on('error', (err: Error) => {
        if (!announced) log.warn('redis error', { redis: i, err });
        announced = true;
      });
      c.on('ready', () => {
        if (announced) log.info('redis ready', { redis: i });
        announced = false;
        for (const fn of this.readyListeners) fn(i);
      });
      return c;
    });
  }

  /** Cache keys of shard i live on Redis i; when that one is down, any live one. */
  forShard(shard: number): Redis | null {
    const own = this.clients[shard % this.clients.length]!;
    if (own.status === 'ready') return own;
    return this.clients.find((c) => c.status === 'ready') ?? null;
  }

  channel(name: string): string { return `${this.namespace}${name}`; }

  /**
   * A connection of its own for SUBSCRIBE (a subscribed connection can run nothing else)
   * to Redis `index`. Unlike the command clients it queues while Redis is down and keeps
   * reconnecting: its subscriptions come back with it. Outages are logged by the command
   * client of the same Redis, so this one stays quiet; its owner listens for 'ready' to
   * catch up on what it missed.
   */
  subscriber(index: number, name: string): Redis {
    const sub = new Redis(this.urls[index]!, {
      connectionName: name, enableOfflineQueue: true, maxRetriesPerRequest: null, connectTimeout: 1000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    sub.on('error', () => undefined);
    return sub;
  }

  /** Called every time a client becomes ready (at start and after each outage). */
  onReady(fn: (redis: number) => void): void { this.readyListeners.push(fn); }

  any(): Redis | null { return this.clients.find((c) => c.status === 'ready') ?? null; }

  states(): { redis: number; state: string }[] {
    return this.clients.map((c, i) => ({ redis: i, state: c.status }));
  }

  async end(): Promise<void> {
    await Promise.allSettled(this.clients.map((c) => c.quit()));
  }
}
