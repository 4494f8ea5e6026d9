// An Idempotency-Key given back after a retryable error, when the shard holding it
// fails over. On a scratch primary with a synchronous standby of its own (never the
// shared stack's clusters), through IdempotencyKeys over real pools: the middleware a
// POST with a key runs through, as two workers would hold it. A release is fenced by
// the claim it belongs to, so an attempt whose lease lapsed and was taken over cannot
// delete its successor's claim. A release the failing shard refused is made again once
// the shard answers, so the client's retry runs as soon as the promoted node takes
// writes instead of meeting 409 idempotency_in_progress until the lease lapses; it is
// given up once the lease lapsed anyway, or when the process shuts down.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import type { Principal } from '../src/accounts/principal.js';
import { EngineError } from '../src/errors.js';
import { fingerprint, IdempotencyKeys } from '../src/http/idempotency.js';
import type { Reply } from '../src/http/reply.js';
import { setLogLevel } from '../src/log.js';
import { Shards } from '../src/shard/shards.js';
import { uniq } from './helpers/api.js';
import { until } from './helpers/live.js';
import { crash, pairRoot, promote, query, removePair, startPair, type Node } from './helpers/replicas.js';
import { OWN_PORTS } from './setup/env.js';

const P = OWN_PORTS.idemReleasePrimary;
const S = OWN_PORTS.idemReleaseStandby;
const ROUTE = 'test_release';
const FP = fingerprint(ROUTE, {}, { n: 1 });
const RELEASED = 'idempotency key release retried';

// The engine's log lines are JSON on stdout, where tap writes TAP: they are kept here
// (the test reads them) and everything else goes through.
const logged: Record<string, any>[] = [];
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: any[]) => {
  const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
  if (!text.startsWith('{"t":')) return write(chunk, ...rest);
  for (const line of text.trim().split('\n')) logged.push(JSON.parse(line));
  return true;
}) as typeof process.stdout.write;

const made: IdempotencyKeys[] = [];
let shards: Shards | null = null;
t.teardown(async () => {
  for (const k of made) k.close();
  await shards?.end();
  removePair(pairRoot('idem-release', P));
  process.stdout.write = write;
  if (!t.passing()) t.comment(`engine log:\n${logged.map((l) => JSON.stringify(l)).join('\n')}`);
});
// If this process is ended before its teardown (a tap timeout), still stop what it started.
process.once('exit', () => removePair(pairRoot('idem-release', P)));

setLogLevel('warn'); // migrateShard's progress lines
const pair = await startPair('idem-release', P, S, ['engine0']);
setLogLevel('info');
// Test speed: a down shard is probed again after 200 ms, its hosts at most every 200 ms.
shards = new Shards([`postgres://postgres@127.0.0.1:${P},127.0.0.1:${S}/engine0`], {
  statementTimeoutMs: 5000, lockTimeoutMs: 2000, connectTimeoutMs: 2000, idleTxTimeoutMs: 5000, maxWaiting: 100,
  downCooldownMs: 200, probeTimeoutMs: 2000, probeEveryMs: 200, appName: 'idem-release-test',
}, 4);
const shard = shards.get(0);

/** One process's keys: a worker's middleware, with a lease of `lockS`. */
function keysOf(lockS: number): IdempotencyKeys {
  const k = new IdempotencyKeys(shards!, lockS);
  made.push(k);
  return k;
}

const principal = (): Principal => ({ id: 'customer', uuid: randomUUID(), shard: 0, role: 'customer' });

/** A promise the test opens when it wants. */
function gate(): { open(): void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  return { open, opened };
}

/** The key's row as a node holds it. */
async function rowOf(node: Node, p: Principal, key: string) {
  return query(node, 'engine0', `SELECT status, locked_until > now() AS locked FROM idempotency_keys
    WHERE user_id = $1 AND key = $2`, [p.uuid, key]);
}

/** The key's lease ends now, as when its attempt stalls past IDEMPOTENCY_LOCK_S. */
async function lapseLease(p: Principal, key: string): Promise<void> {
  await query(pair.primary, 'engine0', `UPDATE idempotency_keys SET locked_until = now() - interval '1 second'
    WHERE user_id = $1 AND key = $2`, [p.uuid, key]);
}

/** Work that must not run: a replay or a refusal is expected. */
const never = (what: string) => async (): Promise<Reply> => { throw new Error(`${what}: the work ran`); };

