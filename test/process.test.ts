// The process tree: the primary refuses a fleet that would exhaust Postgres, names a
// bad variable, respawns a killed worker, and drains in-flight requests on SIGTERM.
// The respawn and drain cases run their own engine clusters on their own ports, next
// to the suite's one; the refusals start a primary that must exit before listening.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { assertBudget, ConfigError, connectionBudget, loadConfig } from '../src/config.js';
import { sleep, waitForUrl } from '../tools/lib/wait.js';
import { customer, item } from './helpers/api.js';
import { startCluster, stop, type Spawned } from './helpers/engine.js';
import { OWN_PORTS } from './setup/env.js';

const EX_CONFIG = 78;

/** Runs the primary with a config it must refuse; returns its exit and stderr. */
async function refused(overrides: Record<string, string>, port: number) {
  const started = Date.now();
  const s = startCluster(port, overrides, {}); // the documented defaults, so the numbers are the real ones
  let stderr = '';
  s.child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 30_000); // a hang is a failure, not a wait
  const { code } = await s.exited;
  clearTimeout(timer);
  return { code, stderr, ms: Date.now() - started };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The primary's children by role, read from the ENGINE_ROLE the primary forked them with. */
function children(primaryPid: number): { workers: number[]; cron: number[] } {
  let listed = '';
  try {
    listed = execFileSync('ps', ['--ppid', String(primaryPid), '-o', 'pid='], { encoding: 'utf8' });
  } catch {
    listed = ''; // ps exits 1 when there is none
  }
  const pids = listed.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
  const roleOf = (pid: number) => {
    try {
      return /ENGINE_ROLE=(\w+)/.exec(readFileSync(`/proc/${pid}/environ`, 'latin1'))?.[1] ?? 'gone';
    } catch {
      return 'gone';
    }
  };
  const withRole = pids.map((pid) => ({ pid, role: roleOf(pid) }));
  return {
    workers: withRole.filter((p) => p.role === 'worker').map((p) => p.pid).sort(),
    cron: withRole.filter((p) => p.role === 'cron').map((p) => p.pid),
  };
}

/** Every worker listening: the primary says so once; /readyz alone may reach the first one only. */
async function ready(s: Spawned, port: number): Promise<void> {
  await until('"engine ready" from the primary', () => s.out(), (o) => o.includes('"msg":"engine ready"'), 60_000);
  await waitForUrl(`http://127.0.0.1:${port}/readyz`, 10_000);
}

