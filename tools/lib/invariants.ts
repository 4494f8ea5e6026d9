// The engine's promises, checked in SQL on every shard: one list for the bench, the
// chaos runner and the tests. Each shard is read in one REPEATABLE READ snapshot: stock,
// holds, orders and ledger change together in one transaction, so any committed snapshot
// keeps every `always` rule even while clients keep writing. The `settled` rules hold
// only once the crons had time (no money left unclaimed, no escrow release half-way).
//
// Scoping: on a stack shared with other clients (the bench beside the test suite, whose
// tests sometimes break rows on purpose), a scope names what the caller could have
// written (item ids per shard, customer uuids); a broken row that involves neither is
// counted as foreign, apart from the caller's own. Without a scope every row is the
// caller's (the chaos runner's own databases).
import pg from 'pg';
import { rowOf, uuidOf } from './ids.js';

/** Which promise a broken rule breaks (the chaos runner's table columns). */
export type Kind = 'oversold' | 'lost' | 'double_charged' | 'half_made' | 'leaked' | 'duplicated' | 'unsettled';
export type Phase = 'always' | 'settled';

export interface Check {
  shard: number;
  name: string;
  kind: Kind;
  ok: boolean;
  /** Broken rows of the caller (every broken row when unscoped). */
  bad: number;
  /** Broken rows outside the scope. */
  foreign: number;
  /** The caller's rows first; each row says whether it is the caller's (`ours`). */
  sample: unknown[];
}

/** What a caller could have written: item local ids per shard, customer uuids. */
export interface Scope { items: Map<number, number[]>; customers: string[] }

/** A scope from the engine's ids (`it_...` items, `us_...` customers), read with its codec. */
export function scopeOf(of: { items?: string[]; customers?: string[] }): Scope {
  const items = new Map<number, number[]>();
  for (const id of of.items ?? []) {
    const { shard, local } = rowOf(id);
    items.set(shard, [...(items.get(shard) ?? []), local]);
  }
  return { items, customers: (of.customers ?? []).map(uuidOf) };
}

interface Rule { name: string; kind: Kind; phase: Phase; sql: string; blame?: string }

/**
 * Whether a row is the caller's: its item or its customer is in the scope ($1 item local
 * ids of the shard, $2 customer uuids), or there is no scope ($3 false). Every rule
 * selects it, so every rule takes the same three parameters.
 */
function ours(item: string | null, customer: string | null): string {
  return `(NOT $3::boolean OR coalesce(${item ?? 'NULL::bigint'} = ANY($1::bigint[]), false) OR coalesce(${customer ?? 'NULL::uuid'} = ANY($2::uuid[]), false))`;
}

const customerOfOrder = (orderId: string) => `(SELECT customer_id FROM orders WHERE id = ${orderId})`;

