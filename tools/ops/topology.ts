// The deploy topology (deploy/6-node/topology.json) and the files beside it. The
// connection budget is never recomputed here: the topology is turned into the
// environment an app server would get, and src/config.ts judges it, so the engine at
// start and `npm run deploy:check` apply one formula.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertBudget, ConfigError, connectionBudget, loadConfig, type Config, type ConnectionBudget } from '../../src/config.js';
import { ROOT } from '../../src/paths.js';

export const DEPLOY_DIR = path.join(ROOT, 'deploy', '6-node');
export const DEFAULT_TOPOLOGY = path.join(DEPLOY_DIR, 'topology.json');

export class TopologyError extends Error {}

export type Env = Record<string, string | undefined>;

export interface AppHost { name: string; address: string; redis_index: number }
export interface DbHost { name: string; address: string; shard: number }
/**
 * One shard's PostgreSQL: its port and its hosts, the normal primary first. Without a
 * placement a shard is its db host alone, on postgres.port; with one (the HA layer,
 * deploy/6-node/ha/placement.json) it is [primary, synchronous standby] on the shard's port.
 */
export interface ShardHosts { shard: number; port: number; hosts: DbHost[] }

export interface Topology {
  file: string;
  engine: { port: number; workers_per_app_server: number; pg_pool_size: number; cron_pool_size: number; pg_reserved_connections: number };
  /** port: shard 0's (with a placement every shard has its own, in `shards`). */
  postgres: { port: number; database: string; user: string; max_connections_for_fleet: number; superuser_reserved_connections: number };
  redis: { port: number };
  simulators: { host: string; gateway_port: number; provider_port: number } | null;
  /** Files named by the topology, resolved against its directory; null when not named. */
  files: {
    envTemplate: string | null; pgConf: string | null; pgHba: string | null; redisConf: string | null; simEnv: string | null; engineUnit: string | null;
    prometheus: string | null;
    /** postgres.placement: the HA layer's placement.json; null = one PostgreSQL per db host. */
    placement: string | null;
    /** The HA layer's patroni.yml, beside the placement (as render.mjs finds it); null without one. */
    patroni: string | null;
  };
  /** App servers in REDIS_URLS order, db servers in PG_SHARDS order. */
  apps: AppHost[];
  dbs: DbHost[];
  /** In PG_SHARDS order: where each shard's PostgreSQL runs. */
  shards: ShardHosts[];
}

// ---- reading topology.json -------------------------------------------------------

type Obj = Record<string, unknown>;

function obj(v: unknown, where: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TopologyError(`${where} must be an object`);
  return v as Obj;
}

function int(o: Obj, key: string, where: string, min = 0, max = 1_000_000): number {
  const v = o[key];
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
    throw new TopologyError(`${where}.${key} must be an integer in ${min}..${max} (got ${JSON.stringify(v)})`);
  }
  return v as number;
}

