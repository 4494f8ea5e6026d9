// How many password hashes a process runs at once, and how many may wait.
//
// scrypt runs on libuv's thread pool (UV_THREADPOOL_SIZE threads, 4 by default), and so
// does the SCRAM handshake of every new Postgres connection (pg's WebCrypto PBKDF2 and
// HMAC). The pool is one FIFO queue: a burst of logins queued there makes each step of a
// handshake wait behind every hash before it. Measured: with 16 logins hashing in one
// process, a new connection took 3.0-3.3 s, the engine's connect timeout, and the shard
// was taken for down. So hashes wait here instead, at most `concurrency` running (fewer
// than the pool's threads), at most `queueMax` waiting; past that a login or a
// registration is answered 503 overloaded at once.
import { EngineError } from '../errors.js';
import { admissionShed } from '../metrics/index.js';

export interface HashSlotLimits { concurrency: number; queueMax: number }

export class HashSlots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** The most that ever ran at once (the tests read it). */
  peak = 0;

  constructor(private limits: HashSlotLimits) {}

  configure(limits: HashSlotLimits): void { this.limits = limits; }

  get queued(): number { return this.waiting.length; }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.concurrency) {
      if (this.waiting.length >= this.limits.queueMax) {
        admissionShed.inc({ reason: 'password_queue_full' });
        throw new EngineError('overloaded', 'Too many password checks waiting on this server', { retryAfterS: 1 });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    this.peak = Math.max(this.peak, this.running);
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, so `running` never drops under a queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** The process's slots; the engine sets them from PASSWORD_HASH_CONCURRENCY and PASSWORD_HASH_QUEUE_MAX. */
export const hashSlots = new HashSlots({ concurrency: 2, queueMax: 64 });
