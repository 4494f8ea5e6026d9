// The engine's correctness invariants (stock, holds, ledger), checked on every shard after the load, in one
// REPEATABLE READ snapshot per shard (holds and stock change in one transaction, so
// any committed snapshot must balance even while other clients keep writing).
//
// Every item on every shard is checked. The local stack is shared with the test
// suite, whose tests sometimes fabricate broken rows on purpose (e.g. units "held"
// by a raw UPDATE, to test the stock floor), so a broken row the bench never touched
// is reported as foreign and fails the run only with --strict-invariants. A broken
// row of a bench item, or an unbalanced transfer of a bench customer's order, fails.
import { onShards } from './fixture.js';

/** What this run could have written: item local ids per shard, and customer uuids. */
export interface Scope { items: Map<number, number[]>; customers: string[] }

export interface Check { shard: number; name: string; ok: boolean; bad_rows: number; foreign_rows: number; sample: unknown[] }
export interface InvariantReport { ok: boolean; strict: boolean; checks: Check[]; violations: string[]; foreign: string[] }

const SAMPLE = 10;
const OURS = '(i.id = ANY($1::bigint[]))';

const ITEM_CHECKS: { name: string; sql: string }[] = [
  {
    name: 'no negative available/held/sold',
    sql: `SELECT i.id, i.available, i.held, i.sold, ${OURS} AS ours FROM items i WHERE i.available < 0 OR i.held < 0 OR i.sold < 0`,
  },
  {
    name: 'available + held + sold = stocked',
    sql: `SELECT i.id, i.available, i.held, i.sold, i.stocked, ${OURS} AS ours FROM items i WHERE i.available + i.held + i.sold <> i.stocked`,
  },
  {
    name: 'held = sum of active holds',
    sql: `SELECT i.id, i.held, coalesce(h.q, 0) AS active_hold_units, ${OURS} AS ours FROM items i
          LEFT JOIN (SELECT item_id, sum(quantity)::bigint AS q FROM holds WHERE status = 'active' GROUP BY item_id) h ON h.item_id = i.id
          WHERE i.held <> coalesce(h.q, 0)`,
  },
];

// The invariant is the sum per currency; when it breaks, the unbalanced transfers say whose it is.
const LEDGER_SUM = 'SELECT currency, sum(amount_cents)::bigint AS sum FROM ledger_entries GROUP BY currency HAVING sum(amount_cents) <> 0';
const LEDGER_BLAME = `SELECT l.transfer_id, l.order_id, l.currency, sum(l.amount_cents)::bigint AS sum, coalesce(bool_or(o.customer_id = ANY($1::uuid[])), false) AS ours
  FROM ledger_entries l LEFT JOIN orders o ON o.id = l.order_id GROUP BY 1, 2, 3 HAVING sum(l.amount_cents) <> 0`;

type Row = Record<string, unknown> & { ours: boolean };

function toCheck(shard: number, name: string, rows: Row[]): Check {
  const ours = rows.filter((r) => r.ours);
  return { shard, name, ok: rows.length === 0, bad_rows: ours.length, foreign_rows: rows.length - ours.length, sample: [...ours, ...rows.filter((r) => !r.ours)].slice(0, SAMPLE) };
}

export async function checkInvariants(shards: string[], scope: Scope, strict: boolean): Promise<InvariantReport> {
  const perShard = await onShards(shards, async (c, shard) => {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const out: Check[] = [];
      for (const check of ITEM_CHECKS) out.push(toCheck(shard, check.name, (await c.query<Row>(check.sql, [scope.items.get(shard) ?? []])).rows));
      const hasLedger = (await c.query('SELECT to_regclass($1) IS NOT NULL AS present', ['ledger_entries'])).rows[0].present as boolean;
      if (hasLedger) {
        const sums = (await c.query(LEDGER_SUM)).rows;
        const blamed = sums.length ? (await c.query<Row>(LEDGER_BLAME, [scope.customers])).rows : [];
        const rows: Row[] = sums.length && blamed.length === 0 ? sums.map((s) => ({ ...s, ours: true })) : blamed;
        out.push(toCheck(shard, 'ledger sums to zero per currency', rows));
      }
      return out;
    } finally {
      await c.query('COMMIT');
    }
  });
  const checks = perShard.flat();
  const describe = (c: Check, n: number, rows: unknown[]) => `shard ${c.shard}: ${c.name}: ${n} bad row(s), e.g. ${JSON.stringify(rows.slice(0, 3))}`;
  const violations = checks.filter((c) => c.bad_rows > 0 || (strict && c.foreign_rows > 0))
    .map((c) => describe(c, strict ? c.bad_rows + c.foreign_rows : c.bad_rows, strict ? c.sample : c.sample.filter((r) => (r as Row).ours)));
  const foreign = checks.filter((c) => c.foreign_rows > 0)
    .map((c) => describe(c, c.foreign_rows, c.sample.filter((r) => !(r as Row).ours)) + ' (rows this run never touched)');
  return { ok: violations.length === 0, strict, checks, violations, foreign };
}
