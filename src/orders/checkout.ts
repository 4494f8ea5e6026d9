// Group commit of checkouts, run by lifecycle.ts: the parts of concurrent checkouts
// bound for one shard go to it together, as one place_orders() statement (sql/010,
// SQL.placeOrders in lifecycle-sql.ts): each part decided on its own (a refusal
// refuses only its part), the batch one commit, each item row locked and written once
// per batch, so a hot item takes many units per row lock.
//
// Bounds (CHECKOUT_BATCH_MAX, CHECKOUT_BATCH_INFLIGHT): at most 50 parts a statement:
// a batch holds its items' row locks until it commits, so its size is the latency every
// part of it shares (measured: ~0.6 ms of Postgres per part at 20 a batch, so 50 parts is
// ~30 ms); at most 2 statements in flight per shard per process, so that while one
// commits the next one fills. Nothing waits on a timer: with one checkout in sight a
// batch of one goes at the next event-loop turn, so an idle engine adds no latency.
import type { Core } from '../deps.js';
import { EngineError } from '../errors.js';
import { perShard, type BatchBounds } from '../shard/batch.js';
import type { Queryable, Shard } from '../shard/pools.js';
import { toEngineError } from '../shard/pg-errors.js';
import { refusal, type WantedLine } from './holds.js';
import { SQL } from './lifecycle-sql.js';

/** One shard's part of a checkout. `folded`: the whole checkout, its Idempotency-Key answered here. */
export interface Part {
  customer: string; lines: WantedLine[]; ttlS: number; requestKey: string | null; requestHash: string | null;
  checkoutId: string; actor: string; folded: boolean;
}

/** A placed (or, with `existing`, found) order's row, as place_orders returns it. */
export type Placed = Record<string, unknown> & { id: number; existing: boolean };

/** What became of a part: its order, or why not (a refusal, or an expired hold worth reclaiming). */
export type Outcome =
  | { ok: true; placed: Placed }
  | { ok: false; error: EngineError; replayed: boolean; reclaimable: boolean };

const partJson = (p: Part) => ({
  c: p.customer, i: p.lines.map((l) => l.local), q: p.lines.map((l) => l.quantity), t: p.ttlS,
  k: p.requestKey, h: p.requestHash, x: p.checkoutId, a: p.actor, f: p.folded,
});

const IN_PROGRESS = () => new EngineError('idempotency_in_progress', undefined, { retryAfterS: 1 });

function outcomeOf(shard: number, row: Record<string, unknown>): Outcome {
  if (row.ok) return { ok: true, placed: row as Placed };
  const state = row.err_state as string;
  if (state === 'BFIP1') return { ok: false, error: IN_PROGRESS(), replayed: false, reclaimable: false };
  const cause = { code: state === 'BFSR1' ? 'BFSO1' : state, detail: row.err_detail, hint: row.err_hint };
  const error = refusal(cause, shard) ?? failed(cause.code, shard);
  return { ok: false, error, replayed: row.existing === true, reclaimable: state === 'BFSR1' };
}

/** A part that failed below the refusals (a deadlock, a lock timeout, a bug): the SQLSTATE as any statement's error. */
const failed = (code: string, shard: number) => toEngineError({ code, severity: 'ERROR' }, shard);

/** Two parts of one (customer, key) in one batch: the second is a concurrent duplicate. */
const keyOf = (p: Part) => (p.folded && p.requestKey ? `${p.customer}\u0000${p.requestKey}` : null);

async function runBatch(q: Queryable, parts: Part[], shard: number): Promise<Outcome[]> {
  const seen = new Set<string>();
  const sent: Part[] = [];
  const slot: number[] = parts.map((p) => {
    const k = keyOf(p);
    if (k !== null && seen.has(k)) return -1;
    if (k !== null) seen.add(k);
    sent.push(p);
    return sent.length - 1;
  });
  const outs = await runParts(q, sent, shard);
  return slot.map((i) => (i < 0 ? { ok: false, error: IN_PROGRESS(), replayed: false, reclaimable: false } : outs[i]!));
}

/**
 * One statement for the parts; if it fails as a whole (a deadlock with a sweep, a bug
 * one part trips), each part goes again alone, so one part cannot fail the others.
 */
async function runParts(q: Queryable, parts: Part[], shard: number): Promise<Outcome[]> {
  const once = async (ps: Part[]) => (await q.query(SQL.placeOrders,
    [JSON.stringify(ps.map(partJson))])).rows.map((r) => outcomeOf(shard, r));
  if (parts.length === 1) return once(parts);
  try {
    return await once(parts);
  } catch {
    return Promise.all(parts.map(async (p): Promise<Outcome> => {
      try {
        return (await once([p]))[0]!;
      } catch (err) {
        return { ok: false, error: err instanceof EngineError ? err : failed('XX000', shard), replayed: false,
          reclaimable: false };
      }
    }));
  }
}

function bounds(deps: Core): BatchBounds {
  // Waiting checkouts are bounded like a pool's queue: a stuck shard refuses, not piles up.
  return { maxBatch: deps.cfg.checkoutBatchMax, maxInflight: deps.cfg.checkoutBatchInflight,
    maxWaiting: deps.cfg.pgMaxWaiting };
}

// The batches of a process hang off its deps (one object per lane), so they live and
// die with it; a WeakMap rather than a field keeps Core a plain record of capabilities.
const batchers = new WeakMap<Core, ReturnType<typeof perShard<Part, Outcome>>>();

/** Places one part on its shard, in whatever batch is going there next. */
export function placePart(deps: Core, shard: number, part: Part): Promise<Outcome> {
  let of = batchers.get(deps);
  if (!of) {
    of = perShard<Part, Outcome>((q, parts) => runBatch(q, parts, (q as Shard).index), () => bounds(deps));
    batchers.set(deps, of);
  }
  return of(deps.shards.get(shard)).submit(part);
}
