// A process's connections to every shard, split into lanes (bulkheads): what the
// engine builds once (src/engine.ts) and what a domain sees as `deps.shards`.
import { EngineError } from '../errors.js';
import { Shard, type ShardOptions } from './pools.js';
import { Primary, type PrimaryOptions } from './primary.js';

/**
 * The classes of work that get a share of each shard's connections of their own
 * (bulkheads): reads, checkouts and other writes, payments (the gateway's webhooks
 * and payment creation). A storm of one class fills its own queue and is refused
 * there (503 overloaded, Retry-After) while the others keep their connections.
 */
export type Lane = 'read' | 'write' | 'payment';
export const LANES: readonly Lane[] = ['read', 'write', 'payment'];

/** One lane's connections to every shard: what a domain sees as `deps.shards`. */
export class ShardSet {
  constructor(readonly list: Shard[], readonly lane: Lane | 'all') {}

  get count(): number { return this.list.length; }

  get(index: number): Shard {
    const s = this.list[index];
    if (!s) throw new EngineError('invalid_id', 'No such shard');
    return s;
  }

  stats() { return this.list.map((s) => ({ ...s.stats(), lane: this.lane })); }
}

export class Shards extends ShardSet {
  private readonly lanes: Record<Lane, ShardSet>;
  private readonly primaries: Primary[];

  /**
   * `sizes` per lane: a pool per shard per lane. A single number: one pool per shard
   * that every lane shares (the cron process and tools, which have no requests to
   * keep apart). The set itself is the read lane.
   */
  constructor(urls: string[], opts: Omit<ShardOptions, 'primary' | 'poolSize'> & Omit<PrimaryOptions, 'appName'>, sizes: Record<Lane, number> | number) {
    // One view of each shard's primary per process: every lane follows the same one.
    const primaries = urls.map((url, i) => new Primary(i, url, { probeTimeoutMs: opts.probeTimeoutMs, probeEveryMs: opts.probeEveryMs, appName: opts.appName }));
    const make = (lane: Lane, poolSize: number) => primaries.map((primary, i) => new Shard(i, { ...opts, primary, poolSize, appName: `${opts.appName}-${lane}` }));
    if (typeof sizes === 'number') {
      const shared = primaries.map((primary, i) => new Shard(i, { ...opts, primary, poolSize: sizes }));
      super(shared, 'all');
      this.lanes = { read: this, write: this, payment: this };
      this.primaries = primaries;
      return;
    }
    const read = make('read', sizes.read);
    super(read, 'read');
    this.lanes = { read: this, write: new ShardSet(make('write', sizes.write), 'write'), payment: new ShardSet(make('payment', sizes.payment), 'payment') };
    this.primaries = primaries;
  }

  forLane(lane: Lane): ShardSet { return this.lanes[lane]; }

  /** Every pool of every lane (each pool once). */
  all(): ShardSet[] { return [...new Set(Object.values(this.lanes))]; }

  override stats() { return this.all().flatMap((set) => set.list.map((s) => ({ ...s.stats(), lane: set.lane }))); }

  async end(): Promise<void> {
    for (const p of this.primaries) p.close();
    await Promise.allSettled(this.all().flatMap((set) => set.list.map((s) => s.end())));
  }
}
