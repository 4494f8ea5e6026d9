// The sold-out admission gate: while an item's available count is known to be 0, a
// hold on it is answered 409 sold_out before any database round trip (and without a
// Redis one: the state is a Map in this process).
//
// It may only err toward a brief false "sold out", never toward an oversell: the gate
// never admits anything Postgres would refuse to check, it only refuses early.
//   - What it knows comes from this process's own hooks (immediately, unversioned) and
//     from the versioned states every process's refreshes publish (realtime/bus.ts);
//     a state older than the one held is ignored, and any positive count opens.
//   - A closed state is trusted for SOLD_OUT_GATE_TTL_MS (default 1 s, at most 2 s).
//     After that the next hold re-reads the item from Postgres (one read per item per
//     process, single-flight) before refusing, so a reopen that never arrived (a lost
//     message, Redis down, hooks out of order) heals within the TTL plus one read.
//   - An item with expired holds still counted as held is admitted (the hold path
//     reclaims them: zero-lag expiry); the verify read sees them.
//   - An item it knows nothing about is admitted, and learned in the background
//     through the cache, so a process started after a sell-out closes within one read.
import { EngineError } from '../errors.js';
import { encodeRow } from '../router/ids.js';
import { counters } from './counters.js';
import type { ItemState, StockView } from './items.js';
import type { Version } from './version.js';

export interface Gate {
  /** Throws sold_out for the first item known to be sold out; otherwise returns. */
  admit(shard: number, locals: number[]): Promise<void>;
}

export const OPEN_GATE: Gate = { admit: async () => undefined };

export interface GateSource<T extends StockView> {
  read(shard: number, local: number): Promise<ItemState<T>>;
  fresh(shard: number, local: number): Promise<ItemState<T>>;
}

interface Entry { available: number; version: Version; atMs: number }

/** Items remembered per process (about 100 bytes each). */
const ENTRIES_MAX = 100_000;
/** A verify read slower than this answers from the closed state; it completes in the background. */
const VERIFY_WAIT_MS = 250;
/** Background learns in flight at once. */
const LEARNING_MAX = 64;

export class SoldOutGate<T extends StockView> implements Gate {
  private readonly entries = new Map<string, Entry>();
  private readonly learning = new Set<string>();

  constructor(private readonly source: GateSource<T>, private readonly closedTtlMs: number) {}

  async admit(shard: number, locals: number[]): Promise<void> {
    for (const local of locals) {
      if (await this.closed(shard, local)) {
        counters.gate_blocked_total++;
        const item_id = encodeRow('item', shard, local);
        throw new EngineError('sold_out', `Item ${item_id} is sold out`, { details: { item_id, available: 0 } });
      }
    }
    counters.gate_passed_total++;
  }

  /** This process committed a change: it is the newest state this process knows. */
  noteHook(shard: number, local: number, available: number): void {
    const k = key(shard, local);
    this.put(k, { available, version: this.entries.get(k)?.version ?? '', atMs: Date.now() });
  }

  /** A read of Postgres (here or in another process): applied unless an older one. */
  noteState(state: ItemState<T>): void {
    const k = key(state.shard, state.local);
    const cur = this.entries.get(k);
    if (cur && cur.version > state.version) return;
    // A missing or inactive item is not "sold out": Postgres names the real reason. Nor is
    // one with expired holds the sweeper has not returned yet: the hold path reclaims them.
    const available = state.item && state.item.active && !state.item.reclaimable ? state.item.available : -1;
    this.put(k, { available, version: state.version, atMs: Date.now() });
  }

  size(): number { return this.entries.size; }

  private async closed(shard: number, local: number): Promise<boolean> {
    const k = key(shard, local);
    const e = this.entries.get(k);
    if (!e) {
      this.learn(shard, local, k);
      return false;
    }
    if (e.available !== 0) return false;
    if (Date.now() - e.atMs < this.closedTtlMs) return true;
    counters.gate_verify_total++;
    const verified = await withTimeout(this.source.fresh(shard, local), VERIFY_WAIT_MS);
    if (verified === 'failed') {
      this.entries.delete(k); // unknown again: admit, Postgres decides (and names the fault)
      return false;
    }
    // Too slow (the pool is busy): still closed, and the read lands later.
    if (verified === 'slow') return true;
    this.noteState(verified);
    const now = this.entries.get(k);
    return !!now && now.available === 0 && Date.now() - now.atMs < this.closedTtlMs;
  }

  private learn(shard: number, local: number, k: string): void {
    if (this.learning.has(k) || this.learning.size >= LEARNING_MAX) return;
    this.learning.add(k);
    this.source.read(shard, local)
      .then((s) => this.noteState(s), () => undefined)
      .finally(() => this.learning.delete(k));
  }

  private put(k: string, e: Entry): void {
    this.entries.delete(k); // re-inserted last: the Map's order is the eviction order
    this.entries.set(k, e);
    if (this.entries.size > ENTRIES_MAX) this.entries.delete(this.entries.keys().next().value!);
  }
}

const key = (shard: number, local: number) => `${shard}:${local}`;

async function withTimeout<V>(p: Promise<V>, ms: number): Promise<V | 'slow' | 'failed'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'slow'>((resolve) => { timer = setTimeout(() => resolve('slow'), ms); });
  try {
    return await Promise.race([p.catch((): 'failed' => 'failed'), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
