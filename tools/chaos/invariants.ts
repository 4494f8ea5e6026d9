// What must hold after any fault, checked in SQL on every shard of the runner's own
// database (so every row is the run's own: the checks are strict). Each check names
// the promise it keeps and counts toward one of the table's columns.
import type { HttpClient } from '../lib/http.js';
import { sleep } from '../lib/wait.js';
import { checkGatewayAgrees } from './gateway-ledger.js';
import type { ChaosStack } from './stack.js';

export type Kind = 'oversold' | 'lost' | 'double_charged' | 'half_made' | 'leaked' | 'duplicated' | 'unsettled';

export interface Check { shard: number; name: string; kind: Kind; bad: number; sample: unknown[] }

interface Rule { name: string; kind: Kind; sql: string }

const RULES: Rule[] = [
  { name: 'stock never negative', kind: 'oversold', sql: 'SELECT id, available, held, sold FROM items WHERE available < 0 OR held < 0 OR sold < 0' },
  { name: 'available + held + sold = stocked', kind: 'oversold', sql: 'SELECT id, available, held, sold, stocked FROM items WHERE available + held + sold <> stocked' },
  {
    name: 'held = sum of active holds', kind: 'leaked',
    sql: `SELECT i.id, i.held, coalesce(h.q, 0) AS active FROM items i
          LEFT JOIN (SELECT item_id, sum(quantity)::int AS q FROM holds WHERE status = 'active' GROUP BY item_id) h ON h.item_id = i.id
          WHERE i.held <> coalesce(h.q, 0)`,
  },
  {
    name: 'no active hold on a closed order', kind: 'leaked',
    sql: `SELECT h.id, h.order_id, o.status FROM holds h JOIN orders o ON o.id = h.order_id WHERE h.status = 'active' AND o.status <> 'awaiting_payment'`,
  },
  {
    name: 'per-customer counts = active + consumed holds', kind: 'leaked',
    sql: `SELECT c.customer_id, c.item_id, c.quantity, coalesce(h.q, 0) AS held FROM customer_limits c
          LEFT JOIN (SELECT customer_id, item_id, sum(quantity)::int AS q FROM holds WHERE status IN ('active', 'consumed') GROUP BY 1, 2) h
            ON h.customer_id = c.customer_id AND h.item_id = c.item_id
          WHERE c.quantity <> coalesce(h.q, 0)`,
  },
  { name: 'every order has lines', kind: 'half_made', sql: 'SELECT o.id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)' },
  {
    name: 'order total = sum of its lines', kind: 'half_made',
    sql: `SELECT o.id, o.total_cents, s.total FROM orders o JOIN (SELECT order_id, sum(quantity * price_cents)::bigint AS total FROM order_lines GROUP BY 1) s
          ON s.order_id = o.id WHERE o.total_cents <> s.total`,
  },
  {
    name: 'every order has one hold per line', kind: 'half_made',
    sql: `SELECT l.order_id, l.item_id FROM order_lines l WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.order_id = l.order_id AND h.item_id = l.item_id)`,
  },
  {
    name: 'each transition recorded once', kind: 'duplicated',
    sql: 'SELECT order_id, to_status, count(*)::int AS n FROM order_events GROUP BY 1, 2 HAVING count(*) > 1',
  },
  { name: 'ledger sums to zero per currency', kind: 'lost', sql: 'SELECT currency, sum(amount_cents)::bigint AS sum FROM ledger_entries GROUP BY 1 HAVING sum(amount_cents) <> 0' },
  {
    name: 'no finished order keeps escrow', kind: 'lost',
    sql: `SELECT o.id, o.status, sum(l.amount_cents)::bigint AS escrow FROM orders o JOIN ledger_entries l ON l.order_id = o.id
          WHERE l.account = 'escrow' AND o.status IN ('completed', 'refunded', 'canceled', 'expired', 'failed') GROUP BY 1, 2 HAVING sum(l.amount_cents) <> 0`,
  },
  {
    name: 'every captured payment is in the ledger', kind: 'lost',
    sql: `SELECT p.id, p.status FROM payments p WHERE (p.status = 'refunded' OR p.escrow IN ('held', 'releasing', 'released'))
          AND NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.payment_id = p.id AND l.kind = 'capture')`,
  },
  {
    name: 'one kept capture per order', kind: 'double_charged',
    sql: `SELECT order_id, count(*)::int AS kept FROM payments WHERE status = 'succeeded' GROUP BY 1 HAVING count(*) > 1`,
  },
  {
    name: 'a placed order is paid by a kept payment', kind: 'lost',
    sql: `SELECT o.id, o.status, p.status AS payment FROM orders o LEFT JOIN payments p ON p.id = o.payment_id
          WHERE o.status IN ('paid', 'fulfilling', 'shipped', 'completed') AND (p.id IS NULL OR p.status <> 'succeeded')`,
  },
];

// Once the faults are over and the crons had time: nothing left half-way.
const SETTLED: Rule[] = [
  {
    name: 'unclaimed money refunded', kind: 'unsettled',
    sql: `SELECT p.id, o.status FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.status = 'succeeded' AND p.escrow = 'held'
          AND (o.payment_id IS DISTINCT FROM p.id OR o.status IN ('expired', 'canceled', 'failed'))`,
  },
  { name: 'no escrow release left half-way', kind: 'unsettled', sql: `SELECT id, order_id FROM payments WHERE escrow = 'releasing'` },
  { name: 'expired holds swept', kind: 'unsettled', sql: `SELECT id FROM orders WHERE status = 'awaiting_payment' AND hold_expires_at < now() - interval '10 seconds'` },
  {
    name: 'paid instant orders completed', kind: 'unsettled',
    sql: `SELECT o.id, o.status FROM orders o WHERE o.status IN ('paid', 'fulfilling') AND o.updated_at < now() - interval '1 second'
          AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.fulfillment = 'shipment')`,
  },
];

const SAMPLE = 5;

async function run(stack: ChaosStack, rules: Rule[]): Promise<Check[]> {
  const perShard = await Promise.all(stack.shardUrls.map(async (_, shard) => {
    const out: Check[] = [];
    for (const r of rules) {
      const rows = await stack.sql(shard, r.sql);
      out.push({ shard, name: r.name, kind: r.kind, bad: rows.length, sample: rows.slice(0, SAMPLE) });
    }
    return out;
  }));
  return perShard.flat();
}

export const checkInvariants = (stack: ChaosStack) => run(stack, RULES);
export const checkSettled = (stack: ChaosStack) => run(stack, SETTLED);

export function countKind(checks: Check[], kind: Kind): number {
  return checks.filter((c) => c.kind === kind).reduce((s, c) => s + c.bad, 0);
}

export function broken(checks: Check[]): string[] {
  return checks.filter((c) => c.bad > 0).map((c) => `shard ${c.shard}: ${c.name}: ${c.bad} bad, e.g. ${JSON.stringify(c.sample)}`);
}

/**
 * Polls the settled checks (with a gateway: also that its books and ours agree) until
 * they pass or the time is up; returns the last result.
 */
export async function waitSettled(stack: ChaosStack, timeoutMs: number, gateway?: HttpClient): Promise<{ checks: Check[]; ms: number }> {
  const started = Date.now();
  const once = async () => [...(await checkSettled(stack)), ...(gateway ? await checkGatewayAgrees(stack, gateway, true) : [])];
  let checks = await once();
  while (checks.some((c) => c.bad > 0) && Date.now() - started < timeoutMs) {
    await sleep(500);
    checks = await once();
  }
  return { checks, ms: Date.now() - started };
}
