// What every phase of the fleet probe shares: HTTP with a deadline, the state file, flags, output.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

// ---- HTTP ------------------------------------------------------------------------

export interface Answer { status: number; body: any; ms: number; error: string | null }

export interface CallOpts { token?: string; body?: unknown; key?: boolean; timeoutMs?: number }

/** status 0 = no HTTP answer (refused, reset, or our deadline); `error` says which. */
export async function call(base: string, method: string, path: string, opts: CallOpts = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.key) headers['idempotency-key'] = randomUUID();
  const started = performance.now();
  try {
    const res = await fetch(`${base}${path}`, {
      method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    let body: unknown = text;
    try { body = text ? JSON.parse(text) : null; } catch { /* metrics, html */ }
    return { status: res.status, body, ms: performance.now() - started, error: null };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const error = e.name === 'TimeoutError' ? 'client deadline' : e.cause?.code ?? e.message;
    return { status: 0, body: null, ms: performance.now() - started, error };
  }
}

export function must(a: Answer, status: number, what: string): any {
  if (a.status !== status) throw new Error(`${what}: expected ${status}, got ${a.status} ${a.error ?? JSON.stringify(a.body)?.slice(0, 300)}`);
  return a.body;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function pct(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export const r0 = (n: number) => Math.round(n);
export const hostOf = (url: string) => new URL(url).host;
export const errType = (a: Answer) => (a.body as { error?: { type?: string } } | null)?.error?.type ?? a.error ?? '-';

// ---- state shared by the phases -----------------------------------------------------

export interface Customer { email: string; token: string; shard: number }
export interface ShardData { shard: number; category_id: string; items: string[] }
export interface Order { id: string; token: string; shard: number }
export interface State { engines: string[]; shards: ShardData[]; customers: Customer[]; orders: Order[] }

export const tokenShard = (token: string) => parseInt(token[1]!, 36);

export function loadState(file: string): State { return JSON.parse(readFileSync(file, 'utf8')) as State; }
export function saveState(file: string, s: State): void { writeFileSync(file, JSON.stringify(s, null, 2)); }

export function say(msg: string): void { process.stdout.write(`probe: ${msg}\n`); }
export function result(phase: string, data: Record<string, unknown>): void { process.stdout.write(`RESULT ${phase} ${JSON.stringify(data)}\n`); }

export class Flags {
  private readonly m = new Map<string, string>();
  constructor(argv: string[]) {
    for (let i = 0; i < argv.length; i += 2) {
      if (!argv[i]!.startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
      this.m.set(argv[i]!.slice(2), argv[i + 1]!);
    }
  }
  opt(k: string): string | undefined { return this.m.get(k); }
  req(k: string): string {
    const v = this.m.get(k);
    if (v === undefined) throw new Error(`--${k} is required`);
    return v;
  }
  int(k: string, def: number): number {
    const v = this.m.get(k);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v)) throw new Error(`--${k} must be a non-negative integer`);
    return Number(v);
  }
}
