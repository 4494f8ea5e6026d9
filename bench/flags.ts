// Command-line flags. Every number has a default that reproduces the Black Friday
// run of the Black Friday harness; --smoke shrinks everything to a few seconds for CI.
import os from 'node:os';
import { parseCli, UsageError } from '../tools/lib/args.js';

export const SCENARIOS = ['black-friday', 'flash-sale', 'reads', 'ceiling', 'costs'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface ReadMix { item: number; search: number; status: number }

export interface Flags {
  scenarios: Scenario[];
  url: string | null;
  gateway: string | null;
  port: number;
  workers: number;
  connections: number;
  duration: number;
  mix: { reads: number; writes: number };
  /** Offered requests/s per side in black-friday (open loop); null: every connection as fast as it is answered. */
  rate: { reads: number; writes: number } | null;
  readMix: ReadMix;
  items: number;
  categories: number;
  customers: number;
  stock: number;
  zipf: number;
  payShare: number;
  flashConnections: number;
  flashDuration: number;
  flashStock: number;
  flashHotShare: number;
  /** Orders carry an Idempotency-Key (false: --no-keys, the unkeyed checkout path). */
  keys: boolean;
  /** black-friday: who sends the reads: autocannon (per-kind latencies) or wrk (a fifth of its CPU, a true open-loop schedule with --rate). */
  readGenerator: 'autocannon' | 'wrk';
  /** reads: seconds of each half (cache on, cache off). */
  readsDuration: number;
  gateConnections: number;
  /** reads: seconds of each sold-out storm (gate on, gate off). */
  gateDuration: number;
  gateStock: number;
  /** reads: switch the global sold_out_gate flag off for the gate-off half (false: that half is skipped). */
  gateOff: boolean;
  ceilingDuration: number;
  /** costs: seconds and connections of each kind's wrk run. */
  costsDuration: number;
  costsConnections: number;
  pgbenchClients: number;
  timeout: number;
  seed: number;
  cache: boolean;
  cpuProf: boolean;
  strictInvariants: boolean;
  out: string | null;
  smoke: boolean;
}

export class FlagError extends Error {}

export const HELP = `npm run bench [-- flags]   (or: node dist/bench/run.js [flags])

  --scenario S          all | black-friday | flash-sale | reads | ceiling | costs, or a comma list (default all)
  --url URL             drive an engine that is already running (no own engine, no simulators)
  --gateway URL         gateway simulator of that engine, to complete payments (with --url;
                        default $GATEWAY_URL or http://127.0.0.1:8090)
  --port N              port of the bench's own engine (default 8480); the reads scenario's
                        cache-off engine listens on the next one
  --workers N           engine HTTP workers, and bare-uWS workers in the ceiling (default: cores)
  --connections N       black-friday concurrent connections, split by --mix (default 3000)
  --duration S          black-friday seconds (default 30)
  --mix R:W             reads : writes, as a split of the connections (default 5:1)
  --rate R:W            black-friday offers R reads/s and W writes/s in all (connections
                        split R:W, replacing --mix) instead of each connection asking as
                        fast as it is answered: whether the engine *sustains* a load, e.g. 2500:500
  --read-mix a=n,..     weights of item, search, status reads (default item=3,search=1,status=1)
  --items N             catalog items (default 3000)
  --categories N        catalog categories, spread over all shards (default 30)
  --customers N         customers with tokens (default 300)
  --stock N             stock per catalog item (default 1000000; topped up before each run)
  --zipf S              Zipf exponent of item popularity (default 1.1)
  --pay-share F         share of created orders that are paid when payments exist (default 0.2)
  --flash-connections N buyers in the flash sale (default 2000)
  --flash-duration S    flash-sale seconds (default 10)
  --flash-stock N       stock of the hot item (default 100)
  --flash-hot-share F   share of flash-sale orders on the hot item; the rest hold uniform items (default 0.5)
  --reads-duration S    reads: seconds of each half, cache on and cache off, with --connections
                        split by --mix into item reads and holds (default 15)
  --gate-connections N  reads: buyers in each sold-out storm (default 500)
  --gate-duration S     reads: seconds of each sold-out storm, gate on and gate off (default 5)
  --gate-stock N        reads: units of the hot item sold out before the storms (default 20, at most 1000)
  --no-gate-off         reads: never switch the sold_out_gate flag (it is global to the databases:
                        every engine on them follows it); the gate-off storm is skipped
  --ceiling-duration S  seconds of pgbench and of each bare uWS run (autocannon, then wrk) (default 10)
  --costs-duration S    costs: seconds of each kind sent alone by wrk (default 6)
  --costs-connections N costs: connections of those runs (default 100)
  --pgbench-clients N   pgbench clients per shard (default: workers x 16, the engine's pool per shard)
  --timeout S           request timeout of the load generator (default 10)
  --seed N              seed of every random choice (default 42)
  --no-cache            rebuild the catalog and customers instead of reusing bench/results/fixture-*.json
  --no-keys             orders without an Idempotency-Key (black-friday, flash-sale)
  --read-generator G    black-friday's reads from autocannon (default: latency per read kind) or wrk
                        (C, a fifth of autocannon's CPU per request; with --rate the requests leave
                        on a fixed schedule whatever the latency, a true open loop; one latency for all reads)
  --cpu-prof            run the own engine under node --cpu-prof (profiles in the result directory)
  --strict-invariants   also fail on broken rows this run never touched (other clients' data on a
                        shared stack; by default those are reported as foreign, not failed)
  --out DIR             result directory (default bench/results/<timestamp>)
  --smoke               a few-seconds run for CI: 50 connections, 2-4 s scenarios, 200 items, 20 customers
  --help
`;

function defaults(): Flags {
  const cores = os.availableParallelism();
  return {
    scenarios: [...SCENARIOS], url: null, gateway: null, port: 8480, workers: cores, connections: 3000, duration: 30,
    mix: { reads: 5, writes: 1 }, rate: null, readMix: { item: 3, search: 1, status: 1 }, items: 3000, categories: 30, customers: 300,
    stock: 1_000_000, zipf: 1.1, payShare: 0.2, flashConnections: 2000, flashDuration: 10, flashStock: 100,
    flashHotShare: 0.5, keys: true, readGenerator: 'autocannon', readsDuration: 15, gateConnections: 500, gateDuration: 5, gateStock: 20, gateOff: true,
    ceilingDuration: 10, costsDuration: 6, costsConnections: 100, pgbenchClients: 0, timeout: 10, seed: 42, cache: true, cpuProf: false, strictInvariants: false,
    out: null, smoke: false,
  };
}

const SMOKE: Partial<Flags> = {
  connections: 50, duration: 3, items: 200, categories: 6, customers: 20, flashConnections: 50, flashDuration: 4,
  // Small stock, most buyers on it: sells out within the run even on a busy machine.
  flashStock: 10, flashHotShare: 0.8, readsDuration: 3, gateConnections: 50, gateDuration: 2, gateStock: 5, ceilingDuration: 2, costsDuration: 1, costsConnections: 20, pgbenchClients: 4,
};

function num(name: string, raw: string | undefined, min: number, max: number, integer = true): number {
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new FlagError(`--${name} ${raw ?? ''}: expected ${integer ? 'an integer' : 'a number'} in ${min}..${max}`);
  }
  return n;
}

