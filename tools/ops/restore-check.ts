// `node dist/tools/ops/restore-check.js --restored URL --live URL --target TIME [--slack-s 5] [--shard N]`
// The judge of a restore drill (deploy/6-node/ha/pgbackrest/restore-drill.sh): a shard
// restored to TIME on a scratch host, against the live shard it came from.
//  - On the restored copy, the engine's `always` invariants (tools/lib/invariants.ts,
//    unscoped: every row of the copy is the drill's): stock never negative and balanced,
//    held units = active holds, ledger sums to zero per currency, one kept capture per
//    order, ... A copy that breaks one is not a state the engine ever committed.
//  - Against the live shard, the tables of acknowledged facts (restore-tables.ts, which
//    says which columns and why): every live row made at or before TIME - slack is in
//    the copy (else `missing`: the restore lost acknowledged work), every row of the
//    copy is in the live shard (else `invented`, unless retention deleted it since:
//    `pruned`, not a failure), rows in both agree on their immutable columns (else
//    `differing`), and no row of the copy was made after TIME (else `after_target`: the
//    recovery overshot).
//
// The slack: a row's time is its transaction's start (now() in the column default), and
// a transaction that began before TIME may commit after it, so it is live but rightly
// not in a copy recovered to TIME. Recovery stops at commits, so every row of the copy
// was made at or before TIME; a live row made more than the slack before TIME must have
// committed by then (the engine's statements are bounded by a 5 s statement timeout and
// its transactions are short).
//
// Both sides are read in one REPEATABLE READ snapshot each, a page at a time in primary
// key order (bounded memory; every statement under --timeout-ms). The live side is a
// primary's snapshot held for the whole read: vacuum waits behind it meanwhile, so run
// the drill off-peak on large shards.
//
// Prints one line per table and per broken invariant, a few sample rows of each failure,
// then `RESULT restore-check {json}`. Exit 0 = the copy is faithful, 1 = it is not,
// 2 = usage, 3 = the check could not run (a database unreachable, a query failed).
import pg from 'pg';
import { parseShardUrl, redact } from '../../src/shard/hosts.js';
import { connectWritable } from '../../src/shard/primary.js';
import { intOption, parseCli, UsageError, isEntry } from '../lib/args.js';
import { checkInvariants, judge } from '../lib/invariants.js';
import { pageQuery, TABLES, type PageBounds, type Table } from './restore-tables.js';

const EX_FAILED = 1;
const EX_USAGE = 2;
const EX_UNCHECKED = 3;
const SAMPLES = 3;
/** IDEMPOTENCY_RETENTION_S's default (src/config.ts): how long checkout refusals are kept. */
const RETENTION_S_DEFAULT = 86_400;

export interface Args {
  restored: string; live: string; target: string; slackS: number; shard: number | null;
  retentionS: number; batch: number; timeoutMs: number;
}

const USAGE = 'usage: restore-check --restored URL --live URL --target TIME [--slack-s 5] [--shard N] [--retention-s 86400] [--batch 5000] [--timeout-ms 60000]\n' +
  '  TIME with its zone, as given to pgbackrest --target: 2026-01-10 14:03:00.000+00 (or ISO 8601, 2026-01-10T14:03:00Z)\n';

// A time without a zone would be read in the session's zone: refused, the target is an instant.
const TIME = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(Z|[+-]\d{2}(?::?\d{2})?)$/;