const RULES: Rule[] = [
  {
    name: 'stock never negative', kind: 'oversold', phase: 'always',
    sql: `SELECT i.id, i.available, i.held, i.sold, ${ours('i.id', null)} AS ours FROM items i WHERE i.available < 0 OR i.held < 0 OR i.sold < 0`,
  },
  {
    name: 'available + held + sold = stocked', kind: 'oversold', phase: 'always',
    sql: `SELECT i.id, i.available, i.held, i.sold, i.stocked, ${ours('i.id', null)} AS ours FROM items i WHERE i.available + i.held + i.sold <> i.stocked`,
  },
  {
    name: 'held = sum of active holds', kind: 'leaked', phase: 'always',
    sql: `SELECT i.id, i.held, coalesce(h.q, 0) AS active_hold_units, ${ours('i.id', null)} AS ours FROM items i
          LEFT JOIN (SELECT item_id, sum(quantity)::bigint AS q FROM holds WHERE status = 'active' GROUP BY item_id) h ON h.item_id = i.id
          WHERE i.held <> coalesce(h.q, 0)`,
  },
  {
    name: 'no active hold on a closed order', kind: 'leaked', phase: 'always',
    sql: `SELECT h.id, h.order_id, o.status, ${ours('h.item_id', 'o.customer_id')} AS ours FROM holds h JOIN orders o ON o.id = h.order_id
          WHERE h.status = 'active' AND o.status <> 'awaiting_payment'`,
  },
  {
    name: 'per-customer counts = active + consumed holds', kind: 'leaked', phase: 'always',
    sql: `SELECT c.customer_id, c.item_id, c.quantity, coalesce(h.q, 0) AS held, ${ours('c.item_id', 'c.customer_id')} AS ours FROM customer_limits c
          LEFT JOIN (SELECT customer_id, item_id, sum(quantity)::int AS q FROM holds WHERE status IN ('active', 'consumed') GROUP BY 1, 2) h
            ON h.customer_id = c.customer_id AND h.item_id = c.item_id
          WHERE c.quantity <> coalesce(h.q, 0)`,
  },
  {
    name: 'every order has lines', kind: 'half_made', phase: 'always',
    sql: `SELECT o.id, ${ours(null, 'o.customer_id')} AS ours FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)`,
  },
  {
    name: 'order total = sum of its lines', kind: 'half_made', phase: 'always',
    sql: `SELECT o.id, o.total_cents, s.total, ${ours(null, 'o.customer_id')} AS ours FROM orders o
          JOIN (SELECT order_id, sum(quantity * price_cents)::bigint AS total FROM order_lines GROUP BY 1) s ON s.order_id = o.id
          WHERE o.total_cents <> s.total`,
  },
  {
    name: 'every order has one hold per line', kind: 'half_made', phase: 'always',
    sql: `SELECT l.order_id, l.item_id, ${ours('l.item_id', customerOfOrder('l.order_id'))} AS ours FROM order_lines l
          WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.order_id = l.order_id AND h.item_id = l.item_id)`,
  },
  {
    name: 'each transition recorded once', kind: 'duplicated', phase: 'always',
    sql: `SELECT e.order_id, e.to_status, count(*)::int AS n, ${ours(null, customerOfOrder('e.order_id'))} AS ours FROM order_events e
          GROUP BY 1, 2 HAVING count(*) > 1`,
  },
  {
    // The promise is the sum per currency; when it breaks, the unbalanced transfers say whose it is.
    name: 'ledger sums to zero per currency', kind: 'lost', phase: 'always',
    sql: `SELECT currency, sum(amount_cents)::bigint AS sum, ${ours(null, null)} AS ours FROM ledger_entries GROUP BY currency HAVING sum(amount_cents) <> 0`,
    blame: `SELECT l.transfer_id, l.order_id, l.currency, sum(l.amount_cents)::bigint AS sum, bool_or(${ours(null, 'o.customer_id')}) AS ours
            FROM ledger_entries l LEFT JOIN orders o ON o.id = l.order_id GROUP BY 1, 2, 3 HAVING sum(l.amount_cents) <> 0`,
  },
  {
    name: 'no finished order keeps escrow', kind: 'lost', phase: 'always',
    sql: `SELECT o.id, o.status, sum(l.amount_cents)::bigint AS escrow, ${ours(null, 'o.customer_id')} AS ours FROM orders o JOIN ledger_entries l ON l.order_id = o.id
          WHERE l.account = 'escrow' AND o.status IN ('completed', 'refunded', 'canceled', 'expired', 'failed')
          GROUP BY o.id, o.status, o.customer_id HAVING sum(l.amount_cents) <> 0`,
  },
  {
    name: 'every captured payment is in the ledger', kind: 'lost', phase: 'always',
    sql: `SELECT p.id, p.status, ${ours(null, customerOfOrder('p.order_id'))} AS ours FROM payments p
          WHERE (p.status = 'refunded' OR p.escrow IN ('held', 'releasing', 'released'))
          AND NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.payment_id = p.id AND l.kind = 'capture')`,
  },
  {
    name: 'one kept capture per order', kind: 'double_charged', phase: 'always',
    sql: `SELECT p.order_id, count(*)::int AS kept, ${ours(null, customerOfOrder('p.order_id'))} AS ours FROM payments p
          WHERE p.status = 'succeeded' GROUP BY 1 HAVING count(*) > 1`,
  },
  {
    name: 'a placed order is paid by a kept payment', kind: 'lost', phase: 'always',
    sql: `SELECT o.id, o.status, p.status AS payment, ${ours(null, 'o.customer_id')} AS ours FROM orders o LEFT JOIN payments p ON p.id = o.payment_id
          WHERE o.status IN ('paid', 'fulfilling', 'shipped', 'completed') AND (p.id IS NULL OR p.status <> 'succeeded')`,
  },
  {
    name: 'unclaimed money refunded', kind: 'unsettled', phase: 'settled',
    sql: `SELECT p.id, o.status, ${ours(null, 'o.customer_id')} AS ours FROM payments p JOIN orders o ON o.id = p.order_id
          WHERE p.status = 'succeeded' AND p.escrow = 'held' AND (o.payment_id IS DISTINCT FROM p.id OR o.status IN ('expired', 'canceled', 'failed'))`,
  },
  {
    name: 'no escrow release left half-way', kind: 'unsettled', phase: 'settled',
    sql: `SELECT p.id, p.order_id, ${ours(null, customerOfOrder('p.order_id'))} AS ours FROM payments p WHERE p.escrow = 'releasing'`,
  },
  {
    name: 'expired holds swept', kind: 'unsettled', phase: 'settled',
    sql: `SELECT o.id, ${ours(null, 'o.customer_id')} AS ours FROM orders o WHERE o.status = 'awaiting_payment' AND o.hold_expires_at < now() - interval '10 seconds'`,
  },
  {
    name: 'paid instant orders completed', kind: 'unsettled', phase: 'settled',
    sql: `SELECT o.id, o.status, ${ours(null, 'o.customer_id')} AS ours FROM orders o WHERE o.status IN ('paid', 'fulfilling') AND o.updated_at < now() - interval '1 second'
          AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.fulfillment = 'shipment')`,
  },
];