t.test('a late release does not delete the claim another attempt took over', async (t) => {
  const [first, second] = [keysOf(60), keysOf(60)];
  const p = principal();
  const key = uniq('fence');
  const [firstStarted, firstFails] = [gate(), gate()];
  const firstRun = first.run('write', p, key, ROUTE, FP, async () => {
    firstStarted.open();
    await firstFails.opened;
    throw new EngineError('overloaded', 'come back later', { retryAfterS: 1 });
  });
  await firstStarted.opened;
  // The first attempt stalls past its lease (as a worker that hangs would): the lease
  // has lapsed, and a second attempt takes the claim over and runs.
  await lapseLease(p, key);
  const [secondStarted, secondDone] = [gate(), gate()];
  const secondRun = second.run('write', p, key, ROUTE, FP, async () => {
    secondStarted.open();
    await secondDone.opened;
    return { status: 201, body: { by: 'second' } };
  });
  await secondStarted.opened;

  // Now the first attempt fails, retryably, and gives back what it claimed: not the second's claim.
  firstFails.open();
  await t.rejects(firstRun, { code: 'overloaded' }, 'the first attempt ends with its own retryable error');
  t.same(await rowOf(pair.primary, p, key), [{ status: 'in_progress', locked: true }],
    'the claim the second attempt holds is still there, locked');
  await t.rejects(first.run('write', p, key, ROUTE, FP, never('a third attempt')), { code: 'idempotency_in_progress' },
    'a third attempt meanwhile is told the key is in progress, and does not run the work');

  secondDone.open();
  t.same(await secondRun, { status: 201, body: { by: 'second' } }, 'the second attempt answers');
  t.same(await first.run('write', p, key, ROUTE, FP, never('a replay')), { status: 201, body: { by: 'second' }, replayed: true },
    'and its answer is the one stored and replayed');
  t.notOk(logged.some((l) => l.msg === RELEASED), 'no release had to be made late');
});

t.test('an attempt whose lease lapsed and was taken over does not overwrite its successor\'s stored answer', async (t) => {
  const [first, second] = [keysOf(60), keysOf(60)];
  const p = principal();
  const key = uniq('late-answer');
  const [firstStarted, firstAnswers] = [gate(), gate()];
  const firstRun = first.run('write', p, key, ROUTE, FP, async () => {
    firstStarted.open();
    await firstAnswers.opened;
    return { status: 201, body: { by: 'first' } };
  });
  await firstStarted.opened;
  await lapseLease(p, key);
  t.same(await second.run('write', p, key, ROUTE, FP, async () => ({ status: 201, body: { by: 'second' } })),
    { status: 201, body: { by: 'second' } }, 'the second attempt takes the lapsed claim over and answers');

  firstAnswers.open();
  t.same(await firstRun, { status: 201, body: { by: 'first' } }, 'the stalled first attempt still answers its own client');
  t.same(await first.run('write', p, key, ROUTE, FP, never('a replay')), { status: 201, body: { by: 'second' }, replayed: true },
    'the stored answer stays the one of the attempt that held the claim');
});

