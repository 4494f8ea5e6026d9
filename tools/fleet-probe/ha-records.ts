// What the HA proof's `record` phase writes and `ha-verify` reads, in one place:
//   DIR/run.json      the run: its key prefix, start, engines, customers (email -> user id)
//   DIR/answers.jsonl one line per answer (every attempt of every request)
//   DIR/acks.jsonl    one line per acknowledged (2xx) write: an order, a payment
//   DIR/status        KEY=VALUE lines for bash, replaced atomically every 250 ms
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Answer } from '../lib/http.js';

export type Op = 'create_order' | 'create_payment' | 'get_item' | 'pay_gateway';
/** Engine writes: what "the shard takes writes" is measured with. */
export const WRITES: ReadonlySet<Op> = new Set(['create_order', 'create_payment']);

export interface AnswerLine {
  /** Sent, epoch ms. */
  t: number; ms: number; op: Op; shard: number; status: number;
  /** error.type of the engine, or why no answer came (timeout, ECONNREFUSED), '-' on success. */
  type: string; code?: string;
  /** host:port that answered (or did not). */
  engine: string; attempt: number;
  /** Writes: the Idempotency-Key and the customer (email) it belongs to. */
  key?: string; customer?: string;
  /** A failure the client retried (or gave up on): no answer, 5xx, 429, a key in progress. */
  retry?: true;
  /** The last attempt of a request given up on (still failing after the give-up bound). */
  gave_up?: true;
}

export interface LineAck { item_id: string; quantity: number; price_cents: number }
export interface OrderAck {
  k: 'order'; t: number; key: string; engine: string; customer: string; customer_id: string; shard: number;
  id: string; status: string; total_cents: number; currency: string; items: LineAck[];
}
export interface PaymentAck {
  k: 'payment'; t: number; key: string; engine: string; customer: string; order_id: string; id: string;
  status: string; amount_cents: number; currency: string; gateway_session_id: string | null;
}
export type Ack = OrderAck | PaymentAck;

export interface RunInfo {
  /** Every Idempotency-Key of the run starts with it. */
  key_prefix: string; started_ms: number; engines: string[];
  customers: { email: string; id: string; shard: number }[];
}

export const FILES = { run: 'run.json', answers: 'answers.jsonl', acks: 'acks.jsonl', status: 'status' } as const;

/** A failure the client contract retries with the same key: no answer, 5xx, 408, 429, a key in progress, anything with Retry-After. */
export function retryable(a: Answer): boolean {
  if (a.status === 0 || a.status >= 500 || a.status === 408 || a.status === 429) return true;
  const code = (a.body as { error?: { code?: string } } | null)?.error?.code;
  return a.status === 409 && (code === 'idempotency_in_progress' || a.headers.has('retry-after'));
}

export const is2xx = (status: number) => status >= 200 && status < 300;

/** A gateway completion retried after no answer finds its first attempt applied: the session is no longer pending (409). */
export const completedBefore = (l: Pick<AnswerLine, 'op' | 'attempt' | 'status'>) => l.op === 'pay_gateway' && l.attempt > 1 && l.status === 409;

export function readJsonl<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

export function readRun(dir: string): RunInfo {
  return JSON.parse(readFileSync(path.join(dir, FILES.run), 'utf8')) as RunInfo;
}

/**
 * The record phase's books: lines buffered and appended on every flush (the status
 * tick and the end), counters and per-shard times for the status file.
 */
export class Books {
  private answers: string[] = [];
  private acks: string[] = [];
  readonly n = { ok: 0, failed: 0, refused: 0, orders: 0, payments: 0, retries: 0, abandoned: 0, inflight: 0, paid_at_gateway: 0 };
  /** Sent time of the latest-sent 2xx write / failed request, per shard (0: none yet). */
  readonly lastOkMs: number[];
  readonly lastFailMs: number[];
  stopping = false;
  /** The first final refusals (4xx) of writes, for the summary: a healthy run has none. */
  readonly refusals: AnswerLine[] = [];

  constructor(private readonly dir: string, shards: number) {
    this.lastOkMs = new Array<number>(shards).fill(0);
    this.lastFailMs = new Array<number>(shards).fill(0);
    for (const f of [FILES.answers, FILES.acks]) writeFileSync(path.join(dir, f), '');
  }

  answer(line: AnswerLine): void {
    this.answers.push(JSON.stringify(line));
    if (line.attempt > 1) this.n.retries++;
    if (line.gave_up) this.n.abandoned++;
    if (is2xx(line.status)) {
      this.n.ok++;
      if (WRITES.has(line.op)) this.lastOkMs[line.shard] = Math.max(this.lastOkMs[line.shard] ?? 0, line.t);
    } else if (line.retry) {
      this.n.failed++;
      if (line.op !== 'pay_gateway') this.lastFailMs[line.shard] = Math.max(this.lastFailMs[line.shard] ?? 0, line.t);
    } else if (!completedBefore(line)) {
      this.n.refused++;
      if (this.refusals.length < 5) this.refusals.push(line);
    }
  }

  ack(a: Ack): void {
    this.acks.push(JSON.stringify(a));
    if (a.k === 'order') this.n.orders++;
    else this.n.payments++;
  }

  flush(): void {
    const write = (file: string, lines: string[]) => { if (lines.length) appendFileSync(path.join(this.dir, file), `${lines.join('\n')}\n`); };
    write(FILES.answers, this.answers.splice(0));
    write(FILES.acks, this.acks.splice(0));
    const n = this.n;
    const lines = [
      `OK_TOTAL=${n.ok}`, `FAIL_TOTAL=${n.failed}`, `REFUSED_TOTAL=${n.refused}`, `ORDERS=${n.orders}`, `PAYMENTS=${n.payments}`,
      `RETRIES=${n.retries}`, `ABANDONED=${n.abandoned}`, `INFLIGHT=${n.inflight}`, `STOPPING=${this.stopping ? 1 : 0}`,
      ...this.lastOkMs.map((ms, s) => `LAST_OK_MS_${s}=${ms}`), ...this.lastFailMs.map((ms, s) => `LAST_FAIL_MS_${s}=${ms}`),
      `UPDATED_MS=${Date.now()}`,
    ];
    const tmp = path.join(this.dir, `${FILES.status}.tmp`);
    writeFileSync(tmp, `${lines.join('\n')}\n`);
    renameSync(tmp, path.join(this.dir, FILES.status)); // bash never reads half a file
  }
}
