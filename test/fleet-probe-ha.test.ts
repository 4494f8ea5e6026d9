// The HA proof's client and judge (fleet-probe record and ha-verify), run as the proof
// runs them, against the suite's engine and shards: a few seconds of checkouts and card
// payments are recorded and every acknowledged write is found as acknowledged; failed
// attempts are retried with the same key and nothing is made twice; acks tampered
// (a total changed, an order that does not exist, a key with two orders) each fail the
// verifier by name; each shard's primary is the one host that takes writes, or a clear
// refusal; and the per-phase arithmetic on a hand-written answers file.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { encodeRow } from '../src/router/ids.js';
import { hostName, parseShardUrl, splitShardList } from '../src/shard/hosts.js';
import { findPrimaries } from '../tools/fleet-probe/ha-db.js';
import { retryable, type AnswerLine, type OrderAck } from '../tools/fleet-probe/ha-records.js';
import { answeredAgain, parseMarks, phaseStats } from '../tools/fleet-probe/ha-phases.js';
import { TOOLS_DIST_DIR } from '../tools/lib/paths.js';
import { rowOf } from '../tools/lib/ids.js';
import { world } from './helpers/api.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, ENGINE_URL, GATEWAY_URL } from './setup/env.js';

const PROBE = path.join(TOOLS_DIST_DIR, 'fleet-probe', 'main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bf-probe-ha-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

interface Run { code: number | null; out: string }

/** The probe as bash runs it: a child process, bounded; `during` runs while it does. */
async function probe(args: string[], limitMs = 90_000, during?: () => Promise<void>): Promise<Run> {
  const child = spawn(process.execPath, [PROBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await during?.();
  const code = await exited;
  clearTimeout(killer);
  return { code, out };
}

function resultOf(out: string, phase: string): Record<string, any> {
  const line = out.split('\n').find((l) => l.startsWith(`RESULT ${phase} `));
  if (!line) throw new Error(`no RESULT ${phase} line in:\n${out}`);
  return JSON.parse(line.slice(`RESULT ${phase} `.length));
}

const state = path.join(tmp, 'state.json');
const records = path.join(tmp, 'records');
const marks = path.join(tmp, 'marks');
const verifyArgs = (dir: string, extra: string[] = []) => ['ha-verify', '--state', state, '--records', dir, '--pg-shards', world.shards, ...extra];

t.test('record steady checkouts and card payments, then find every acknowledged write as acknowledged', async (t) => {
  const setup = await probe(['setup', '--engines', ENGINE_URL, '--admin-email', ADMIN_EMAIL, '--admin-password', ADMIN_PASSWORD, '--state', state]);
  t.equal(setup.code, 0, `setup exits 0\n${setup.out}`);

  const stop = path.join(tmp, 'stop');
  const begin = Date.now();
  const rec = await probe(['record', '--state', state, '--out', records, '--stop-file', stop, '--gateway', GATEWAY_URL, '--concurrency', '4', '--max-ms', '60000'], 90_000, async () => {
    await new Promise((r) => setTimeout(r, 3000));
    writeFileSync(marks, `BEGIN steady ${begin}\nSHARD steady 1\nEND steady ${Date.now()}\n`);
    writeFileSync(stop, '');
  });
  t.equal(rec.code, 0, `record exits 0\n${rec.out}`);
  const r = resultOf(rec.out, 'record');
  t.ok(r.orders > 0 && r.payments > 0 && r.paid_at_gateway > 0, `orders ${r.orders}, payments ${r.payments}, paid at the gateway ${r.paid_at_gateway}`);

  const status = Object.fromEntries(readFileSync(path.join(records, 'status'), 'utf8').trim().split('\n').map((l) => l.split('=')));
  t.equal(Number(status.ORDERS), r.orders, 'the status file counts the acknowledged orders');
  for (const s of [0, 1, 2]) t.ok(Number(status[`LAST_OK_MS_${s}`]) >= begin, `shard ${s} took writes (LAST_OK_MS_${s})`);
  const answers = readFileSync(path.join(records, 'answers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AnswerLine);
  t.ok(answers.some((a) => a.op === 'get_item') && answers.some((a) => a.op === 'pay_gateway'), 'reads and gateway completions are recorded too');
  t.same(new Set(answers.map((a) => a.shard)), new Set([0, 1, 2]), 'every shard is in the answers');

  const v = await probe(verifyArgs(records, ['--marks', marks]));
  t.equal(v.code, 0, `ha-verify exits 0\n${v.out}`);
  const res = resultOf(v.out, 'ha-verify');
  t.match(res, { ok: true, orders_lost: 0, orders_changed: 0, payments_lost: 0, duplicated: 0, invariants_ok: true }, 'nothing lost, changed or duplicated; invariants hold');
  t.equal(res.orders_acked, r.orders, 'every acknowledged order was checked');
  t.equal(res.payments_acked, r.payments, 'every acknowledged payment was checked');
  const phase = resultOf(v.out, 'phase:steady');
  t.equal(phase.shard, 1, 'the phase names its shard');
  t.ok(phase.ok_2xx > 0 && phase.unavailable_503 === 0 && phase.failed_other_shards === 0, `a healthy phase: ${JSON.stringify(phase)}`);
});

t.test('an engine that refuses and answers past the deadline: retried with the same key, nothing made twice', async (t) => {
  // A second "engine" that refuses every connection, and a deadline about as short as
  // the engine's median answer: retries go to the next engine with the same key and
  // body, and a checkout whose answer came too late is replayed (or found in progress),
  // never made again.
  const s = JSON.parse(readFileSync(state, 'utf8'));
  const flaky = path.join(tmp, 'state-flaky.json');
  writeFileSync(flaky, JSON.stringify({ ...s, engines: [ENGINE_URL, 'http://127.0.0.1:1'] }));
  const dir = path.join(tmp, 'records-flaky');
  const stop = path.join(tmp, 'stop-flaky');
  const rec = await probe(['record', '--state', flaky, '--out', dir, '--stop-file', stop, '--gateway', GATEWAY_URL, '--concurrency', '4',
    '--timeout-ms', '10', '--give-up-ms', '30000'], 90_000, async () => {
    await new Promise((r) => setTimeout(r, 2000));
    writeFileSync(stop, '');
  });
  const r = resultOf(rec.out, 'record');
  t.ok(r.orders > 0 && r.retries > 0 && r.failed > 0, `orders ${r.orders}, failed answers ${r.failed}, retries ${r.retries}, given up ${r.abandoned}`);
  const answers = readFileSync(path.join(dir, 'answers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AnswerLine);
  const byKey = new Map<string, AnswerLine[]>();
  for (const a of answers) if (a.key) byKey.set(a.key, [...(byKey.get(a.key) ?? []), a]);
  const retried = [...byKey.values()].filter((xs) => xs.length > 1);
  t.ok(retried.length > 0, `${retried.length} writes were retried`);
  t.ok(retried.every((xs) => xs.map((x) => x.attempt).join() === xs.map((_, i) => i + 1).join()), 'each retry is the next attempt of the same key');
  t.ok(answers.some((a) => a.retry && a.engine === '127.0.0.1:1' && a.type === 'ECONNREFUSED'), 'the refused connections are recorded as failures');
  const late = [...byKey.values()].filter((xs) => xs.some((x) => x.type === 'timeout') && xs.some((x) => x.status === 201)).length;
  t.comment(`${late} writes acknowledged after an attempt past its deadline (how many depends on the machine's speed)`);
  const v = await probe(verifyArgs(dir, ['--settle-ms', '0']));
  t.equal(v.code, 0, `ha-verify exits 0\n${v.out}`);
  t.match(resultOf(v.out, 'ha-verify'), { ok: true, orders_lost: 0, orders_changed: 0, duplicated: 0 }, 'every acknowledged write is there once');
});

/** A copy of the records whose acks.jsonl `edit` rewrote. */
function tampered(name: string, edit: (acks: OrderAck[]) => OrderAck[]): string {
  const dir = path.join(tmp, name);
  cpSync(records, dir, { recursive: true });
  const file = path.join(dir, 'acks.jsonl');
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const orders = lines.filter((a) => a.k === 'order') as OrderAck[];
  const others = lines.filter((a) => a.k !== 'order');
  writeFileSync(file, [...edit(orders), ...others].map((a) => JSON.stringify(a)).join('\n') + '\n');
  return dir;
}

t.test('the verifier fails, by name, on tampered acknowledgements', async (t) => {
  const changed = tampered('changed', (os) => os.map((o, i) => (i === 0 ? { ...o, total_cents: o.total_cents + 1 } : o)));
  let v = await probe(verifyArgs(changed, ['--settle-ms', '0']));
  t.equal(v.code, 1, 'a changed total: exit 1');
  t.match(v.out, /CHANGED order or_\S+: total_cents acked \d+, stored \d+/, 'names the order and its total');
  t.match(resultOf(v.out, 'ha-verify'), { ok: false, orders_changed: 1, orders_lost: 0, duplicated: 0 });

  let ghost = '';
  const lost = tampered('lost', (os) => {
    ghost = encodeRow('order', 1, 2_000_000_000);
    return [...os, { ...os[0]!, id: ghost, key: `${os[0]!.key}-ghost` }];
  });
  v = await probe(verifyArgs(lost, ['--settle-ms', '0']));
  t.equal(v.code, 1, 'an order that is not there: exit 1');
  t.match(v.out, new RegExp(`LOST order ${ghost} `), 'names the lost order');
  t.match(resultOf(v.out, 'ha-verify'), { ok: false, orders_lost: 1 });

  let key = '';
  const dup = tampered('dup', (os) => {
    const a = os[0]!;
    const b = os.find((o) => o.id !== a.id && rowOf(o.id).shard === rowOf(a.id).shard)!;
    key = a.key;
    return [...os, { ...a, id: b.id }];
  });
  v = await probe(verifyArgs(dup, ['--settle-ms', '0']));
  t.equal(v.code, 1, 'one key, two orders: exit 1');
  t.match(v.out, new RegExp(`DUPLICATED key ${key} on shard \\d acknowledged orders`), 'names the key');
  t.ok(resultOf(v.out, 'ha-verify').duplicated >= 1, 'counted as duplicated');

  let made = '';
  const swapped = tampered('swapped', (os) => {
    const a = os[0]!;
    const b = os.find((o) => o.id !== a.id && rowOf(o.id).shard === rowOf(a.id).shard)!;
    key = a.key;
    made = a.id;
    return os.map((o) => (o === a ? { ...a, id: b.id } : o));
  });
  v = await probe(verifyArgs(swapped, ['--settle-ms', '0']));
  t.equal(v.code, 1, 'a key acknowledged with another order than the one it made: exit 1');
  t.match(v.out, new RegExp(`DUPLICATED key ${key} on shard \\d: made order\\(s\\) ${made} besides the acknowledged`), 'the database names the order the key made');
});

t.test("each shard's primary: the one host that takes writes, or a clear refusal", async (t) => {
  const [a, b] = splitShardList(world.shards).map((u) => hostName(parseShardUrl(u).hosts[0]!));
  const url = (hosts: string) => splitShardList(world.shards)[0]!.replace(/@[^/]+\//, `@${hosts}/`);
  const [p] = await findPrimaries(`${url(`127.0.0.1:1,${b}`)}?target_session_attrs=read-write`, 0);
  t.match(p, { shard: 0, host: b, hosts: 2 }, 'a dead host and a primary: the primary');
  await t.rejects(findPrimaries(url('127.0.0.1:1'), 0), /shard 0 .*no host takes writes: 127\.0\.0\.1:1 unreachable \(ECONNREFUSED\)/, 'none: refused, naming the host');
  await t.rejects(findPrimaries(url(`${a},${b}`), 0), /shard 0 .*2 hosts take writes/, 'two: refused');
});

t.test('per-phase arithmetic on a hand-written answers file', async (t) => {
  const B = 1_000_000;
  const ok = (status: number) => status >= 200 && status < 300;
  const a = (dt: number, shard: number, status: number, extra: Partial<AnswerLine> = {}): AnswerLine => ({
    t: B + dt, ms: 20, op: 'create_order', shard, status, type: ok(status) ? '-' : status === 503 ? 'unavailable' : 'timeout', engine: 'e1:80', attempt: 1,
    ...(ok(status) ? {} : { retry: true as const }), ...extra,
  });
  const answers: AnswerLine[] = [
    a(-500, 1, 201),                 // before the phase: not counted
    a(100, 1, 201),
    a(1000, 1, 503), a(1500, 1, 0, { ms: 6000 }), a(2000, 1, 503, { attempt: 2 }),
    a(2500, 1, 409, { type: 'conflict', attempt: 3 }),
    a(2600, 1, 409, { type: 'conflict', code: 'idempotency_in_progress', attempt: 3 }), // its first attempt still runs: retried, not failed
    a(3000, 1, 201, { attempt: 4 }), // the first write after the last failure: answered at 3020
    a(3100, 1, 200, { op: 'get_item' }),
    a(1200, 0, 201), a(2200, 0, 503), a(2600, 0, 201),
    a(2700, 2, 201),
    a(3200, 1, 404, { type: 'not_found', retry: undefined }),
    a(3300, 1, 0, { op: 'pay_gateway' }), // the gateway is no shard
  ];
  const [m] = parseMarks(`# the proof's marks\nBEGIN kill ${B}\nSHARD kill 1\nEND kill ${B + 4000}\n`);
  const p = phaseStats(answers, m!, [0, 1, 2]);
  t.match(p, {
    shard: 1, requests: 9, ok_2xx: 3, unavailable_503: 2, in_progress_409: 1, failed_other: 2, refused: 1, failed_other_shards: 1, failures: 5,
    answered_again_ms: 3020, retries: 4, abandoned: 0, open: false,
  });
  t.equal(p.longest_gap_ms, 2900, 'shard 1: from the write answered at +120 to the one at +3020');
  t.same(p.longest_gap_ms_by_shard, { 0: 1400, 1: 2900, 2: 2720 }, 'the gaps of every shard, window edges included');

  const healthy = phaseStats(answers, { name: 'calm', begin: B + 2900, end: B + 4000, shard: 2 }, [0, 1, 2]);
  t.equal(healthy.failures, 0, 'no failure on shard 2 in its window');
  t.equal(healthy.answered_again_ms, healthy.longest_gap_ms, 'without a failure the longest gap is reported');
  t.equal(answeredAgain(answers, answers.filter((x) => x.shard === 0), 0, B, B + 4000).ms, 2620, 'shard 0: the write sent after its 503');
  t.equal(answeredAgain([a(100, 1, 503)], [a(100, 1, 503)], 1, B, B + 1000).ms, -1, 'never answered again: -1');

  const all = phaseStats(answers, { name: 'net', begin: B, end: B + 4000, shard: null }, [0, 1, 2]);
  t.match(all, { shard: null, failed_other_shards: 0, answered_again_ms: 3020, longest_gap_ms: 2900 }, 'a phase without a shard: the worst shard');
  t.throws(() => parseMarks('END x 5\n'), /no BEGIN/, 'an END without a BEGIN is refused');
  t.throws(() => parseMarks('BEGIN x soon\n'), /expected/, 'a malformed line is refused');
});

t.test('which answers the client retries with the same key', async (t) => {
  const ans = (status: number, code?: string, retryAfter = false) => ({
    status, ms: 1, body: code ? { error: { code } } : null, headers: new Headers(retryAfter ? { 'retry-after': '1' } : {}),
  });
  t.ok(retryable(ans(0)), 'no answer');
  t.ok(retryable(ans(503, 'shard_unavailable')), '503');
  t.ok(retryable(ans(429, 'rate_limited')), '429');
  t.ok(retryable(ans(409, 'idempotency_in_progress')), 'a key still in progress');
  t.ok(retryable(ans(409, 'conflict', true)), 'a conflict with Retry-After');
  t.notOk(retryable(ans(409, 'sold_out')), 'a refusal is final');
  t.notOk(retryable(ans(422, 'idempotency_mismatch')), 'a mismatch is final');
  t.notOk(retryable(ans(201)), 'a success is final');
});
