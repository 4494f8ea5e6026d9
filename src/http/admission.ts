// Admission control of one worker: every unit of work that may reach a database holds
// a slot while it runs, an HTTP request from its headers to its answer (or its abort),
// a stream topic check from its admission to its last read. MAX_INFLIGHT bounds them
// all together; stream work may hold at most half, so HTTP always keeps the other half
// however many sockets subscribe. Past a bound the caller refuses at once (503
// `overloaded`): nothing queues here. The worker builds one Admission and hands it to
// its routes, its stream, its metrics and its drain.
import { EngineError } from '../errors.js';
import { admissionShed } from '../metrics/index.js';

export class Admission {
  private total = 0;
  private stream = 0;
  private lastActivityMs = 0;

  constructor(private readonly maxInflight: number) {}

  /** Slots held right now, HTTP and stream together (the `bf_http_inflight_requests` gauge). */
  inflight(): number { return this.total; }

  /** Slots held by stream work alone. */
  streamInflight(): number { return this.stream; }

  /** How long no work has been running; a draining worker waits for a quiet spell. */
  idleMs(): number { return this.total > 0 ? 0 : performance.now() - this.lastActivityMs; }

  /** The most stream work may hold. */
  streamBudget(): number { return Math.max(1, Math.floor(this.maxInflight / 2)); }

  /** One slot for an HTTP request; its release must be called exactly once. */
  request(): (() => void) | null {
    if (this.total >= this.maxInflight) return null;
    return this.take(1, 0);
  }

  /** `units` slots for stream work, all or none; its release must be called exactly once. */
  streamWork(units: number): (() => void) | null {
    if (this.total + units > this.maxInflight || this.stream + units > this.streamBudget()) return null;
    return this.take(units, units);
  }

  /**
   * Runs `fn` holding slots (`units` of stream work, or one HTTP request's); none free:
   * `overloaded`, counted by reason, and `fn` never runs.
   */
  async run<T>(kind: 'request' | 'stream', units: number, fn: () => Promise<T>): Promise<T> {
    const release = kind === 'request' ? this.request() : this.streamWork(units);
    if (!release) {
      admissionShed.inc({ reason: kind === 'request' ? 'http_inflight' : 'stream_inflight' });
      throw new EngineError('overloaded', 'Too much stream work on this server', { retryAfterS: 1 });
    }
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private take(units: number, stream: number): () => void {
    this.total += units;
    this.stream += stream;
    this.lastActivityMs = performance.now();
    // A release that a second path (an abort racing the answer) cannot run twice.
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.total -= units;
      this.stream -= stream;
      this.lastActivityMs = performance.now();
    };
  }
}