async function until<T>(what: string, fn: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not reached in ${timeoutMs} ms (last: ${JSON.stringify(v)})`);
    await sleep(100);
  }
}

interface Outcome { id: string; status?: number; error?: string; sentMs: number; doneMs: number }

/**
 * One request on its own connection (no keep-alive pool), so a result belongs to
 * exactly one request: a status, or the socket error code.
 */
function call(port: number, method: string, urlPath: string, body?: unknown, extra: Record<string, string> = {}): Promise<Outcome> {
  const sentMs = Date.now();
  const id = extra['x-request-id'] ?? '';
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { ...extra, ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}) };
    const req = request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ id, status: res.statusCode, sentMs, doneMs: Date.now() }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ id, error: err.code ?? err.message, sentMs, doneMs: Date.now() }));
    });
    req.setTimeout(15_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ id, error: err.code ?? err.message, sentMs, doneMs: Date.now() }));
    req.end(payload);
  });
}

interface RawReply { status: number; headers: Record<string, string>; body: string; atMs: number }

/**
 * HTTP/1.1 written by hand on one TCP connection, so the test knows the server has
 * accepted the connection (it answered on it) and sees exactly what came back on it,
 * including `Connection: close` and a reset.
 */
class RawConn {
  readonly replies: RawReply[] = [];
  error: string | null = null;
  ended = false;
  sentCount = 0;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
      this.wake();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => { this.error = err.code ?? err.message; this.wake(); });
    sock.on('close', () => { this.ended = true; this.wake(); });
  }

  static open(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => resolve(new RawConn(sock)));
      sock.once('error', reject);
    });
  }

  send(method: string, urlPath: string, body?: unknown, close = false): void {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const head = [`${method} ${urlPath} HTTP/1.1`, 'host: 127.0.0.1', `content-length: ${Buffer.byteLength(payload)}`];
    if (payload) head.push('content-type: application/json');
    if (close) head.push('connection: close');
    this.sentCount++;
    this.sock.write(`${head.join('\r\n')}\r\n\r\n${payload}`);
  }

  /** Resolves once n replies arrived, or the connection failed or closed, or time ran out. */
  async until(n: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length < n && !this.error && !this.ended && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  private wake(): void { for (const w of this.waiters.splice(0)) w(); }

  private parse(): void {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).trim().toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      const len = Number(headers['content-length'] ?? 0);
      if (this.buf.length < end + 4 + len) return;
      const body = this.buf.subarray(end + 4, end + 4 + len).toString();
      this.replies.push({ status: Number(lines[0]!.split(' ')[1]), headers, body, atMs: Date.now() });
      this.buf = this.buf.subarray(end + 4 + len);
    }
  }
}

// The two clusters the later cases need boot together, while the refusals run.
const RESPAWN_PORT = OWN_PORTS.respawnEngine;
const DRAIN_PORT = OWN_PORTS.drainEngine;
// Roomy, because the machine may be busy: the grace bounds the drain, it is not its length.
const DRAIN_GRACE_MS = 8000;
const respawnCluster = startCluster(RESPAWN_PORT, { WORKERS: '2' });
const drainCluster = startCluster(DRAIN_PORT, { WORKERS: '2', SHUTDOWN_GRACE_MS: String(DRAIN_GRACE_MS), LOG_REQUESTS: 'true' });
t.teardown(() => Promise.all([stop(respawnCluster), stop(drainCluster)]));

t.test('the connection budget is computed from the fleet and enforced', async (t) => {
  const over = loadConfig({ APP_SERVERS: '3', WORKERS: '8', PG_POOL_SIZE: '10' });
  t.equal(connectionBudget(over).perDatabase, 3 * 8 * 10 + 3 * 4 + 10, 'servers x workers x pool + servers x cron pool + reserve');
  t.ok(thrown(() => assertBudget(over)) instanceof ConfigError, 'a ConfigError: the primary turns it into exit 78');
  t.throws(() => assertBudget(over), /262 > PG_MAX_CONNECTIONS\(250\)/, 'the error names the numbers');
  const under = loadConfig({ APP_SERVERS: '3', WORKERS: '8', PG_POOL_SIZE: '8' });
  t.equal(assertBudget(under).perDatabase, 214, '3 x 8 x 8 + 12 + 10 fits in 250');
  const exact = loadConfig({ APP_SERVERS: '1', WORKERS: '2', PG_POOL_SIZE: '118', CRON_POOL_SIZE: '4', PG_RESERVED_CONNECTIONS: '10' });
  t.equal(assertBudget(exact).perDatabase, 250, 'exactly the maximum is allowed');
  t.throws(() => assertBudget(loadConfig({ WORKERS: '2', PG_POOL_SIZE: '119', CRON_POOL_SIZE: '4', PG_RESERVED_CONNECTIONS: '10' })), /252 > PG_MAX_CONNECTIONS/, 'one more per worker is not');
  t.doesNotThrow(() => assertBudget(loadConfig({ WORKERS: '2', PG_POOL_SIZE: '200', PG_MAX_CONNECTIONS: '500' })), 'a bigger server admits a bigger fleet');
  const tiny = connectionBudget(loadConfig({ APP_SERVERS: '1', WORKERS: '2', PG_POOL_SIZE: '1', CRON_POOL_SIZE: '4', PG_RESERVED_CONNECTIONS: '10' }));
  t.equal(tiny.perDatabase, 2 * 3 + 4 + 10, 'every lane (read, write, payment) holds a connection of its own');
  t.match(tiny.formula, /PG_POOL_SIZE\(1: read 1 \+ write 1 \+ payment 1 \(lanes need 3\)\)/);
});

t.test('the primary refuses a fleet over the connection budget, quickly and by the numbers', async (t) => {
  const [small, big] = await Promise.all([
    refused({ PG_POOL_SIZE: '200', WORKERS: '2' }, OWN_PORTS.refusedEngine),
    refused({ APP_SERVERS: '3', WORKERS: '8', PG_POOL_SIZE: '10' }, OWN_PORTS.refusedEngine),
  ]);
  t.equal(small.code, EX_CONFIG, 'PG_POOL_SIZE=200 WORKERS=2 exits 78 (EX_CONFIG)');
  t.ok(small.ms < 15_000, `and does so at once, before migrating or forking (${small.ms} ms)`);
  t.match(small.stderr, /PG_MAX_CONNECTIONS\(250\)/);
  t.match(small.stderr, /WORKERS\(2\) x PG_POOL_SIZE\(200: read 50 \+ write 100 \+ payment 50\)/);
  t.match(small.stderr, /= 414 >/, 'with the computed total');
  t.equal(big.code, EX_CONFIG, 'APP_SERVERS=3 WORKERS=8 PG_POOL_SIZE=10 exits 78');
  t.match(big.stderr, /APP_SERVERS\(3\) x WORKERS\(8\) x PG_POOL_SIZE\(10: read 2 \+ write 6 \+ payment 2\).*= 262 > PG_MAX_CONNECTIONS\(250\)/);
});

t.test('a bad environment variable stops the primary and is named', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /PORT=abc/], [{ WORKERS: '0' }, /WORKERS=0/], [{ PG_SHARDS: 'mysql://nope' }, /PG_SHARDS/],
    [{ CATEGORY_SHARD_MAP: '7:9' }, /CATEGORY_SHARD_MAP/], [{ MIGRATE_ON_START: 'maybe' }, /MIGRATE_ON_START/],
  ];
  const results = await Promise.all(cases.map(([env]) => refused(env, OWN_PORTS.refusedEngine)));
  cases.forEach(([env, named], i) => {
    t.equal(results[i]!.code, EX_CONFIG, `${JSON.stringify(env)} exits 78`);
    t.match(results[i]!.stderr, named, `and names ${named.source}`);
  });
});

t.test('a killed worker is respawned and the service keeps answering', async (t) => {
  const [s, port] = [respawnCluster, RESPAWN_PORT];
  await ready(s, port);
  const pid = s.child.pid!;
  const before = await until('two workers and a cron', () => children(pid), (c) => c.workers.length === 2 && c.cron.length === 1, 10_000);
  const victim = before.workers[0]!;
  // Requests on connections of their own, so both workers answer some before one dies.
  await Promise.all(Array.from({ length: 20 }, () => call(port, 'GET', '/healthz')));
  const textBefore = await metricsOf(port);
  const startsBefore = workerStarts(textBefore);
  t.equal(startsBefore.size, 2, `both worker slots report their start time (${[...startsBefore.keys()].join(', ')})`);
  process.kill(victim, 'SIGKILL');
  await until('the killed worker reaped', () => alive(victim), (a) => !a, 5000);

  const answers = await Promise.all(Array.from({ length: 20 }, () => call(port, 'GET', '/healthz')));
  t.same(answers.map((a) => a.status ?? a.error), Array(20).fill(200), 'every request after the kill is answered');

  const after = await until('a new worker', () => children(pid), (c) => c.workers.length === 2 && !c.workers.includes(victim), 20_000);
  const fresh = after.workers.find((w) => !before.workers.includes(w))!;
  t.ok(fresh, `a new worker (${fresh}) replaced ${victim}`);
  t.same(after.cron, before.cron, 'the cron process was left alone');
  t.ok(after.workers.includes(before.workers[1]!), 'the surviving worker kept running');
  // Metrics carry a stable worker slot, not a pid: the new worker took over the slot of
  // the one it replaced, and reports a later start time there.
  const newest = Math.max(...startsBefore.values());
  const text = await until('the new worker in /metrics', () => metricsOf(port),
    (m) => [...workerStarts(m).values()].some((s) => s > newest), 30_000);
  t.same([...workerStarts(text).keys()].sort(), [...startsBefore.keys()].sort(), 'the same two worker slots, one of them restarted');
  t.match(text, /^bf_process_restarts_total\{role="worker"\} 1$/m, 'the primary counted one respawned worker');
  t.equal(served(text), served(textBefore) + 20, 'the dead worker\'s answers stay counted: the count went on from where it was, plus the 20 after the kill');
  t.notMatch(text, /pid="/, 'no series is labelled with a pid');
  t.match(s.out(), /process died, respawning/, 'the primary logged the respawn');
});

t.test('SIGTERM drains in-flight requests and the primary exits 0', async (t) => {
  const [s, port, graceMs] = [drainCluster, DRAIN_PORT, DRAIN_GRACE_MS];
  const [c, it] = await Promise.all([customer(), item()]);
  await ready(s, port);
  const { workers } = children(s.child.pid!);

  // Connections a worker has accepted and answered once, so they are past the accept
  // queue: what is sent on them next is a request the engine has taken on.
  const batch = 8;
  const conns = await Promise.all(Array.from({ length: 3 * batch }, () => RawConn.open(port)));
  for (const conn of conns) conn.send('GET', '/healthz');
  await Promise.all(conns.map((conn) => conn.until(1)));
  const [logins, gets, keepAlive] = [conns.slice(0, batch), conns.slice(batch, 2 * batch), conns.slice(2 * batch)];

  // Keep-alive clients asking back to back until the server says `Connection: close`.
  let signalMs = Number.POSITIVE_INFINITY;
  const loops = keepAlive.map(async (conn) => {
    for (let sent = 1; ; sent++) {
      await conn.until(sent);
      if (conn.ended || conn.error || conn.replies.at(-1)!.headers.connection === 'close') return;
      if (Date.now() - signalMs > graceMs + 5000) return;
      conn.send('GET', '/healthz');
    }
  });
  await sleep(50);
  // Logins hash a password (tens of ms each on the libuv pool): still running at the signal.
  for (const conn of logins) conn.send('POST', '/v1/sessions', { email: c.email, password: c.password }, true);
  for (const conn of gets) conn.send('GET', `/v1/items/${it.id}`, undefined, true);
  signalMs = Date.now();
  s.child.kill('SIGTERM');

  // New connections after the signal: served, or turned away before anything ran.
  const late: Promise<Outcome>[] = [];
  let exitedYet = false;
  void s.exited.then(() => { exitedYet = true; });
  for (let i = 0; !exitedYet && Date.now() - signalMs < graceMs + 5000; i++) {
    late.push(call(port, 'GET', '/healthz', undefined, { 'x-request-id': `late-${i}` }));
    await sleep(25);
  }

  const { code, atMs } = await s.exited;
  t.equal(code, 0, 'the primary exits 0');
  t.ok(atMs - signalMs < graceMs + 3000, `within SHUTDOWN_GRACE_MS + 3 s (${atMs - signalMs} ms)`);
  await Promise.all([...conns.map((conn) => conn.until(2, 2000)), ...loops]);
  const second = (conn: RawConn) => conn.error ?? conn.replies[1]?.status ?? 'no reply';
  t.same(logins.map(second), Array(batch).fill(201), 'every in-flight login completed (201), none reset');
  t.same(gets.map(second), Array(batch).fill(200), 'every in-flight GET completed (200), none reset');
  t.ok(logins.some((conn) => conn.replies[1] && conn.replies[1].atMs > signalMs), 'some logins were still running when the signal arrived');
  for (const conn of keepAlive) {
    t.equal(conn.error, null, 'a keep-alive client is not reset');
    t.ok(conn.replies.every((r) => r.status === 200), `all its ${conn.replies.length} requests were answered 200`);
    t.equal(conn.replies.at(-1)?.headers.connection, 'close', 'the last answer told it to reconnect');
    t.equal(conn.sentCount, conn.replies.length, 'no request was left without an answer');
  }

  const logged = new Set([...s.out().matchAll(/"msg":"request"[^\n]*"request_id":"(late-\d+)"/g)].map((m) => m[1]));
  const lateResults = await Promise.all(late);
  const cutOff = lateResults.filter((o) => !(o.status === 200 || o.error === 'ECONNREFUSED' || (o.error === 'ECONNRESET' && !logged.has(o.id))));
  // A connection still in a closing listener's accept queue is reset by the kernel:
  // like a refusal, nothing ran. What must never happen is a started request cut off.
  t.same(cutOff, [], 'a later request is served, or turned away before it ran');
  t.ok(lateResults.some((o) => o.error === 'ECONNREFUSED'), 'once closed, new connections are refused');
  for (const w of workers) t.notOk(alive(w), `worker ${w} is gone`);
});

const metricsOf = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

/** process_start_time_seconds per worker slot ("0", "1", ...) from a /metrics text. */
function workerStarts(text: string): Map<string, number> {
  return new Map([...text.matchAll(/^process_start_time_seconds\{worker="(\d+)"\} (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

/** Answers counted in bf_http_requests_total, but for the scrapes themselves. */
function served(text: string): number {
  return [...text.matchAll(/^bf_http_requests_total\{route="([^"]+)",status="\d+"\} (\S+)$/gm)].filter((m) => m[1] !== 'metrics').reduce((n, m) => n + Number(m[2]), 0);
}
