// Fan-out to this worker's WebSocket subscribers through uWS topics. A client topic
// (`items/<id>`, `orders/<id>`) maps to one uWS topic per wire format, so each event
// is encoded once per format, and only when someone listens.
//
// Item events carry the version of the read that produced them (cache/version.ts):
// one older than what this worker already sent is dropped, and so is one that does
// not change the count, so out-of-order deliveries never show an old number last.
import { pack } from '../cache/codec.js';
import type { Version } from '../cache/version.js';
import type { TemplatedApp } from '../http/uws.js';

export type Format = 'json' | 'msgpack';

export interface EventFrame { op: 'event'; topic: string; type: 'item.available' | 'order.status'; data: Record<string,
  unknown> }

export const wireTopic = (format: Format, topic: string) => `${format === 'json' ? 'j' : 'm'}:${topic}`;

export function encodeFrame(format: Format, frame: unknown): string | Buffer {
  return format === 'json' ? JSON.stringify(frame) : pack(frame);
}

interface Sent { version: Version; available: number }

/** Items whose last sent count is remembered (for ordering and for snapshots). */
const REMEMBERED_MAX = 100_000;

export class StreamHub {
  private app: TemplatedApp | null = null;
  private readonly last = new Map<string, Sent>();
  private readonly listened = new Map<string, number>();
  /** Order events published here, per listened order (a snapshot skips when one raced it). */
  private readonly orderEvents = new Map<string, number>();
  events_sent = 0;

  attach(app: TemplatedApp): void { this.app = app; }

  /** A versioned item state from any process; -1 available means no such item. */
  item(id: string, version: Version, available: number): void {
    const prev = this.last.get(id);
    if (prev && prev.version >= version) return;
    this.last.delete(id);
    this.last.set(id, { version, available });
    if (this.last.size > REMEMBERED_MAX) this.last.delete(this.last.keys().next().value!);
    if (available < 0 || (prev && prev.available === available)) return;
    this.publish(`items/${id}`, 'item.available', { id, available });
  }

  order(id: string, status: string): void {
    const topic = `orders/${id}`;
    if (this.listened.has(topic)) this.orderEvents.set(id, (this.orderEvents.get(id) ?? 0) + 1);
    this.publish(topic, 'order.status', { id, status });
  }

  orderEventCount(id: string): number { return this.orderEvents.get(id) ?? 0; }

  /** The newest state this worker has sent for an item, if any. */
  lastItem(id: string): Sent | undefined { return this.last.get(id); }

  /** Subscriber counts per client topic on this worker (the stream route keeps them). */
  listen(topic: string, delta: 1 | -1): void {
    const n = (this.listened.get(topic) ?? 0) + delta;
    if (n > 0) {
      this.listened.set(topic, n);
      return;
    }
    this.listened.delete(topic);
    if (topic.startsWith('orders/')) this.orderEvents.delete(topic.slice(7));
  }

  /** Item topics someone on this worker listens to (for a resync after an outage). */
  listenedItems(): string[] {
    return [...this.listened.keys()].filter((t) => t.startsWith('items/')).map((t) => t.slice(6));
  }

  private publish(topic: string, type: EventFrame['type'], data: Record<string, unknown>): void {
    const app = this.app;
    if (!app || !this.listened.has(topic)) return;
    const frame: EventFrame = { op: 'event', topic, type, data };
    for (const format of ['json', 'msgpack'] as const) {
      const wire = wireTopic(format, topic);
      if (app.numSubscribers(wire) === 0) continue;
      app.publish(wire, encodeFrame(format, frame), format === 'msgpack');
      this.events_sent++;
    }
  }
}
