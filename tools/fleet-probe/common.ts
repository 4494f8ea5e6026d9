// What every phase of the fleet probe shares: figures of answers, the state file, flags, output.
// (HTTP is tools/lib/http.ts: status 0 and `error` when no answer came by the deadline.)
import { readFileSync, writeFileSync } from 'node:fs';
import { parseCli, UsageError } from '../lib/args.js';
import type { Answer } from '../lib/http.js';

// ---- answers ----------------------------------------------------------------------

export function pct(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export const r0 = (n: number) => Math.round(n);
export const hostOf = (url: string) => new URL(url).host;
export const errType = (a: Answer) => (a.body as { error?: { type?: string } } | null)?.error?.type ?? a.error ?? '-';

// ---- state shared by the phases -----------------------------------------------------

/** `id`: the user id (us_...), stored by setup since the HA proof; older state files lack it. */
export interface Customer { email: string; token: string; shard: number; id?: string }
export interface ShardData { shard: number; category_id: string; items: string[] }
export interface Order { id: string; token: string; shard: number }
export interface State { engines: string[]; shards: ShardData[]; customers: Customer[]; orders: Order[] }

export function loadState(file: string): State { return JSON.parse(readFileSync(file, 'utf8')) as State; }
export function saveState(file: string, s: State): void { writeFileSync(file, JSON.stringify(s, null, 2)); }

export function say(msg: string): void { process.stdout.write(`probe: ${msg}\n`); }
export function result(phase: string, data: Record<string, unknown>): void { process.stdout.write(`RESULT ${phase} ${JSON.stringify(data)}\n`); }

/** Every option of every phase (all take a value); a phase reads the ones it needs. */
const OPTIONS = Object.fromEntries([
  'engines', 'admin-email', 'admin-password', 'state', 'requests', 'concurrency', 'gateway', 'shard', 't0-ms', 'window-ms',
  'bound-ms', 'timeout-ms', 'rotation-file', 'stop-file', 'max-ms', 'out', 'pay-every', 'give-up-ms', 'records', 'marks',
  'pg-shards', 'settle-ms',
].map((k) => [k, { type: 'string' as const }]));

export class Flags {
  private readonly m: Record<string, string | boolean | undefined>;
  constructor(argv: string[]) {
    this.m = parseCli(argv, { options: OPTIONS }).values;
  }
  opt(k: string): string | undefined { return this.m[k] as string | undefined; }
  req(k: string): string {
    const v = this.opt(k);
    if (v === undefined) throw new UsageError(`--${k} is required`);
    return v;
  }
  int(k: string, def: number): number {
    const v = this.opt(k);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${k} must be a non-negative integer`);
    return Number(v);
  }
}