function parseScenarios(raw: string): Scenario[] {
  if (raw === 'all') return [...SCENARIOS];
  const list = raw.split(',').map((s) => s.trim());
  for (const s of list) if (!(SCENARIOS as readonly string[]).includes(s)) throw new FlagError(`--scenario ${s}: expected all or ${SCENARIOS.join(', ')}`);
  return SCENARIOS.filter((s) => list.includes(s));
}

/** `R:W`, not both zero: --mix (a split) and --rate (requests per second). */
function parseReadsWrites(flag: string, raw: string, shape: string): { reads: number; writes: number } {
  const m = /^(\d{1,6}):(\d{1,6})$/.exec(raw);
  if (!m || Number(m[1]) + Number(m[2]) === 0) throw new FlagError(`--${flag} ${raw}: expected ${shape}`);
  return { reads: Number(m[1]), writes: Number(m[2]) };
}

function parseReadMix(raw: string): ReadMix {
  const mix: ReadMix = { item: 0, search: 0, status: 0 };
  for (const part of raw.split(',')) {
    const m = /^(item|search|status)=(\d{1,4})$/.exec(part.trim());
    if (!m) throw new FlagError(`--read-mix ${raw}: expected item=n,search=n,status=n`);
    mix[m[1] as keyof ReadMix] = Number(m[2]);
  }
  if (mix.item + mix.search + mix.status === 0) throw new FlagError('--read-mix: at least one weight must be positive');
  return mix;
}

function parseUrl(name: string, raw: string | undefined): string {
  if (!raw || !/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?\/?$/.test(raw)) {
    throw new FlagError(`--${name} ${raw ?? ''}: expected http://127.0.0.1:<port> (loads only ever target this machine)`);
  }
  return raw.replace(/\/$/, '');
}

type Setter = (f: Flags, v: string | undefined) => void;