/** The rules' names by phase (documentation, tests). */
export const RULE_NAMES: Record<Phase, string[]> = {
  always: RULES.filter((r) => r.phase === 'always').map((r) => r.name),
  settled: RULES.filter((r) => r.phase === 'settled').map((r) => r.name),
};

const SAMPLE = 10;

type Row = Record<string, unknown> & { ours: boolean };

function toCheck(shard: number, rule: Rule, rows: Row[]): Check {
  const mine = rows.filter((r) => r.ours);
  const others = rows.filter((r) => !r.ours);
  return { shard, name: rule.name, kind: rule.kind, ok: rows.length === 0, bad: mine.length, foreign: others.length, sample: [...mine, ...others].slice(0, SAMPLE) };
}

async function checkShard(url: string, shard: number, rules: Rule[], scope: Scope | undefined): Promise<Check[]> {
  const c = new pg.Client({ connectionString: url, statement_timeout: 120_000, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const params = [scope?.items.get(shard) ?? [], scope?.customers ?? [], scope !== undefined];
    const out: Check[] = [];
    for (const rule of rules) {
      let rows = (await c.query<Row>(rule.sql, params)).rows;
      if (rows.length && scope && rule.blame) {
        const blamed = (await c.query<Row>(rule.blame, params)).rows;
        // Unbalanced in sum with every transfer balanced: nobody to blame, so it is the caller's.
        rows = blamed.length ? blamed : rows.map((r) => ({ ...r, ours: true }));
      }
      out.push(toCheck(shard, rule, rows));
    }
    await c.query('COMMIT');
    return out;
  } finally {
    await c.end();
  }
}

/**
 * The rules of one phase (both by default) on every shard, the shards at once; a
 * shard that cannot be read throws (a check that did not run is not a pass).
 */
export async function checkInvariants(shards: string[], opts: { phase?: Phase; scope?: Scope } = {}): Promise<Check[]> {
  const rules = RULES.filter((r) => !opts.phase || r.phase === opts.phase);
  return (await Promise.all(shards.map((url, shard) => checkShard(url, shard, rules, opts.scope)))).flat();
}

export interface InvariantReport { ok: boolean; strict: boolean; checks: Check[]; violations: string[]; foreign: string[] }

/** Checks as a verdict: the caller's broken rows fail it, foreign ones too when strict. */
export function judge(checks: Check[], strict: boolean): InvariantReport {
  const rowsOf = (c: Check, mine: boolean) => c.sample.filter((r) => (r as Row).ours === mine);
  const describe = (c: Check, n: number, rows: unknown[]) => `shard ${c.shard}: ${c.name}: ${n} bad row(s), e.g. ${JSON.stringify(rows.slice(0, 3))}`;
  const violations = checks.filter((c) => c.bad > 0 || (strict && c.foreign > 0))
    .map((c) => describe(c, strict ? c.bad + c.foreign : c.bad, strict ? c.sample : rowsOf(c, true)));
  const foreign = checks.filter((c) => c.foreign > 0)
    .map((c) => `${describe(c, c.foreign, rowsOf(c, false))} (rows this run never touched)`);
  return { ok: violations.length === 0, strict, checks, violations, foreign };
}

/** The caller's broken rows of one kind. */
export function countKind(checks: Check[], kind: Kind): number {
  return checks.filter((c) => c.kind === kind).reduce((s, c) => s + c.bad, 0);
}

/** One line per check the caller broke. */
export function broken(checks: Check[]): string[] {
  return checks.filter((c) => c.bad > 0).map((c) => `shard ${c.shard}: ${c.name}: ${c.bad} bad, e.g. ${JSON.stringify(c.sample.slice(0, 5))}`);
}
