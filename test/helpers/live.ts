// Clients for the read side: WebSocket stream sockets (the `ws` package: Node 20 has
// no WebSocket client), the engine's counters from /metrics, and polling.
import { unpack } from 'msgpackr';
import WebSocket from 'ws';
import { sleep } from '../../tools/lib/wait.js';
import { ENGINE_URL } from '../setup/env.js';
import { api } from './api.js';

export interface Frame { op: string; [k: string]: any }

export class StreamClient {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: (() => void)[] = [];

  /** `worker`: the pid tag of the worker that took the upgrade (from its x-request-id). */
  constructor(readonly ws: WebSocket, readonly worker: string, readonly format: 'json' | 'msgpack') {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.frames.push(isBinary ? unpack(data) : JSON.parse(data.toString()));
      this.wake();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  }

  /** The first frame (after `from`) that matches, waiting up to timeoutMs. */
  async next(match: (f: Frame) => boolean, timeoutMs = 5000, from = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.slice(from).find(match);
      if (f) return f;
      if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before a matching frame; got ${JSON.stringify(this.frames)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  async subscribe(topics: string[], timeoutMs = 5000): Promise<Frame> {
    const from = this.frames.length;
    this.send({ op: 'subscribe', topics });
    return this.next((f) => f.op === 'subscribed', timeoutMs, from);
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await sleep(20);
    if (!this.closed) throw new Error('socket not closed');
    return this.closed;
  }

  close(): void { this.ws.close(); }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }
}

/** Opens /v1/stream; rejects with the HTTP status when the upgrade is refused. */
export function connect(query: Record<string, string> = {}, base = ENGINE_URL): Promise<StreamClient> {
  const qs = new URLSearchParams(query).toString();
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/stream${qs ? `?${qs}` : ''}`);
  let worker = '';
  ws.on('upgrade', (res) => { worker = String(res.headers['x-request-id'] ?? '').split('-')[0]!; });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(new StreamClient(ws, worker, query.format === 'msgpack' ? 'msgpack' : 'json')));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

/** The worker (pid tag) that answered an HTTP response, from its x-request-id. */
export const workerOf = (headers: Headers) => (headers.get('x-request-id') ?? '').split('-')[0]!;

/** A counter from /metrics summed over its series (the app server's processes are merged at the scrape). */
export async function counter(name: string, kind?: string, base = ENGINE_URL): Promise<number> {
  const text = String((await api('GET', '/metrics', { base })).body ?? '');
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (kind !== undefined && !line.includes(`kind="${kind}"`)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Waits for the work requests leave behind (cache refreshes, pub/sub) to settle before counting. */
export const settleMetrics = () => sleep(2500);

/** Polls fn until ok, returning the value and how long it took. */
export async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000, everyMs = 5): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  for (;;) {
    const value = await fn();
    if (ok(value)) return { value, ms: performance.now() - started };
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not reached in ${timeoutMs} ms (last: ${JSON.stringify(value)})`);
    await sleep(everyMs);
  }
}