/** The arguments, or 'help' when asked for. */
export function parseArgs(argv: string[]): Args | 'help' {
  const { values } = parseCli(argv, {
    options: {
      restored: { type: 'string' }, live: { type: 'string' }, target: { type: 'string' }, 'slack-s': { type: 'string' },
      shard: { type: 'string' }, 'retention-s': { type: 'string' }, batch: { type: 'string' }, 'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  for (const name of ['restored', 'live', 'target'] as const) if (!values[name]) throw new UsageError(`--${name} is required`);
  for (const name of ['restored', 'live'] as const) {
    if (!/^postgres(ql)?:\/\//.test(values[name]!)) throw new UsageError(`--${name} must be a postgres:// URL`);
  }
  const m = TIME.exec(values.target!);
  const zone = m?.[3] === 'Z' ? 'Z' : m?.[3]?.length === 3 ? `${m[3]}:00` : m?.[3]?.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  if (!m || Number.isNaN(Date.parse(`${m[1]}T${m[2]}${zone}`))) throw new UsageError(`--target ${values.target}: expected YYYY-MM-DD HH:MM:SS[.fff] and a zone (+00, Z)`);
  return {
    restored: values.restored!, live: values.live!, target: values.target!,
    slackS: intOption('slack-s', values['slack-s'], 5, 0, 3600),
    shard: values.shard === undefined ? null : intOption('shard', values.shard, 0, 0, 35),
    retentionS: intOption('retention-s', values['retention-s'], RETENTION_S_DEFAULT, 60, 365 * 86_400),
    batch: intOption('batch', values.batch, 5000, 1, 100_000),
    timeoutMs: intOption('timeout-ms', values['timeout-ms'], 60_000, 1000, 3_600_000),
  };
}

/** The URL without a client-side query_timeout (the engine's PG_SHARDS has one, tuned for requests). */
function withoutQueryTimeout(url: string): string {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const params = new URLSearchParams(url.slice(at + 1));
  params.delete('query_timeout');
  const rest = params.toString();
  return `${url.slice(0, at)}${rest ? `?${rest}` : ''}`;
}

/**
 * One side's snapshot: every statement bounded server-side (statement_timeout, and a
 * lock_timeout so a read queued behind DDL gives up) and client-side (a partitioned
 * host), idle gaps while the other side answers bounded too.
 */
async function openSnapshot(url: string, live: boolean, timeoutMs: number): Promise<pg.Client> {
  const config: pg.ClientConfig = { connectionTimeoutMillis: 10_000, query_timeout: timeoutMs + 5000, application_name: 'restore-check' };
  const clean = withoutQueryTimeout(url);
  // The live shard may be named by both of its hosts (PG_SHARDS form): its primary is read.
  const client = live ? await connectWritable(clean, config) : new pg.Client({ ...config, connectionString: clean });
  client.on('error', () => undefined); // a socket dying between queries fails the next query, not the process
  if (!live) await client.connect();
  await client.query(`SET TimeZone = 'UTC'`);
  await client.query(`SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false),
    set_config('idle_in_transaction_session_timeout', $3, false)`, [`${timeoutMs}`, `${Math.min(timeoutMs, 10_000)}`, `${timeoutMs + 30_000}`]);
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  return client;
}

export type Kind = 'missing' | 'invented' | 'differing' | 'after_target' | 'pruned';
export interface Tally { live: number; restored: number; missing: number; invented: number; differing: number; after_target: number; pruned: number }
interface Sample { kind: Kind; key: string; live?: string; restored?: string }
interface Row { key: string; val: string; due: boolean; late: boolean; old: boolean; [k: string]: unknown }
type Bounds = Omit<PageBounds, 'after' | 'upTo'>;

const FAILURES: Kind[] = ['missing', 'invented', 'differing', 'after_target'];

async function page(c: pg.Client, t: Table, b: PageBounds): Promise<Row[]> {
  return (await c.query<Row>(pageQuery(t, b))).rows;
}

const keyOf = (t: Table, r: Row) => t.key.map((_, i) => r[`k${i}`] as string);

class TableCheck {
  readonly tally: Tally = { live: 0, restored: 0, missing: 0, invented: 0, differing: 0, after_target: 0, pruned: 0 };
  readonly samples: Sample[] = [];
  constructor(readonly table: Table) {}

  note(kind: Kind, s: Omit<Sample, 'kind'>): void {
    this.tally[kind]++;
    if (this.samples.filter((x) => x.kind === kind).length < SAMPLES) this.samples.push({ kind, ...s });
  }

  get ok(): boolean { return FAILURES.every((k) => this.tally[k] === 0); }

  /** One restored row against the live rows of its key range that are still unmatched. */
  restoredRow(r: Row, pending: Map<string, Row>): void {
    this.tally.restored++;
    if (r.late) this.note('after_target', { key: r.key, restored: r.val });
    const live = pending.get(r.key);
    if (live) {
      pending.delete(r.key);
      if (live.val !== r.val) this.note('differing', { key: r.key, live: live.val, restored: r.val });
    } else if (this.table.pruned && r.old) {
      this.note('pruned', { key: r.key, restored: r.val });
    } else {
      this.note('invented', { key: r.key, restored: r.val });
    }
  }
}

/**
 * Pages through the live table in key order; for each page, the restored rows of the
 * same key range (after the previous page's last key, up to this page's; the last page
 * takes everything after), themselves a page at a time. Memory holds one live page.
 */
async function compareTable(live: pg.Client, restored: pg.Client, t: Table, b: Bounds): Promise<TableCheck> {
  const check = new TableCheck(t);
  let after: string[] | null = null;
  for (;;) {
    const livePage = await page(live, t, { ...b, after, upTo: null });
    const upTo = livePage.length === b.limit ? keyOf(t, livePage.at(-1)!) : null;
    const pending = new Map(livePage.map((r) => [r.key, r]));
    for (const r of livePage) if (r.due) check.tally.live++;
    let from = after;
    for (;;) {
      const rows = await page(restored, t, { ...b, after: from, upTo });
      for (const r of rows) check.restoredRow(r, pending);
      if (rows.length < b.limit) break;
      from = keyOf(t, rows.at(-1)!);
    }
    for (const r of pending.values()) if (r.due) check.note('missing', { key: r.key, live: r.val });
    if (upTo === null) return check;
    after = upTo;
  }
}

/** The target, the cutoff and the retention horizon, as the live shard reads them (its clock, its now()). */
async function boundsOf(live: pg.Client, a: Args): Promise<Bounds> {
  const r = (await live.query<{ target: string; cutoff: string; pruned_before: string }>(
    `SELECT $1::timestamptz::text AS target, ($1::timestamptz - make_interval(secs => $2))::text AS cutoff,
            (now() - make_interval(secs => $3))::text AS pruned_before`, [a.target, a.slackS, a.retentionS])).rows[0]!;
  return { target: r.target, cutoff: r.cutoff, prunedBefore: r.pruned_before, limit: a.batch };
}

export interface Report {
  ok: boolean; shard: number | null; target: string; cutoff: string; slack_s: number;
  tables: Record<string, Tally>; invariants_ok: boolean; invariants_broken: string[];
}

const say = (msg: string) => process.stdout.write(`restore-check: ${msg}\n`);
/** host:port/db of a URL, never its password; a socket directory given as ?host= (the drill's copy) is named as such. */
function where(url: string): string {
  try {
    const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
    const socket = query.get('host');
    if (socket?.startsWith('/')) return `${socket} port ${query.get('port') ?? 5432}/${url.replace(/\?.*$/, '').replace(/^.*\//, '')}`;
    return parseShardUrl(url).display;
  } catch {
    return redact(url);
  }
}

function printTable(c: TableCheck, ms: number): void {
  const t = c.tally;
  say(`${c.table.name.padEnd(18)} live<=cutoff ${t.live}  restored ${t.restored}  missing ${t.missing}  invented ${t.invented}  ` +
    `differing ${t.differing}  after_target ${t.after_target}  pruned ${t.pruned}  ${c.ok ? 'ok' : 'FAIL'} (${ms} ms)`);
  for (const s of c.samples) {
    say(`  ${s.kind} ${s.key}${s.live ? ` live ${s.live}` : ''}${s.restored ? ` restored ${s.restored}` : ''}`);
  }
}

async function compareAll(a: Args): Promise<{ bounds: Bounds; tables: TableCheck[] }> {
  const live = await openSnapshot(a.live, true, a.timeoutMs);
  let restored: pg.Client | null = null;
  try {
    restored = await openSnapshot(a.restored, false, a.timeoutMs);
    const bounds = await boundsOf(live, a);
    say(`target ${bounds.target}, slack ${a.slackS} s: every live row made by ${bounds.cutoff} must be in the copy; ` +
      `retention horizon ${bounds.prunedBefore}`);
    const tables: TableCheck[] = [];
    for (const t of TABLES) {
      const started = Date.now();
      const c = await compareTable(live, restored, t, bounds);
      printTable(c, Date.now() - started);
      tables.push(c);
    }
    return { bounds, tables };
  } finally {
    await Promise.all([live, restored].map((c) => c?.end().catch(() => undefined)));
  }
}

/** The restored copy's `always` invariants, named by the drill's shard. */
async function invariantsOf(a: Args): Promise<string[]> {
  const checks = (await checkInvariants([a.restored], { phase: 'always' })).map((c) => ({ ...c, shard: a.shard ?? 0 }));
  const report = judge(checks, true);
  say(`invariants (${checks.length} always rules) on the copy: ${report.ok ? 'ok' : `${report.violations.length} broken`}`);
  for (const v of report.violations) say(`  ${v}`);
  return checks.filter((c) => !c.ok).map((c) => c.name);
}

export async function restoreCheck(a: Args): Promise<Report> {
  say(`restored ${where(a.restored)} against live ${where(a.live)}${a.shard === null ? '' : ` (shard ${a.shard})`}`);
  const { bounds, tables } = await compareAll(a);
  const broken = await invariantsOf(a);
  return {
    ok: broken.length === 0 && tables.every((c) => c.ok), shard: a.shard, target: bounds.target, cutoff: bounds.cutoff, slack_s: a.slackS,
    tables: Object.fromEntries(tables.map((c) => [c.table.name, c.tally])), invariants_ok: broken.length === 0, invariants_broken: broken,
  };
}

async function main(): Promise<void> {
  let args: Args | 'help';
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`restore-check: ${err.message}\n${USAGE}`);
    process.exit(EX_USAGE);
  }
  if (args === 'help') {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  try {
    const report = await restoreCheck(args);
    process.stdout.write(`RESULT restore-check ${JSON.stringify(report)}\n`);
    process.exit(report.ok ? 0 : EX_FAILED);
  } catch (err) {
    const message = redact((err as Error).message);
    say(`could not check: ${message}`);
    process.stdout.write(`RESULT restore-check ${JSON.stringify({ ok: false, error: message })}\n`);
    process.exit(EX_UNCHECKED);
  }
}

if (isEntry(import.meta.url)) await main();