t.test('a release the failing shard refused is made once the promoted standby answers', async (t) => {
  const keys = keysOf(60); // a lease far longer than this test waits: only a release frees its key early
  const brief = keysOf(1); // a lease that lapses while the shard has no primary
  const closing = keysOf(60); // a process that shuts down while the shard has no primary
  const [pA, pB, pC] = [principal(), principal(), principal()];
  const [kA, kB, kC] = [uniq('failover'), uniq('lapsed'), uniq('shutdown')];
  const go = gate();
  const started: Promise<void>[] = [];
  const failing = (on: IdempotencyKeys, p: Principal, key: string) => {
    const s = gate();
    started.push(s.opened);
    return on.run('write', p, key, ROUTE, FP, async () => {
      s.open();
      await go.opened;
      await shard.query('SELECT now()'); // the work meets the shard: it has no primary now
      return { status: 201 };
    });
  };
  const runs = [failing(keys, pA, kA), failing(brief, pB, kB), failing(closing, pC, kC)];
  await Promise.all(started); // every key claimed on the primary, and (synchronously) on the standby

  crash(pair.primary);
  go.open();
  const ended = await Promise.allSettled(runs);
  t.match(ended.map((r) => (r.status === 'rejected' ? (r.reason as EngineError).code : r.status)),
    ['shard_unavailable', 'shard_unavailable', 'shard_unavailable'], 'every attempt fails with 503 unavailable');
  for (const [p, key] of [[pA, kA], [pB, kB], [pC, kC]] as const) {
    t.same((await rowOf(pair.standby, p, key)).map((r) => r.status), ['in_progress'],
      'its claim is left on the standby: the shard refused the release too');
  }
  // The client retries at once, while the shard has no primary: that attempt fails at
  // its claim, and its release (of a claim that never landed) waits beside the first
  // attempt's instead of replacing it.
  await t.rejects(keys.run('write', pA, kA, ROUTE, FP, never('a retry while the shard has no primary')),
    { code: 'shard_unavailable' }, 'a retry meanwhile is 503 too');
  closing.close(); // a worker draining now gives its releases up
  await until('the lapsed lease given up', async () => logged.filter((l) => l.msg === RELEASED && l.outcome === 'lapsed'),
    (l) => l.length > 0, 15_000, 50);

  promote(pair.standby);
  const freed = await until('the key released on the promoted node', () => rowOf(pair.standby, pA, kA), (r) => r.length === 0, 20_000, 100);
  t.pass(`the key is released once the promoted node takes writes (${Math.round(freed.ms)} ms after the promotion)`);
  const lines = logged.filter((l) => l.msg === RELEASED).sort((x, y) => x.outcome.localeCompare(y.outcome));
  t.equal(lines.length, 3, 'one line per process and outcome, not one per attempt');
  t.match(lines, [
    { level: 'warn', shard: 0, outcome: 'lapsed', keys: 1, lapsed: 1 },
    { level: 'info', shard: 0, outcome: 'released', keys: 2, released: 1, superseded: 1 },
    { level: 'warn', shard: 0, outcome: 'shutdown', keys: 1 },
  ], 'each names its shard and outcome');
  t.comment(`released: ${JSON.stringify(lines[1])}`);

  let ran = 0;
  const retry = await keys.run('write', pA, kA, ROUTE, FP, async () => { ran++; return { status: 201, body: { again: true } }; });
  t.same([retry, ran], [{ status: 201, body: { again: true } }, 1], 'the client\'s retry runs again at once, not 409 for the lease');

  t.same(await rowOf(pair.standby, pB, kB), [{ status: 'in_progress', locked: false }],
    'a release whose lease lapsed meanwhile was not made: the lease itself frees the key');
  t.same(await rowOf(pair.standby, pC, kC), [{ status: 'in_progress', locked: true }],
    'nor one given up at shutdown: that key waits for its lease, as before');
  await t.rejects(keys.run('write', pC, kC, ROUTE, FP, never('a retry of the shut-down key')), { code: 'idempotency_in_progress' },
    'a retry of it is told it is in progress');
});

t.test('an answer that could not be stored gives the key back too', async (t) => {
  const keys = keysOf(60);
  const p = principal();
  const key = uniq('unstored');
  const primary = pair.standby; // promoted above
  // Someone else holds the key's row while the answer is being stored: the UPDATE that
  // stores it, and the first release, meet lock_timeout (2 s here).
  const holder = new pg.Client({ host: '127.0.0.1', port: primary.port, user: 'postgres', database: 'engine0' });
  await holder.connect();
  t.teardown(() => holder.end());
  const run = keys.run('write', p, key, ROUTE, FP, async () => {
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM idempotency_keys WHERE user_id = $1 AND key = $2 FOR UPDATE', [p.uuid, key]);
    return { status: 201, body: { first: true } };
  });
  await t.rejects(run, 'the attempt fails: its answer could not be stored, so the client is told to retry');
  t.same(await rowOf(primary, p, key), [{ status: 'in_progress', locked: true }], 'the claim is still there while the row is held');
  await holder.query('ROLLBACK');
  await until('the key released once its row is free', () => rowOf(primary, p, key), (r) => r.length === 0, 20_000, 100);
  let ran = 0;
  const retry = await keys.run('write', p, key, ROUTE, FP, async () => { ran++; return { status: 201, body: { again: true } }; });
  t.same([retry, ran], [{ status: 201, body: { again: true } }, 1], 'the retry redoes the work at once, not 409 until the lease lapses');
});
