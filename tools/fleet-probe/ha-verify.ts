// Fleet probe phase `ha-verify`: after the HA proof, every write the engines
// acknowledged (acks.jsonl of `record`) is read back from the host that takes writes
// now. Nothing lost, nothing changed, nothing made twice; the engine's invariants hold
// on our rows; and per phase of the marks file, what the client saw (ha-phases.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { encodeRow } from '../../src/router/ids.js';
import { rowOf, uuidOf } from '../lib/ids.js';
import { checkInvariants, judge, scopeOf, type Scope } from '../lib/invariants.js';
import { sleep } from '../lib/wait.js';
import { Flags, loadState, result, say } from './common.js';
import { findPrimaries, ShardRows, type Primary } from './ha-db.js';
import { parseMarks, phaseStats } from './ha-phases.js';
import { FILES, readJsonl, readRun, type Ack, type AnswerLine, type OrderAck, type PaymentAck, type RunInfo } from './ha-records.js';

/** Where an order may go from a status (src/orders/lifecycle.ts), and a payment (payments/, sql/009: a late success captures a failed or expired one). */
const ORDER_NEXT: Record<string, string[]> = {
  awaiting_payment: ['paid', 'canceled', 'expired'], paid: ['fulfilling', 'shipped', 'completed', 'canceled', 'refunded'],
  fulfilling: ['completed', 'refunded'], shipped: ['completed', 'refunded'],
};
const PAYMENT_NEXT: Record<string, string[]> = { pending: ['succeeded', 'failed', 'expired'], failed: ['succeeded'], expired: ['succeeded'], succeeded: ['refunded'] };

/** `to` is `from` or reachable from it. */
export function laterOrSame(next: Record<string, string[]>, from: string, to: string): boolean {
  const seen = new Set([from]);
  for (const s of seen) for (const n of next[s] ?? []) seen.add(n);
  return seen.has(to);
}

interface Findings { lost: string[]; changed: string[]; duplicated: string[]; notes: string[] }
type Rows = Map<number, ShardRows>;

const groupBy = <T>(xs: T[], k: (x: T) => number) => xs.reduce((m, x) => m.set(k(x), [...(m.get(k(x)) ?? []), x]), new Map<number, T[]>());

/** Keys and ids among the acknowledgements themselves: one key, one order per shard; one order, one key. */
export function duplicatesInAcks(acks: Ack[]): string[] {
  const out: string[] = [];
  const many = (pairs: [string, string][], what: (k: string, vs: string[]) => string) => {
    const m = new Map<string, Set<string>>();
    for (const [k, v] of pairs) m.set(k, (m.get(k) ?? new Set()).add(v));
    for (const [k, vs] of m) if (vs.size > 1) out.push(what(k, [...vs]));
  };
  const orders = acks.filter((a): a is OrderAck => a.k === 'order');
  const payments = acks.filter((a): a is PaymentAck => a.k === 'payment');
  many(orders.map((o) => [`${o.key} on shard ${rowOf(o.id).shard}`, o.id]), (k, vs) => `key ${k} acknowledged orders ${vs.join(', ')}`);
  many(orders.map((o) => [o.id, o.key]), (k, vs) => `order ${k} acknowledged under keys ${vs.join(', ')}`);
  many(payments.map((p) => [p.key, p.id]), (k, vs) => `key ${k} acknowledged payments ${vs.join(', ')}`);
  many(payments.map((p) => [p.id, p.key]), (k, vs) => `payment ${k} acknowledged under keys ${vs.join(', ')}`);
  return out;
}

function uuidOfEmail(run: RunInfo, email: string): string | null {
  const c = run.customers.find((x) => x.email === email);
  return c ? uuidOf(c.id) : null;
}

