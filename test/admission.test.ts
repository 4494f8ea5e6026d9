// Admission control under clients that hang up or stall: whatever a request takes (its
// in-flight slot, its body buffer) comes back on every path, a client's abort included,
// and a limit holds under a burst. One worker with a small MAX_INFLIGHT makes a leak
// visible at once: every leaked slot is a 503 for everyone after.
//   - uploads cut off mid-body (raw sockets that send headers and part of the body,
//     then close): the in-flight gauge returns to its baseline, requests are served;
//   - uploads that stall (silent, or dripping a byte at a time): answered 408 and
//     closed within BODY_TIMEOUT_MS, past MAX_INFLIGHT answered 503 at once;
//   - a WebSocket flood of subscribe messages with many unknown topics: refused past
//     the stream's share of the slots, HTTP keeps being served, the gauge comes back;
//   - a drain after aborted uploads does not wait on them.
import net from 'node:net';
import t from 'tap';
import { unfinishedUpload, type UploadOutcome } from '../tools/lib/http.js';
import { sleep } from '../tools/lib/wait.js';
import { api, customer, item } from './helpers/api.js';
import { startReady, stop, type Spawned } from './helpers/engine.js';
import { connect, type StreamClient } from './helpers/live.js';
import { OWN_PORTS } from './setup/env.js';

const PORT = OWN_PORTS.admissionEngine;
const BASE = `http://127.0.0.1:${PORT}`;
const MAX_INFLIGHT = 20;
const BODY_TIMEOUT_MS = 1500;
/** A stalled upload must be answered within its deadline plus this (timer and scheduling slack). */
const SLACK_MS = 2000;

let engine: Spawned;
t.before(async () => {
  engine = await startReady(PORT, {
    WORKERS: '1', MAX_INFLIGHT: String(MAX_INFLIGHT), BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS), SHUTDOWN_GRACE_MS: '20000',
    // A short pool queue: work that escapes admission control shows as 503s on HTTP.
    PG_MAX_WAITING: '50',
  });
});
t.teardown(() => stop(engine));

