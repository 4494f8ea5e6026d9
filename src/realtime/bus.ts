// Changes travel between processes (workers of every app server, the cron process)
// through Redis pub/sub. Each change is published to every live Redis, and each
// worker holds ONE subscriber connection, to the first Redis that is up (it moves to
// another when its own stays down), so it hears every change exactly once from
// whichever it listens to. Redis down: publishes are dropped (counted), the sold-out
// gate heals by its TTL, and the stream resyncs its topics when the subscriber is back.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pack, unpack } from '../cache/codec.js';
import { counters } from '../cache/counters.js';
import type { RedisSet } from '../redis/set.js';
import type { Version } from '../cache/version.js';
import { log } from '../log.js';

export const CHANNEL = 'rt1:changes';

/** An item as a refresh read it: version, available (-1: no such item), active. */
export interface ItemEvent { k: 'i'; s: number; l: number; v: Version; a: number; act: boolean; r: boolean }
/** An order's new status; `o` is the publishing process, so it skips its own echo. */
export interface OrderEvent { k: 'o'; id: string; st: string; o: string }
export type BusEvent = ItemEvent | OrderEvent;

export interface BusHandlers { event(ev: BusEvent): void; reconnected(): void }

/** Subscriber checks; after this many in a row not ready, it moves to another Redis. */
const CHECK_EVERY_MS = 1000;
const FAILOVER_AFTER_CHECKS = 3;

export class Bus {
  readonly origin = randomBytes(6).toString('hex');
  private sub: Redis | null = null;
  private subIndex = 0;
  private notReady = 0;
  private timer: NodeJS.Timeout | null = null;
  private everReady = false;

  constructor(private readonly redis: RedisSet) {}

  publish(ev: BusEvent): void {
    const buf = pack(ev);
    for (const c of this.redis.clients) {
      if (c.status !== 'ready') continue;
      counters.bus_published_total++;
      c.publish(this.redis.channel(CHANNEL), buf).catch(() => { counters.cache_redis_errors_total++; });
    }
  }

  /** Workers listen; the cron process only publishes. */
  listen(handlers: BusHandlers): void {
    this.connect(0, handlers);
    this.timer = setInterval(() => this.check(handlers), CHECK_EVERY_MS);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.sub?.disconnect();
  }

  private connect(index: number, handlers: BusHandlers, resync = false): void {
    this.subIndex = index;
    this.everReady = false;
    const sub = this.redis.subscriber(index, 'engine-bus');
    sub.on('ready', () => {
      // After an outage, changes were missed: listeners re-read what they show.
      if (this.everReady || resync) handlers.reconnected();
      this.everReady = true;
    });
    sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      counters.bus_received_total++;
      let ev: BusEvent;
      try {
        ev = unpack<BusEvent>(message);
      } catch {
        return;
      }
      handlers.event(ev);
    });
    sub.subscribe(this.redis.channel(CHANNEL)).catch(() => undefined);
    this.sub = sub;
  }

  private check(handlers: BusHandlers): void {
    if (!this.sub || this.sub.status === 'ready') {
      this.notReady = 0;
      return;
    }
    if (++this.notReady < FAILOVER_AFTER_CHECKS) return;
    const next = this.redis.clients.findIndex((c, i) => i !== this.subIndex && c.status === 'ready');
    if (next < 0) return;
    log.warn('bus: subscriber moves to another redis', { from: this.subIndex, to: next });
    this.sub.disconnect();
    this.notReady = 0;
    this.connect(next, handlers, true);
  }
}