async function checkOrders(rows: Rows, run: RunInfo, acks: OrderAck[], answers: AnswerLine[], f: Findings): Promise<void> {
  for (const [shard, mine] of groupBy(acks, (o) => rowOf(o.id).shard)) {
    const db = rows.get(shard);
    if (!db) { f.lost.push(...mine.map((o) => `order ${o.id} (key ${o.key}): its shard ${shard} is not in --pg-shards`)); continue; }
    const found = await db.orders(mine.map((o) => rowOf(o.id).local));
    for (const o of mine) {
      const row = found.get(rowOf(o.id).local);
      if (!row) { f.lost.push(`order ${o.id} (key ${o.key}, ${o.total_cents} ${o.currency}) acknowledged, not on shard ${shard}`); continue; }
      const lines = o.items.map((l) => ({ item: rowOf(l.item_id).local, quantity: l.quantity, price_cents: l.price_cents })).sort((a, b) => a.item - b.item);
      const diffs = [
        row.customer !== uuidOf(o.customer_id) || row.customer !== uuidOfEmail(run, o.customer) ? `customer acked ${o.customer} (${o.customer_id}), stored ${row.customer}` : '',
        row.total_cents !== o.total_cents ? `total_cents acked ${o.total_cents}, stored ${row.total_cents}` : '',
        row.currency !== o.currency ? `currency acked ${o.currency}, stored ${row.currency}` : '',
        JSON.stringify(row.lines.map((l) => ({ item: Number(l.item), quantity: l.quantity, price_cents: Number(l.price_cents) }))) !== JSON.stringify(lines) ? `lines acked ${JSON.stringify(lines)}, stored ${JSON.stringify(row.lines)}` : '',
        !laterOrSame(ORDER_NEXT, o.status, row.status) ? `status acked ${o.status}, stored ${row.status} (not a later status)` : '',
        row.request_key !== o.key ? `request key acked ${o.key}, stored ${row.request_key}` : '',
      ].filter(Boolean);
      if (diffs.length) f.changed.push(`order ${o.id}: ${diffs.join('; ')}`);
    }
  }
  await checkOrderKeys(rows, run, acks, answers, f);
}

/** Each key we sent made at most the one order acknowledged for it; keys never acknowledged are counted (given up, or stopped). */
async function checkOrderKeys(rows: Rows, run: RunInfo, acks: OrderAck[], answers: AnswerLine[], f: Findings): Promise<void> {
  const sent = new Map<string, { shard: number; key: string; customer: string }>();
  for (const a of answers) if (a.op === 'create_order' && a.key && a.customer) sent.set(`${a.shard}/${a.key}`, { shard: a.shard, key: a.key, customer: a.customer });
  for (const o of acks) sent.set(`${rowOf(o.id).shard}/${o.key}`, { shard: rowOf(o.id).shard, key: o.key, customer: o.customer });
  let unacked = 0;
  for (const [shard, keys] of groupBy([...sent.values()], (k) => k.shard)) {
    const db = rows.get(shard);
    if (!db) continue;
    const pairs = keys.flatMap((k) => { const uuid = uuidOfEmail(run, k.customer); return uuid ? [{ uuid, key: k.key }] : []; });
    const made = await db.ordersByKey(pairs);
    for (const k of keys) {
      const ids = made.get(k.key) ?? [];
      const acked = acks.filter((o) => o.key === k.key && rowOf(o.id).shard === shard).map((o) => rowOf(o.id).local);
      if (acked.length === 0) { unacked += ids.length; continue; }
      const other = ids.filter((id) => !acked.includes(id));
      const named = (xs: number[]) => xs.map((x) => encodeRow('order', shard, x)).join(', ');
      if (other.length) f.duplicated.push(`key ${k.key} on shard ${shard}: made order(s) ${named(other)} besides the acknowledged ${named(acked)}`);
    }
  }
  f.notes.push(`orders_unacked=${unacked}`);
}

