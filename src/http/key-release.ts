// Giving an Idempotency-Key back after a retryable error (idempotency.ts), so the
// client's retry runs again.
//
// Fenced: a release deletes the claim only while it still carries the token its
// attempt wrote with it (idempotency_keys.claim, sql/011). An attempt that stalled past
// its lease may have been taken over (a takeover writes its own token) and the
// successor may be running the work right now: deleting its claim would let a third
// attempt run the work beside it. The token is made before the claim is sent, so an
// attempt can give its claim back even when the claim's own answer was lost.
//
// Retried: when the release itself fails, the shard is usually failing over (the work
// failed for the same reason). Left alone, the claim would answer every retry 409
// idempotency_in_progress until its lease lapses (IDEMPOTENCY_LOCK_S), long after the
// promoted node takes writes. So the release is made again every RETRY_EVERY_MS until
// it goes through, and given up once the lease would have lapsed anyway (from then on
// a retry takes the claim over itself) or when the process shuts down (the lease then
// frees the key, as it always did).
//
// Why this is safe: releasing after a retryable error is what the middleware always
// did; this only lets it happen once the shard is back, instead of never. Whatever the
// failed attempt did or did not commit is exactly as unknown as before, and the work
// a retry then redoes is idempotent on its own (an order carries its request key:
// place_orders, sql/010), the same contract a takeover after a lapsed lease relies on.
// A late release can free the key sooner than the lease would, never while another
// attempt holds it (the fence), and a key already answered (status done) is never
// deleted.
import { log } from '../log.js';
import type { Shard } from '../shard/pools.js';

/** A claim to give back: user, key, and the attempt's token (the fence). */
export interface Release { u: string; k: string; c: string }

const RELEASE = {
  name: 'idem_release_batch',
  text: `DELETE FROM idempotency_keys i USING jsonb_to_recordset($1::jsonb) AS t(u uuid, k text, c uuid)
          WHERE i.user_id = t.u AND i.key = t.k AND i.status = 'in_progress' AND i.claim = t.c`,
} as const;

/** How often a refused release is made again. */
export const RETRY_EVERY_MS = 500;
/** The most releases waiting per shard; past it a claim is left to its lease (counted as dropped). */
const PENDING_MAX = 10_000;
/** The most releases one retry statement carries. */
const BATCH_MAX = 500;

/** How many of `rows` were still held by the claim they name, and are now released. */
async function send(shard: Shard, rows: Release[]): Promise<number> {
  return (await shard.query(RELEASE, [JSON.stringify(rows)])).rowCount ?? 0;
}

/** The releases of one process, per shard (each lane's pool of it). */
export class KeyReleases {
  private readonly retrying = new Map<Shard, Retrying>();
  private closed = false;

  /**
   * Gives the claim back. When the shard refuses, the release is retried in the
   * background until it goes through, `leaseEndMs` (performance.now() time, no later
   * than the lease's end) passes, or close().
   */
  async release(shard: Shard, r: Release, leaseEndMs: number): Promise<void> {
    try {
      await send(shard, [r]);
    } catch {
      if (this.closed) return;
      let q = this.retrying.get(shard);
      if (!q) this.retrying.set(shard, (q = new Retrying(shard)));
      q.add(r, leaseEndMs);
    }
  }

  /** The process is shutting down: releases still waiting are given up (their leases free the keys). */
  close(): void {
    this.closed = true;
    for (const q of this.retrying.values()) q.close();
  }
}

interface Entry { r: Release; leaseEndMs: number }

/** What one spell of retries on a shard came to: reported in one line when it ends. */
interface Spell { sinceMs: number; keys: number; attempts: number; released: number; superseded: number; lapsed: number;
  dropped: number }

/** One shard's refused releases, retried together: one statement per interval, whatever their number. */
class Retrying {
  /**
   * One per attempt (user, key, token), never one per key: a client retrying while the
   * shard fails over makes attempts whose claims never landed, and their releases must
   * not replace the release of the earlier attempt whose claim did (that key would then
   * answer 409 until its lease lapsed; the deploy proof saw 12 s of it).
   */
  private readonly pending = new Map<string, Entry>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = false;
  private spell: Spell | null = null;

  constructor(private readonly shard: Shard) {}

  add(r: Release, leaseEndMs: number): void {
    const id = `${r.u}\u0000${r.k}\u0000${r.c}`;
    this.spell ??= { sinceMs: performance.now(), keys: 0, attempts: 0, released: 0, superseded: 0, lapsed: 0, dropped: 0 };
    if (!this.pending.has(id)) {
      if (this.pending.size >= PENDING_MAX) {
        this.spell.dropped++;
        return;
      }
      this.spell.keys++;
    }
    this.pending.set(id, { r, leaseEndMs });
    this.schedule();
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.spell) this.report('shutdown');
    this.pending.clear();
  }

  private schedule(): void {
    if (this.timer || this.busy || this.stopped) return;
    this.timer = setTimeout(() => void this.attempt(), RETRY_EVERY_MS);
    this.timer.unref(); // never what keeps a process alive
  }

  private async attempt(): Promise<void> {
    this.timer = null;
    this.busy = true;
    try {
      this.dropLapsed();
      await this.sendBatch();
    } finally {
      this.busy = false;
      this.next();
    }
  }

  private next(): void {
    if (this.stopped) return;
    if (this.pending.size > 0) this.schedule();
    else if (this.spell) this.report(this.spell.lapsed + this.spell.dropped > 0 ? 'lapsed' : 'released');
  }

  /** A lease that ran out needs no release: a retry takes the claim over (and a late one would only be fenced off). */
  private dropLapsed(): void {
    const now = performance.now();
    for (const [id, e] of this.pending) {
      if (e.leaseEndMs > now) continue;
      this.pending.delete(id);
      this.spell!.lapsed++;
    }
  }

  private async sendBatch(): Promise<void> {
    const batch = [...this.pending].slice(0, BATCH_MAX);
    if (batch.length === 0) return;
    this.spell!.attempts++;
    let released: number;
    try {
      released = await send(this.shard, batch.map(([, e]) => e.r));
    } catch {
      return; // still refused: the next interval tries again
    }
    if (this.stopped) return;
    for (const [id, e] of batch) if (this.pending.get(id) === e) this.pending.delete(id);
    this.spell!.released += released;
    this.spell!.superseded += batch.length - released;
  }

  /** One line per spell, not per attempt. `superseded`: claims no longer the one released (taken over, answered or gone). */
  private report(outcome: 'released' | 'lapsed' | 'shutdown'): void {
    const s = this.spell!;
    this.spell = null;
    const fields = { shard: this.shard.index, outcome, keys: s.keys, released: s.released, superseded: s.superseded,
      lapsed: s.lapsed, dropped: s.dropped, pending: this.pending.size, attempts: s.attempts,
      waited_ms: Math.round(performance.now() - s.sinceMs) };
    if (outcome === 'released') log.info('idempotency key release retried', fields);
    else log.warn('idempotency key release retried', fields);
  }
}
