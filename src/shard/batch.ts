// Group commit in the application: single-row statements of one kind that many
// requests send at the same moment (an idempotency claim, a stored reply) are
// gathered for one event-loop turn and sent as one statement over arrays. Under
// load that turns N commits, N pool checkouts and N round trips into one; with a
// single request waiting it costs one `setImmediate`. A batch fails as a whole: every
// member gets the statement's error, exactly as it would have got it alone.
import { EngineError } from '../errors.js';
import { admissionShed } from '../metrics/index.js';
import type { Queryable } from './pools.js';

interface Waiter<I, O> { input: I; resolve: (out: O) => void; reject: (err: unknown) => void }

/** Runs one batch: answers come back in the order of the inputs. */
export type BatchRun<I, O> = (q: Queryable, inputs: I[]) => Promise<O[]>;

export interface BatchBounds {
  /** The most inputs one statement carries; a full batch goes at once. */
  maxBatch: number;
  /**
   * The most statements in flight at once; meanwhile arrivals wait and go together in
   * the next one (group commit: the busier the shard, the fuller each batch).
   */
  maxInflight: number;
  /** The most inputs waiting for a statement; past it a submit is refused (503 overloaded). */
  maxWaiting?: number;
}

export class Batcher<I, O> {
  private waiting: Waiter<I, O>[] = [];
  private scheduled = false;
  private inflight = 0;

  constructor(private readonly q: Queryable, private readonly run: BatchRun<I, O>,
    private readonly bounds: BatchBounds = { maxBatch: 200, maxInflight: Infinity }) {}

  submit(input: I): Promise<O> {
    if (this.waiting.length >= (this.bounds.maxWaiting ?? Infinity)) {
      admissionShed.inc({ reason: 'checkout_queue_full' });
      return Promise.reject(new EngineError('overloaded', 'Too many statements waiting for this shard',
        { retryAfterS: 1 }));
    }
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject });
      if (this.waiting.length >= this.bounds.maxBatch) void this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          void this.flush();
        });
      }
    });
  }

  private async flush(): Promise<void> {
    if (this.waiting.length === 0 || this.inflight >= this.bounds.maxInflight) return;
    const batch = this.waiting.splice(0, this.bounds.maxBatch);
    this.inflight++;
    try {
      const outs = await this.run(this.q, batch.map((w) => w.input));
      if (outs.length !== batch.length) throw new Error(`batch answered ${outs.length} of ${batch.length}`);
      batch.forEach((w, i) => w.resolve(outs[i]!));
    } catch (err) {
      batch.forEach((w) => w.reject(err));
    } finally {
      this.inflight--;
      if (this.waiting.length > 0) void this.flush();
    }
  }
}

/** One batcher per shard and kind, made on first use (shards live as long as the process). */
export function perShard<I, O>(run: BatchRun<I, O>, bounds?: () => BatchBounds): (shard: Queryable) => Batcher<I, O> {
  const made = new WeakMap<Queryable, Batcher<I, O>>();
  return (shard) => {
    let b = made.get(shard);
    if (!b) {
      b = new Batcher(shard, run, bounds?.());
      made.set(shard, b);
    }
    return b;
  };
}