async function checkPayments(rows: Rows, run: RunInfo, acks: PaymentAck[], f: Findings): Promise<void> {
  for (const [shard, mine] of groupBy(acks, (p) => rowOf(p.id).shard)) {
    const db = rows.get(shard);
    if (!db) { f.lost.push(...mine.map((p) => `payment ${p.id}: its shard ${shard} is not in --pg-shards`)); continue; }
    const found = await db.payments(mine.map((p) => rowOf(p.id).local));
    const counts = await db.paymentCounts(mine.map((p) => rowOf(p.order_id).local));
    for (const p of mine) {
      const row = found.get(rowOf(p.id).local);
      if (!row) { f.lost.push(`payment ${p.id} (key ${p.key}, order ${p.order_id}) acknowledged, not on shard ${shard}`); continue; }
      const diffs = [
        row.order_id !== rowOf(p.order_id).local || rowOf(p.order_id).shard !== shard ? `order acked ${p.order_id}, stored local ${row.order_id}` : '',
        row.amount_cents !== p.amount_cents ? `amount_cents acked ${p.amount_cents}, stored ${row.amount_cents}` : '',
        row.currency !== p.currency ? `currency acked ${p.currency}, stored ${row.currency}` : '',
        p.gateway_session_id && row.gateway_session_id !== p.gateway_session_id ? `gateway session acked ${p.gateway_session_id}, stored ${row.gateway_session_id}` : '',
        !laterOrSame(PAYMENT_NEXT, p.status, row.status) ? `status acked ${p.status}, stored ${row.status} (not a later status)` : '',
      ].filter(Boolean);
      if (diffs.length) f.changed.push(`payment ${p.id}: ${diffs.join('; ')}`);
      const n = counts.get(rowOf(p.order_id).local) ?? 0;
      if (n > 1) f.duplicated.push(`order ${p.order_id} has ${n} payments (paid once, under key ${p.key})`);
    }
  }
  await checkPaymentKeys(rows, run, acks, f);
}

/** The idempotency layer's stored answer of each payment key names the acknowledged payment (it lives on the customer's shard). */
async function checkPaymentKeys(rows: Rows, run: RunInfo, acks: PaymentAck[], f: Findings): Promise<void> {
  let missing = 0;
  const home = (p: PaymentAck) => run.customers.find((c) => c.email === p.customer)?.shard ?? -1;
  for (const [shard, mine] of groupBy(acks, home)) {
    const db = rows.get(shard);
    if (!db) continue;
    const stored = await db.idempotencyAnswers(mine.map((p) => ({ uuid: uuidOfEmail(run, p.customer)!, key: p.key })));
    for (const p of mine) {
      const s = stored.get(p.key);
      if (!s) missing++;
      else if (s.id !== null && s.id !== p.id) f.duplicated.push(`payment key ${p.key}: its stored answer names ${s.id}, acknowledged ${p.id}`);
    }
  }
  f.notes.push(`payment_keys_missing=${missing}`);
}

/** `always` rules must hold; `settled` ones are waited for (bounded) and reported, not judged: they need the crons' time. */
async function invariants(primaries: Primary[], scope: Scope, settleMs: number): Promise<{ ok: boolean; settled_ok: boolean; checks: number }> {
  const urls = primaries.map((p) => p.url);
  const always = judge(await checkInvariants(urls, { phase: 'always', scope }), false);
  say(`invariants (always, ${always.checks.length} checks on ${urls.length} shards, our items and customers): ${always.ok ? 'all hold' : `${always.violations.length} broken`}`);
  for (const v of always.violations) say(`  BROKEN ${v}`);
  const started = Date.now();
  let settled = judge(await checkInvariants(urls, { phase: 'settled', scope }), false);
  while (!settled.ok && Date.now() - started < settleMs) {
    await sleep(1000);
    settled = judge(await checkInvariants(urls, { phase: 'settled', scope }), false);
  }
  say(`invariants (settled, reported only): ${settled.ok ? `all hold after ${Date.now() - started} ms` : `not settled within ${settleMs} ms: ${settled.violations.join(' | ')}`}`);
  return { ok: always.ok, settled_ok: settled.ok, checks: always.checks.length };
}

async function checkRows(primaries: Primary[], run: RunInfo, acks: Ack[], answers: AnswerLine[]): Promise<Findings> {
  const f: Findings = { lost: [], changed: [], duplicated: duplicatesInAcks(acks), notes: [] };
  const rows: Rows = new Map();
  try {
    for (const p of primaries) rows.set(p.shard, await ShardRows.open(p));
    await checkOrders(rows, run, acks.filter((a): a is OrderAck => a.k === 'order'), answers, f);
    await checkPayments(rows, run, acks.filter((a): a is PaymentAck => a.k === 'payment'), f);
  } finally {
    await Promise.all([...rows.values()].map((r) => r.close()));
  }
  return f;
}