const VALUED: Record<string, Setter> = {
  scenario: (f, v) => { f.scenarios = parseScenarios(v ?? ''); },
  url: (f, v) => { f.url = parseUrl('url', v); },
  gateway: (f, v) => { f.gateway = parseUrl('gateway', v); },
  port: (f, v) => { f.port = num('port', v, 1, 65534); }, // port + 1: the cache-off engine
  workers: (f, v) => { f.workers = num('workers', v, 1, 64); },
  connections: (f, v) => { f.connections = num('connections', v, 2, 15000); },
  duration: (f, v) => { f.duration = num('duration', v, 1, 3600); },
  mix: (f, v) => { f.mix = parseReadsWrites('mix', v ?? '', 'reads:writes, e.g. 5:1'); },
  'read-generator': (f, v) => {
    if (v !== 'autocannon' && v !== 'wrk') throw new FlagError(`--read-generator ${v ?? ''}: expected autocannon or wrk`);
    f.readGenerator = v;
  },
  rate: (f, v) => { f.rate = parseReadsWrites('rate', v ?? '', 'reads/s:writes/s, e.g. 2500:500'); },
  'read-mix': (f, v) => { f.readMix = parseReadMix(v ?? ''); },
  items: (f, v) => { f.items = num('items', v, 10, 100_000); },
  categories: (f, v) => { f.categories = num('categories', v, 3, 1000); },
  customers: (f, v) => { f.customers = num('customers', v, 1, 10_000); },
  stock: (f, v) => { f.stock = num('stock', v, 1000, 100_000_000); },
  zipf: (f, v) => { f.zipf = num('zipf', v, 0, 5, false); },
  'pay-share': (f, v) => { f.payShare = num('pay-share', v, 0, 1, false); },
  'flash-connections': (f, v) => { f.flashConnections = num('flash-connections', v, 1, 15000); },
  'flash-duration': (f, v) => { f.flashDuration = num('flash-duration', v, 1, 3600); },
  'flash-stock': (f, v) => { f.flashStock = num('flash-stock', v, 1, 1_000_000); },
  'flash-hot-share': (f, v) => { f.flashHotShare = num('flash-hot-share', v, 0, 1, false); },
  'reads-duration': (f, v) => { f.readsDuration = num('reads-duration', v, 1, 3600); },
  'gate-connections': (f, v) => { f.gateConnections = num('gate-connections', v, 1, 15000); },
  'gate-duration': (f, v) => { f.gateDuration = num('gate-duration', v, 1, 600); },
  // One order holds them all; an order line takes at most 1000 units (MAX_QUANTITY).
  'gate-stock': (f, v) => { f.gateStock = num('gate-stock', v, 1, 1000); },
  'ceiling-duration': (f, v) => { f.ceilingDuration = num('ceiling-duration', v, 1, 600); },
  'costs-duration': (f, v) => { f.costsDuration = num('costs-duration', v, 1, 600); },
  'costs-connections': (f, v) => { f.costsConnections = num('costs-connections', v, 1, 15000); },
  'pgbench-clients': (f, v) => { f.pgbenchClients = num('pgbench-clients', v, 1, 200); },
  timeout: (f, v) => { f.timeout = num('timeout', v, 1, 120); },
  seed: (f, v) => { f.seed = num('seed', v, 0, 2 ** 31); },
  out: (f, v) => { if (!v) throw new FlagError('--out needs a directory'); f.out = v; },
};

const BOOLEAN: Record<string, (f: Flags) => void> = {
  'no-cache': (f) => { f.cache = false; },
  'cpu-prof': (f) => { f.cpuProf = true; },
  'strict-invariants': (f) => { f.strictInvariants = true; },
  'no-gate-off': (f) => { f.gateOff = false; },
  'no-keys': (f) => { f.keys = false; },
  smoke: (f) => { f.smoke = true; },
};

const OPTIONS = {
  ...Object.fromEntries(Object.keys(VALUED).map((k) => [k, { type: 'string' as const }])),
  ...Object.fromEntries(Object.keys(BOOLEAN).map((k) => [k, { type: 'boolean' as const }])),
  help: { type: 'boolean' as const, short: 'h' },
};

/** Parses argv (without node and script). --smoke applies first, explicit flags win. */
export function parseFlags(argv: string[]): Flags | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseCli(argv, { options: OPTIONS }).values;
  } catch (err) {
    if (err instanceof UsageError) throw new FlagError(`${err.message} (see --help)`);
    throw err;
  }
  const given = Object.entries(values).filter(([name]) => name !== 'help');
  const flags = defaults();
  if (given.some(([n]) => n === 'smoke')) Object.assign(flags, SMOKE);
  for (const [name, value] of given) {
    if (BOOLEAN[name]) BOOLEAN[name]!(flags);
    else VALUED[name]!(flags, value as string);
  }
  const poolSize = Number(process.env.PG_POOL_SIZE) || 16; // the engine's per-shard pool, per worker
  if (flags.pgbenchClients === 0) flags.pgbenchClients = Math.min(200, flags.workers * poolSize);
  if (flags.customers > flags.items * 10) throw new FlagError('--customers is far larger than --items; lower it');
  return flags;
}