/** The worker's in-flight gauge from /metrics, the scrape's own slot included (NaN when /metrics itself is refused). */
async function inflight(): Promise<number> {
  const res = await fetch(`${BASE}/metrics`).catch(() => null);
  if (!res || res.status !== 200) return NaN;
  const text = await res.text();
  return text.split('\n').filter((l) => /^bf_http_inflight_requests[{ ]/.test(l)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Polls the gauge until it reads `want`; the last reading. */
async function settles(want: number, timeoutMs = 8000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let v = await inflight();
  while (v !== want && Date.now() < deadline) {
    await sleep(200);
    v = await inflight();
  }
  return v;
}

/**
 * The gauge of an idle worker, once its metrics are served: the scrape counts itself
 * (1), and right after the previous case the gauge may still be giving that case's
 * slots back, so the idle reading is waited out.
 */
async function baseline(): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = String((await api('GET', '/metrics', { base: BASE })).body ?? '');
    if (/^bf_http_inflight_requests /m.test(text) || Date.now() > deadline) break;
    await sleep(200);
  }
  return settles(1);
}

function head(path: string, length: number, extra = ''): string {
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${extra}\r\n`;
}

/** Headers announcing 100 bytes, a few of them, then the client hangs up. */
function abortUpload(path: string): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect(PORT, '127.0.0.1', () => {
      sock.write(`${head(path, 100)}{"email":`);
      setTimeout(() => sock.destroy(), 50);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve());
  });
}

/** Headers and part of a body, then silence (or one byte every `dripMs`): what the server does, and when. */
function stallUpload(path: string, dripMs = 0, waitMs = BODY_TIMEOUT_MS + SLACK_MS): Promise<{ outcome: UploadOutcome; ms: number }> {
  return unfinishedUpload(PORT, `${head(path, 200)}{"email":"`, { waitMs, dripMs, drip: 'a' });
}

type Asserts = { same(a: unknown, b: unknown, m: string): unknown; equal(a: unknown, b: unknown, m: string): unknown };

/** Normal traffic on the worker: a few reads and a registration, all answered. */
async function served(t: Asserts, what: string): Promise<void> {
  const health = await Promise.all(Array.from({ length: 8 }, () => api('GET', '/healthz', { base: BASE })));
  t.same(health.map((r) => r.status), health.map(() => 200), `${what}: /healthz answers 200`);
  const reg = await api('POST', '/v1/users', { base: BASE, body: { email: `adm-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`, password: 'admission-pass-1' } });
  t.equal(reg.status, 201, `${what}: a registration (a body read, a write) is served`);
}

t.test('uploads cut off mid-body give back every slot they took', async (t) => {
  const base = await baseline();
  t.equal(base, 1, 'an idle worker has nothing in flight but the scrape reading the gauge');
  const paths = ['/v1/users', '/v1/sessions', '/v1/orders', '/v1/categories'];
  // Three bursts, each larger than MAX_INFLIGHT: one leaked slot per abort would leave
  // the worker answering 503 to everything.
  for (let round = 0; round < 3; round++) {
    await Promise.all(Array.from({ length: MAX_INFLIGHT + 5 }, (_, i) => abortUpload(paths[i % paths.length]!)));
  }
  t.equal(await settles(base), base, 'the in-flight gauge is back to its baseline');
  await served(t, 'after 75 aborted uploads');
});

t.test('a stalled upload is answered 408 and closed within BODY_TIMEOUT_MS; past MAX_INFLIGHT, 503 at once', async (t) => {
  const base = await baseline();
  // Silent after part of the body, and one byte every 300 ms (never idle, never done):
  // the deadline counts from the request, so dripping does not extend it.
  const stalls = [
    ...Array.from({ length: MAX_INFLIGHT }, () => stallUpload('/v1/users')),
    ...Array.from({ length: 5 }, () => stallUpload('/v1/users', 300)),
  ];
  const results = await Promise.all(stalls);
  const by = (o: UploadOutcome) => results.filter((r) => r.outcome === o);
  t.same(results.filter((r) => r.outcome !== 408 && r.outcome !== 503), [], 'every stalled upload is answered: 408, or 503 past the limit');
  t.equal(by(408).length + by(503).length, results.length);
  t.ok(by(408).length > 0 && by(408).length <= MAX_INFLIGHT, `${by(408).length} held a slot (at most MAX_INFLIGHT ${MAX_INFLIGHT}) and got 408`);
  t.ok(by(503).length >= results.length - MAX_INFLIGHT, `${by(503).length} past the limit got 503`);
  const slowest408 = Math.max(...by(408).map((r) => r.ms));
  t.ok(slowest408 >= BODY_TIMEOUT_MS - 100 && slowest408 <= BODY_TIMEOUT_MS + SLACK_MS, `408 after ${Math.round(slowest408)} ms (deadline ${BODY_TIMEOUT_MS} ms)`);
  t.ok(by(503).every((r) => r.ms < 1000), 'the 503s came at once, without waiting for a body');
  t.equal(await settles(base), base, 'the in-flight gauge is back to its baseline');
  await served(t, 'after the stalls');
});

t.test('a stream flood is refused past its share of the slots; HTTP keeps being served; every unit comes back', async (t) => {
  const base = await baseline();
  const c = await customer();
  const it = await item({ stock: 3 });
  const sockets: StreamClient[] = await Promise.all(Array.from({ length: 12 }, () => connect({}, BASE)));
  t.teardown(() => { for (const s of sockets) s.close(); });
  // Plausible ids nobody has: each costs a Postgres read, none is in the cache.
  let n = 0;
  const unknownTopics = () => Array.from({ length: 100 }, () => `items/it_${n++ % 3}${(1e12 + n * 7919 + Math.floor(Math.random() * 1e9)).toString(36)}`);
  for (const s of sockets) for (let m = 0; m < 8; m++) s.send({ op: 'subscribe', topics: unknownTopics() });
  const statuses: number[] = [];
  let peak = 0;
  const probing = (async () => {
    for (let i = 0; i < 15; i++) {
      statuses.push((await api('GET', '/v1/orders?limit=5', { base: BASE, token: c.token })).status);
      peak = Math.max(peak, (await inflight()) || 0);
      await sleep(50);
    }
  })();
  const answers = await Promise.all(sockets.map(async (s) => {
    const deadline = Date.now() + 20_000;
    while (s.frames.filter((f) => f.op === 'subscribed' || f.op === 'error').length < 8 && Date.now() < deadline && !s.closed) await sleep(50);
    return s.frames;
  }));
  await probing;
  const frames = answers.flat();
  const overloaded = frames.filter((f) => f.op === 'error' && f.error?.code === 'overloaded');
  const subscribed = frames.filter((f) => f.op === 'subscribed');
  t.equal(overloaded.length + subscribed.length, 12 * 8, 'every message is answered: subscribed or refused as overloaded');
  t.ok(overloaded.length > 0, `${overloaded.length} messages refused as overloaded rather than queued as database work`);
  t.ok(subscribed.every((f) => f.topics.length === 0), 'no unknown item was granted');
  t.same(statuses, statuses.map(() => 200), 'HTTP requests that read Postgres are served throughout the flood');
  t.ok(peak <= MAX_INFLIGHT, `in-flight peaked at ${peak} (MAX_INFLIGHT ${MAX_INFLIGHT})`);
  t.equal(await settles(base), base, 'the in-flight gauge is back to its baseline');

  // Afterwards a normal subscription works, and ids the codec rules out are refused
  // without any database read, whatever the budget.
  const s = await connect({}, BASE);
  t.teardown(() => s.close());
  const ok = await s.subscribe([`items/${it.id}`]);
  t.same(ok.topics, [`items/${it.id}`], 'a real item is granted');
  await s.next((f) => f.op === 'event' && f.topic === `items/${it.id}`);
  const impossible = ['items/it_9k3', 'items/it_zk3', 'items/or_1k3', 'orders/it_1k3', 'items/it_10'];
  const refused = await s.subscribe(impossible);
  t.same([refused.topics, refused.refused], [[], impossible], 'a shard past the shard count, a wrong kind, a zero id: refused');
  await served(t, 'after the flood');
});

t.test('a drain after aborted uploads does not wait on them', async (t) => {
  await Promise.all(Array.from({ length: MAX_INFLIGHT }, () => abortUpload('/v1/users')));
  await sleep(200);
  const started = Date.now();
  engine.child.kill('SIGTERM');
  const killer = setTimeout(() => engine.child.kill('SIGKILL'), 15_000);
  const exit = await engine.exited;
  clearTimeout(killer);
  t.ok(exit.atMs - started < 5000, `drained and exited in ${exit.atMs - started} ms (SHUTDOWN_GRACE_MS 20000)`);
  t.equal(exit.code, 0, 'a clean exit');
});