function text(o: Obj, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new TopologyError(`${where}.${key} must be a non-empty string`);
  return v;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** The indexes of hosts must be exactly 0..n-1: they are list positions in the env. */
function assertDense(values: number[], what: string): void {
  const sorted = [...values].sort((a, b) => a - b);
  sorted.forEach((v, i) => {
    if (v !== i) throw new TopologyError(`${what} must be 0..${values.length - 1}, each once (got ${values.join(', ')})`);
  });
}

function parseHosts(raw: unknown, simHost: string | null): { apps: AppHost[]; dbs: DbHost[] } {
  if (!Array.isArray(raw) || raw.length === 0) throw new TopologyError('hosts must be a non-empty array');
  const names = new Set<string>();
  const addresses = new Set<string>();
  const apps: AppHost[] = [];
  const dbs: DbHost[] = [];
  raw.forEach((h, i) => {
    const o = obj(h, `hosts[${i}]`);
    const name = text(o, 'name', `hosts[${i}]`);
    const address = text(o, 'address', `hosts[${i}]`);
    if (!/^[a-z][a-z0-9-]{0,9}$/.test(name)) throw new TopologyError(`hosts[${i}].name "${name}" must match [a-z][a-z0-9-]{0,9}`);
    if (!IPV4.test(address)) throw new TopologyError(`hosts[${i}].address "${address}" is not an IPv4 address`);
    if (names.has(name)) throw new TopologyError(`host name ${name} appears twice`);
    if (addresses.has(address)) throw new TopologyError(`address ${address} appears twice`);
    names.add(name);
    addresses.add(address);
    if (o.role === 'app') apps.push({ name, address, redis_index: int(o, 'redis_index', `hosts[${i}]`, 0, 63) });
    else if (o.role === 'db') dbs.push({ name, address, shard: int(o, 'shard', `hosts[${i}]`, 0, 35) });
    else throw new TopologyError(`hosts[${i}].role must be "app" or "db"`);
  });
  if (apps.length === 0 || dbs.length === 0) throw new TopologyError('hosts must list at least one app and one db host');
  assertDense(apps.map((a) => a.redis_index), 'the app hosts\' redis_index values');
  assertDense(dbs.map((d) => d.shard), 'the db hosts\' shard values');
  if (simHost !== null && !apps.some((a) => a.name === simHost)) throw new TopologyError(`simulators.host "${simHost}" is not an app host`);
  apps.sort((a, b) => a.redis_index - b.redis_index);
  dbs.sort((a, b) => a.shard - b.shard);
  return { apps, dbs };
}

function fileRef(dir: string, o: Obj, key: string): string | null {
  const v = o[key];
  return typeof v === 'string' && v !== '' ? path.resolve(dir, v) : null;
}

// ---- reading placement.json (the HA layer) -----------------------------------------

function readJson(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new TopologyError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/** One entry of placement.json's shards: two distinct db hosts of the topology. */
function placedShard(raw: unknown, i: number, dbs: DbHost[]): ShardHosts {
  const where = `placement shards[${i}]`;
  const o = obj(raw, where);
  const nodes = o.nodes;
  if (!Array.isArray(nodes) || nodes.length !== 2 || nodes[0] === nodes[1]) {
    throw new TopologyError(`${where}.nodes must name two distinct db hosts, primary first (got ${JSON.stringify(nodes)})`);
  }
  const hosts = nodes.map((n) => {
    const db = dbs.find((d) => d.name === n);
    if (!db) throw new TopologyError(`${where}.nodes: ${JSON.stringify(n)} is not a db host of the topology (${dbs.map((d) => d.name).join(', ')})`);
    return db;
  });
  return { shard: int(o, 'shard', where, 0, 35), port: int(o, 'pg_port', where, 1, 65535), hosts };
}

/**
 * Every shard once, each on two distinct db hosts with a port of its own (a host runs
 * two shards' instances side by side), and each shard's normal primary is the db host
 * the topology gives that shard: PG_SHARDS' order is the data placement.
 */
export function parsePlacement(raw: unknown, file: string, dbs: DbHost[], pgPort: number): ShardHosts[] {
  const list = obj(raw, `placement ${file}`).shards;
  if (!Array.isArray(list)) throw new TopologyError(`placement ${file}: shards must be an array`);
  const shards = list.map((s, i) => placedShard(s, i, dbs)).sort((a, b) => a.shard - b.shard);
  if (shards.length !== dbs.length) throw new TopologyError(`placement ${file} has ${shards.length} shards, the topology ${dbs.length} db hosts`);
  assertDense(shards.map((s) => s.shard), `the placement's shard values`);
  const ports = shards.map((s) => s.port);
  if (new Set(ports).size !== ports.length) throw new TopologyError(`placement ${file}: every shard needs a port of its own (got ${ports.join(', ')})`);
  for (const s of shards) {
    const owner = dbs[s.shard]!;
    if (s.hosts[0] !== owner) {
      throw new TopologyError(`placement shard ${s.shard}: its first node (the normal primary) is ${s.hosts[0]!.name}, but the topology gives shard ${s.shard} to ${owner.name}`);
    }
  }
  if (shards[0]!.port !== pgPort) throw new TopologyError(`postgres.port is ${pgPort}, but shard 0's port in the placement is ${shards[0]!.port}`);
  return shards;
}

function shardsOf(dbs: DbHost[], port: number, placement: string | null): ShardHosts[] {
  if (placement === null) return dbs.map((d) => ({ shard: d.shard, port, hosts: [d] }));
  return parsePlacement(readJson(placement, 'placement'), placement, dbs, port);
}

export function parseTopology(raw: unknown, file: string): Topology {
  const top = obj(raw, 'topology');
  const dir = path.dirname(file);
  const e = obj(top.engine, 'engine');
  const p = obj(top.postgres, 'postgres');
  const r = obj(top.redis, 'redis');
  const s = top.simulators === undefined ? null : obj(top.simulators, 'simulators');
  const sims = s ? { host: text(s, 'host', 'simulators'), gateway_port: int(s, 'gateway_port', 'simulators', 1, 65535), provider_port: int(s, 'provider_port', 'simulators', 1, 65535) } : null;
  const hosts = parseHosts(top.hosts, sims?.host ?? null);
  const placement = fileRef(dir, p, 'placement');
  const pgPort = int(p, 'port', 'postgres', 1, 65535);
  return {
    file,
    engine: {
      port: int(e, 'port', 'engine', 1, 65535),
      workers_per_app_server: int(e, 'workers_per_app_server', 'engine', 1),
      pg_pool_size: int(e, 'pg_pool_size', 'engine', 1),
      cron_pool_size: int(e, 'cron_pool_size', 'engine', 1),
      pg_reserved_connections: int(e, 'pg_reserved_connections', 'engine', 0),
    },
    postgres: {
      port: pgPort,
      database: text(p, 'database', 'postgres'),
      user: text(p, 'user', 'postgres'),
      max_connections_for_fleet: int(p, 'max_connections_for_fleet', 'postgres', 1),
      superuser_reserved_connections: int(p, 'superuser_reserved_connections', 'postgres', 0),
    },
    redis: { port: int(r, 'port', 'redis', 1, 65535) },
    simulators: sims,
    files: {
      envTemplate: fileRef(dir, e, 'env_file'), engineUnit: fileRef(dir, e, 'systemd_unit'),
      pgConf: fileRef(dir, p, 'config'), pgHba: fileRef(dir, p, 'hba'), redisConf: fileRef(dir, r, 'config'),
      simEnv: s ? fileRef(dir, s, 'env_file') : null,
      prometheus: top.prometheus === undefined ? null : fileRef(dir, obj(top.prometheus, 'prometheus'), 'config'),
      placement, patroni: placement === null ? null : path.join(path.dirname(placement), 'patroni', 'patroni.yml'),
    },
    ...hosts,
    shards: shardsOf(hosts.dbs, pgPort, placement),
  };
}

export function loadTopology(file = DEFAULT_TOPOLOGY): Topology {
  return parseTopology(readJson(file, 'topology'), path.resolve(file));
}

// ---- the topology as the engine's environment ------------------------------------

/** Each shard's URL: its host, or with a placement both its hosts, primary first, following the writable one. */
export function pgShardsOf(t: Topology, password = 'x'): string {
  return t.shards.map((s) => {
    const hosts = s.hosts.map((h) => `${h.address}:${s.port}`).join(',');
    const follow = t.files.placement === null ? '' : '?target_session_attrs=read-write';
    return `postgres://${t.postgres.user}:${password}@${hosts}/${t.postgres.database}${follow}`;
  }).join(',');
}

export function redisUrlsOf(t: Topology): string {
  return t.apps.map((a) => `redis://${a.address}:${t.redis.port}`).join(',');
}

/** What every app server's engine.env must say for the budget and the routing. */
export function topologyEnv(t: Topology): Record<string, string> {
  return {
    APP_SERVERS: String(t.apps.length),
    WORKERS: String(t.engine.workers_per_app_server),
    PG_POOL_SIZE: String(t.engine.pg_pool_size),
    CRON_POOL_SIZE: String(t.engine.cron_pool_size),
    PG_RESERVED_CONNECTIONS: String(t.engine.pg_reserved_connections),
    PG_MAX_CONNECTIONS: String(t.postgres.max_connections_for_fleet),
    PORT: String(t.engine.port),
    PG_SHARDS: pgShardsOf(t),
    REDIS_URLS: redisUrlsOf(t),
  };
}

/**
 * What the HA layer takes of each PostgreSQL instance besides the fleet, at most, as
 * deploy/6-node/ha/README.md "Connection budget, per PostgreSQL instance" counts it
 * (test/deploy.test.ts holds the two to the same figures). Each list names where the
 * connections are counted.
 */
export const HA_CONNECTIONS = {
  /** Superusers: within superuser_reserved_connections, not the fleet's slots. */
  superuser: [['Patroni', 1], ['pgBackRest', 2], ['bf-ha-metrics.sh', 1], ['an operator\'s psql', 1]],
  /** The `rewind` role while a former primary rejoins: one of PG_RESERVED_CONNECTIONS. */
  reserved: [['pg_rewind', 1]],
  /** Not in max_connections (PostgreSQL 12+): within max_wal_senders. */
  walSenders: [['the standby\'s walsender', 1], ['a rebuild\'s pg_basebackup', 2]],
} as const satisfies Record<string, ReadonlyArray<readonly [string, number]>>;

export type HaPart = keyof typeof HA_CONNECTIONS;

export const haTotal = (part: HaPart): number => HA_CONNECTIONS[part].reduce((n, [, c]) => n + c, 0);

/** `Patroni 1 + pgBackRest 2 + ... = 5` */
export const haFormula = (part: HaPart): string =>
  `${HA_CONNECTIONS[part].map(([who, c]) => `${who} ${c}`).join(' + ')}${HA_CONNECTIONS[part].length > 1 ? ` = ${haTotal(part)}` : ''}`;

export interface BudgetVerdict { ok: boolean; budget: ConnectionBudget; cfg: Config; reason: string | null }

/** src/config.ts decides: loadConfig (ranges, names the variable) then assertBudget. */
export function judgeBudget(env: Env): BudgetVerdict {
  const cfg = loadConfig(env);
  const budget = connectionBudget(cfg);
  try {
    assertBudget(cfg);
    return { ok: true, budget, cfg, reason: null };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, budget, cfg, reason: err.message };
    throw err;
  }
}

/** The largest value of one variable that still fits the budget (0 if none does). */
export function largestThatFits(env: Env, name: 'PG_POOL_SIZE' | 'WORKERS' | 'APP_SERVERS', max: number): number {
  let best = 0;
  for (let v = 1; v <= max; v++) {
    const cfg = loadConfig({ ...env, [name]: String(v) });
    if (connectionBudget(cfg).perDatabase <= cfg.pgMaxConnections) best = v;
  }
  return best;
}

export interface Capacity { maxPoolSize: number; maxWorkers: number; maxAppServers: number; poolWithOneMoreServer: number }

export function capacity(env: Env): Capacity {
  const servers = loadConfig(env).appServers;
  return {
    maxPoolSize: largestThatFits(env, 'PG_POOL_SIZE', 1000),
    maxWorkers: largestThatFits(env, 'WORKERS', 256),
    maxAppServers: largestThatFits(env, 'APP_SERVERS', 64),
    poolWithOneMoreServer: largestThatFits({ ...env, APP_SERVERS: String(servers + 1) }, 'PG_POOL_SIZE', 1000),
  };
}

// ---- env files (engine.env, sim.env): KEY=value lines --------------------------------

export interface EnvFile { vars: Record<string, string>; badLines: string[] }

/** The subset of EnvironmentFile syntax that systemd, node --env-file and bash agree on. */
export function parseEnvFile(textIn: string): EnvFile {
  const vars: Record<string, string> = {};
  const badLines: string[] = [];
  for (const line of textIn.split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) continue;
    const m = /^([A-Z][A-Z0-9_]*)=([^\s"'\\`$]*)$/.exec(l);
    if (m) vars[m[1]!] = m[2]!;
    else badLines.push(l);
  }
  return { vars, badLines };
}

/** Every variable src/config.ts reads, taken from its source so the list never drifts. */
export function configVariables(): string[] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // tools/ops -> src/config.ts in a checkout, dist/tools/ops -> dist/src/config.js when built.
  const candidates = ['config.js', 'config.ts'].map((f) => path.join(here, '..', '..', 'src', f));
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new TopologyError(`cannot find src/config beside ${path.join(here, '..')}`);
  const names = [...readFileSync(file, 'utf8').matchAll(/\b(?:str|int|bool|urls|oneOf|namespace)\(env, '([A-Z][A-Z0-9_]*)'/g)].map((m) => m[1]!);
  return [...new Set(names)];
}

export const PLACEHOLDER = /CHANGE_ME_[A-Z0-9_]*/;

// ---- postgresql.conf / pg_hba.conf ------------------------------------------------

/** The last `name = value` wins, as in PostgreSQL; comments stripped. */
export function pgSetting(conf: string, name: string): string | null {
  let value: string | null = null;
  for (const line of conf.split('\n')) {
    const m = new RegExp(`^\\s*${name}\\s*=\\s*([^#]*)`).exec(line);
    if (m) value = m[1]!.trim().replace(/^'(.*)'$/, '$1');
  }
  return value;
}

export interface HbaGrant { database: string; user: string; address: string }

/** What each non-reject `host*` line admits over TCP. */
export function hbaGrants(hba: string): HbaGrant[] {
  const out: HbaGrant[] = [];
  for (const line of hba.split('\n')) {
    const f = line.replace(/#.*/, '').trim().split(/\s+/);
    if (!f[0]?.startsWith('host') || f.length < 5 || f[4] === 'reject') continue;
    out.push({ database: f[1]!, user: f[2]!, address: f[3]!.replace(/\/32$/, '') });
  }
  return out;
}

/** Addresses that some non-reject `host*` line admits. */
export function hbaAdmitted(hba: string): string[] {
  return hbaGrants(hba).map((g) => g.address);
}