const note = (f: Findings, k: string) => Number(f.notes.find((n) => n.startsWith(`${k}=`))?.split('=')[1] ?? 0);

export async function haVerify(a: Flags): Promise<boolean> {
  const s = loadState(a.req('state'));
  const dir = a.req('records');
  const run = readRun(dir);
  const acks = readJsonl<Ack>(path.join(dir, FILES.acks));
  const answers = readJsonl<AnswerLine>(path.join(dir, FILES.answers));
  const marks = a.opt('marks') ? parseMarks(readFileSync(a.req('marks'), 'utf8')) : [];
  const primaries = await findPrimaries(a.req('pg-shards'), a.int('timeout-ms', 30_000));
  say(`primaries: ${primaries.map((p) => `shard ${p.shard} ${p.host} (of ${p.hosts})`).join(', ')}`);
  const f = await checkRows(primaries, run, acks, answers);
  const orders = acks.filter((x) => x.k === 'order');
  const payments = acks.filter((x) => x.k === 'payment');
  const lostOrders = f.lost.filter((l) => l.startsWith('order')).length;
  const changedOrders = f.changed.filter((l) => l.startsWith('order')).length;
  say(`orders: ${orders.length} acknowledged, ${lostOrders} lost, ${changedOrders} changed; ${note(f, 'orders_unacked')} made under keys never acknowledged (given up, or in flight at the stop)`);
  say(`payments: ${payments.length} acknowledged, ${f.lost.length - lostOrders} lost, ${f.changed.length - changedOrders} changed; ${note(f, 'payment_keys_missing')} keys without a stored answer`);
  for (const l of f.lost) say(`  LOST ${l}`);
  for (const l of f.changed) say(`  CHANGED ${l}`);
  for (const l of f.duplicated) say(`  DUPLICATED ${l}`);
  const items = s.shards.flatMap((x) => x.items);
  const inv = await invariants(primaries, scopeOf({ items, customers: run.customers.map((c) => c.id) }), a.int('settle-ms', 15_000));
  const shards = s.shards.map((x) => x.shard);
  for (const m of marks) {
    const p = phaseStats(answers, m, shards);
    say(`phase ${m.name}${p.shard === null ? ' (all shards)' : ` (shard ${p.shard})`}: ${p.requests} requests: ${p.ok_2xx} 2xx, ${p.unavailable_503} 503 unavailable, ${p.in_progress_409} 409 in progress (retried), ${p.failed_other} other failures, ${p.refused} refused; ` +
      `${p.failures ? (p.answered_again_ms < 0 ? 'never answered a write again' : `answered writes again ${p.answered_again_ms} ms after BEGIN`) : 'no failure'}; ` +
      `other shards: ${p.failed_other_shards} failed; longest gap between 2xx writes ${p.longest_gap_ms} ms (${Object.entries(p.longest_gap_ms_by_shard).map(([k, v]) => `${k}:${v}`).join(' ')}); ${p.retries} retries, ${p.abandoned} given up${p.open ? '; no END mark' : ''}`);
    result(`phase:${m.name}`, p as unknown as Record<string, unknown>);
  }
  const retries = answers.filter((x) => x.attempt > 1).length;
  const abandoned = answers.filter((x) => x.gave_up).length;
  say(`client: ${answers.length} answers, ${retries} retries, ${abandoned} requests given up`);
  const ok = orders.length > 0 && f.lost.length === 0 && f.changed.length === 0 && f.duplicated.length === 0 && inv.ok;
  result('ha-verify', {
    ok, orders_acked: orders.length, orders_lost: lostOrders, orders_changed: changedOrders, orders_unacked: note(f, 'orders_unacked'),
    payments_acked: payments.length, payments_lost: f.lost.length - lostOrders, payments_changed: f.changed.length - changedOrders,
    payment_keys_missing: note(f, 'payment_keys_missing'), duplicated: f.duplicated.length, invariants_ok: inv.ok, settled_ok: inv.settled_ok,
    answers: answers.length, retries, abandoned, primaries: Object.fromEntries(primaries.map((p) => [String(p.shard), p.host])),
  });
  return ok;
}
