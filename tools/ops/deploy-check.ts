// `npm run deploy:check [-- <topology.json>] [--env <engine.env>]`
// Refuses a topology whose fleet would exhaust a PostgreSQL instance's connections (the
// formula is src/config.ts connectionBudget/assertBudget, fed the environment the
// topology implies), and checks that the files beside it say the same thing: the env
// template (or a rendered env with --env), postgresql.conf, pg_hba.conf, redis.conf,
// sim.env and the engine's systemd unit. With the HA layer's placement (postgres.placement)
// each shard's PG_SHARDS URL must name its two hosts as placed, and Patroni's settings and
// the HA layer's own connections are checked too. With --env (on an app server) it also
// checks that this Node loads a native uWS, as the engine will. Exit 0 = deployable,
// 78 = refused, 2 = usage (a topology or --env file that does not exist).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../src/config.js';
import { loadUws, runtime, SUPPORTED_RUNTIMES, UwsUnavailable, UWS_UNAVAILABLE_EXIT } from '../../src/http/uws.js';
import { parseShardUrl, ShardUrlError, splitShardList } from '../../src/shard/hosts.js';
import { parseCli, UsageError, isEntry } from '../lib/args.js';
import {
  capacity, configVariables, DEFAULT_TOPOLOGY, haFormula, haTotal, hbaAdmitted, hbaGrants, judgeBudget, loadTopology, parseEnvFile,
  pgSetting, PLACEHOLDER, topologyEnv, TopologyError, type BudgetVerdict, type ShardHosts, type Topology,
} from './topology.js';

export type Level = 'ok' | 'fail' | 'skip' | 'info';
export interface Finding { level: Level; what: string }
export interface Report { findings: Finding[]; verdict: BudgetVerdict | null; refused: boolean }

const EX_CONFIG = 78;
const EX_USAGE = 2;

/** A file the check reads; missing, it is skipped, or refused when `required` (a file named on the command line). */
function readOrSkip(file: string | null, label: string, out: Finding[], required = false): string | null {
  if (file === null) {
    out.push({ level: 'skip', what: `${label}: not named in the topology` });
    return null;
  }
  if (!existsSync(file)) {
    out.push({ level: required ? 'fail' : 'skip', what: `${label}: ${file} not found` });
    return null;
  }
  return readFileSync(file, 'utf8');
}

function check(out: Finding[], ok: boolean, what: string): void {
  out.push({ level: ok ? 'ok' : 'fail', what });
}

function budgetFindings(t: Topology, out: Finding[]): BudgetVerdict {
  const env = topologyEnv(t);
  const v = judgeBudget(env);
  if (v.ok) {
    const per = t.files.placement === null ? 'per database' : 'per PostgreSQL instance (a shard\'s primary and its standby alike)';
    out.push({ level: 'ok', what: `budget ${per}: ${v.budget.formula} <= PG_MAX_CONNECTIONS(${v.budget.max}), headroom ${v.budget.max - v.budget.perDatabase}` });
  } else {
    out.push({ level: 'fail', what: `REFUSED: ${v.reason}` });
  }
  const c = capacity(env);
  out.push({
    level: 'info',
    what: `what fits in ${v.budget.max} (one change at a time): PG_POOL_SIZE <= ${c.maxPoolSize} at WORKERS=${v.cfg.workers}; ` +
      `WORKERS <= ${c.maxWorkers} at PG_POOL_SIZE=${v.cfg.pgPoolSize}; APP_SERVERS <= ${c.maxAppServers} as configured; ` +
      `with ${v.cfg.appServers + 1} app servers PG_POOL_SIZE <= ${c.poolWithOneMoreServer} at WORKERS=${v.cfg.workers}`,
  });
  haBudgetFindings(t, out);
  return v;
}

/** A path named by the topology, as written there (relative to topology.json). */
const named = (t: Topology, file: string) => path.relative(path.dirname(t.file), file);

/**
 * With the HA layer, what it takes of each instance besides the fleet (ha/README.md,
 * "Connection budget, per PostgreSQL instance"): the superuser reserve must hold its
 * superusers, PG_RESERVED_CONNECTIONS the rewind role.
 */
function haBudgetFindings(t: Topology, out: Finding[]): void {
  if (t.files.placement === null) return;
  const superuser = t.postgres.superuser_reserved_connections;
  check(out, haTotal('superuser') <= superuser,
    `HA layer per instance, superuser-only: ${haFormula('superuser')} <= superuser_reserved_connections(${superuser}) (ha/README.md)`);
  const reserved = t.engine.pg_reserved_connections;
  check(out, haTotal('reserved') <= reserved,
    `HA layer per instance, within PG_RESERVED_CONNECTIONS(${reserved}): ${haFormula('reserved')} while a former primary rejoins`);
}

function pgConfFindings(t: Topology, out: Finding[]): void {
  const conf = readOrSkip(t.files.pgConf, 'postgresql.conf', out);
  if (conf === null) return;
  const max = Number(pgSetting(conf, 'max_connections'));
  const reserved = Number(pgSetting(conf, 'superuser_reserved_connections') ?? 3);
  const fleet = t.postgres.max_connections_for_fleet;
  check(out, max - reserved === fleet && reserved === t.postgres.superuser_reserved_connections,
    `postgresql.conf: max_connections ${max} - superuser_reserved_connections ${reserved} = ${max - reserved} ordinary slots ` +
    `(topology: ${fleet} for the fleet + ${t.postgres.superuser_reserved_connections} reserved)`);
  const port = pgSetting(conf, 'port') ?? '5432';
  if (t.files.placement === null) check(out, Number(port) === t.postgres.port, `postgresql.conf: port ${port} (topology: ${t.postgres.port})`);
  else out.push({ level: 'info', what: `postgresql.conf: port ${port}, replaced by Patroni with each shard's (${t.shards.map((s) => s.port).join(', ')})` });
}

/** Patroni passes these on every instance's command line: they beat postgresql.conf. */
function patroniFindings(t: Topology, out: Finding[]): void {
  if (t.files.placement === null) return;
  const yml = readOrSkip(t.files.patroni, 'patroni.yml', out);
  if (yml === null) return;
  const setting = (name: string) => Number(new RegExp(`^\\s*${name}:\\s*(\\d+)`, 'm').exec(yml)?.[1] ?? NaN);
  const max = setting('max_connections');
  const { max_connections_for_fleet: fleet, superuser_reserved_connections: reserved } = t.postgres;
  check(out, max === fleet + reserved,
    `patroni.yml: max_connections ${max} on every instance (topology: ${fleet} for the fleet + ${reserved} reserved = ${fleet + reserved})`);
  const senders = setting('max_wal_senders');
  check(out, senders >= haTotal('walSenders'), `patroni.yml: max_wal_senders ${senders} >= ${haFormula('walSenders')} (not counted in max_connections)`);
}

const sortedSet = (xs: string[]) => [...new Set(xs)].sort();

function hbaFindings(t: Topology, out: Finding[]): void {
  const hba = readOrSkip(t.files.pgHba, 'pg_hba.conf', out);
  if (hba === null) return;
  const apps = t.apps.map((a) => a.address).sort();
  if (t.files.placement === null) {
    const admitted = sortedSet(hbaAdmitted(hba));
    check(out, admitted.join() === apps.join(), `pg_hba.conf admits ${admitted.join(', ') || 'nobody'} over TCP (the app hosts: ${apps.join(', ')})`);
    return;
  }
  haHbaFindings(t, hba, apps, out);
}

/**
 * The HA layer's pg_hba.conf: the app hosts to the engine's database; the db hosts to each
 * other (replication, pg_rewind) and to the engine's database too, because the restore
 * drill (ha/pgbackrest/restore-drill.sh) runs on a db host and reads the live shard.
 */
function haHbaFindings(t: Topology, hba: string, apps: string[], out: Finding[]): void {
  const grants = hbaGrants(hba);
  const dbs = t.dbs.map((d) => d.address).sort();
  const db = t.postgres.database;
  const toEngine = (g: { database: string }) => g.database === db || g.database === 'all';
  const engine = sortedSet(grants.filter(toEngine).map((g) => g.address));
  const expected = sortedSet([...apps, ...dbs]);
  check(out, engine.join() === expected.join(),
    `pg_hba.conf admits ${engine.join(', ') || 'nobody'} to ${db} (the app hosts ${apps.join(', ')}; the db hosts for the restore drill)`);
  const replication = sortedSet(grants.filter((g) => g.database === 'replication').map((g) => g.address));
  check(out, replication.join() === dbs.join(), `pg_hba.conf admits ${replication.join(', ') || 'nobody'} for replication (the db hosts: ${dbs.join(', ')})`);
  const stray = grants.filter((g) => !(toEngine(g) && apps.includes(g.address)) && !dbs.includes(g.address));
  check(out, stray.length === 0, `pg_hba.conf admits nobody else over TCP${stray.length ? `; also ${stray.map((g) => `${g.user} to ${g.database} from ${g.address}`).join(', ')}` : ''}`);
}

/** `user@host:port/db` of each URL in a list (`user@h1:port,h2:port/db` for a shard with standbys), passwords left out. */
export function endpoints(list: string | undefined): string[] {
  return splitList(list).map((s) => {
    try {
      const u = new URL(s);
      return `${u.username}@${u.hostname}:${u.port}${u.pathname === '/' ? '' : u.pathname}`;
    } catch {
      try {
        return `${/^[a-z]+:\/\/([^:@/]*)[^@/]*@/.exec(s)?.[1] ?? ''}@${parseShardUrl(s).display}`;
      } catch {
        return `invalid(${s})`;
      }
    }
  });
}

/** A comma list of URLs; PG_SHARDS' multi-host URLs hold commas of their own. */
const splitList = (list: string | undefined) => splitShardList(list ?? '');

function sameValues(t: Topology, vars: Record<string, string>, out: Finding[], label: string): void {
  const want = topologyEnv(t);
  for (const key of ['APP_SERVERS', 'WORKERS', 'PG_POOL_SIZE', 'CRON_POOL_SIZE', 'PG_RESERVED_CONNECTIONS', 'PG_MAX_CONNECTIONS', 'PORT']) {
    if (vars[key] !== want[key]) out.push({ level: 'fail', what: `${label}: ${key}=${vars[key] ?? '(unset)'} but topology.json says ${want[key]}` });
  }
  if (t.files.placement !== null) placementShardFindings(t, vars.PG_SHARDS, out, label);
  for (const key of t.files.placement === null ? ['PG_SHARDS', 'REDIS_URLS'] as const : ['REDIS_URLS'] as const) {
    const have = endpoints(vars[key]).join(',');
    const expect = endpoints(want[key]).join(',');
    check(out, have === expect, `${label}: ${key} lists ${have || '(unset)'}${have === expect ? ' in topology order' : `, topology order is ${expect}`}`);
  }
  queryTimeoutFindings(vars, out, label);
  const host = vars.HOST ?? '127.0.0.1';
  check(out, !/^(127\.|localhost$|::1$)/.test(host), `${label}: HOST=${host} (must be reachable by the load balancer, e.g. 0.0.0.0)`);
}

/** `user@h1:port,h2:port/db` for each shard, as the placement wants it. */
const wantedEndpoint = (t: Topology, s: ShardHosts) =>
  `${t.postgres.user}@${s.hosts.map((h) => `${h.address}:${s.port}`).join(',')}/${t.postgres.database}`;

/**
 * With a placement, shard i's URL names that shard's two hosts (primary first, as the
 * placement lists them) on its port and follows the one that takes writes; each
 * mismatch is refused naming the shard and what it should say.
 */
function placementShardFindings(t: Topology, list: string | undefined, out: Finding[], label: string): void {
  const urls = splitList(list);
  const where = named(t, t.files.placement!);
  if (urls.length !== t.shards.length) {
    out.push({ level: 'fail', what: `${label}: PG_SHARDS names ${urls.length} shards, ${where} places ${t.shards.length}` });
    return;
  }
  const problems = t.shards.map((s, i) => shardProblem(t, s, urls[i]!)).filter((p): p is string => p !== null);
  for (const p of problems) out.push({ level: 'fail', what: `${label}: PG_SHARDS ${p}` });
  if (problems.length === 0) {
    out.push({ level: 'ok', what: `${label}: PG_SHARDS names each shard's two hosts in ${where} order (primary first) on its port, ` +
      `with target_session_attrs=read-write: ${t.shards.map((s) => `shard ${s.shard} ${s.hosts.map((h) => `${h.address}:${s.port}`).join(',')}`).join('; ')}` });
  }
}

/** What is wrong with one shard's URL against its placement, or null. */
function shardProblem(t: Topology, s: ShardHosts, url: string): string | null {
  const want = wantedEndpoint(t, s);
  const roles = `${s.hosts[0]!.name} primary, ${s.hosts[1]!.name} standby, port ${s.port}`;
  let hosts: string[];
  let follows: boolean;
  try {
    const target = parseShardUrl(url);
    hosts = target.hosts.map((h) => `${h.host}:${h.port}`);
    follows = /[?&]target_session_attrs=read-write(&|$)/.test(url);
  } catch (err) {
    if (!(err instanceof ShardUrlError)) throw err;
    return `shard ${s.shard}: ${err.message}; expected ${want} (${roles})`;
  }
  const have = endpoints(url)[0]!;
  if (have !== want) return `shard ${s.shard} is ${have}, expected ${want} (${roles})${mismatchHint(t, s, hosts)}`;
  if (!follows) {
    return `shard ${s.shard} (${have}) has no target_session_attrs=read-write; expected ${want}?query_timeout=<ms>&target_session_attrs=read-write ` +
      '(a libpq tool given the URL without it takes whichever host answers first: the standby, after a failover)';
  }
  return null;
}

/** Why a shard's hosts differ from the placement's, when it is one of the usual mistakes. */
function mismatchHint(t: Topology, s: ShardHosts, hosts: string[]): string {
  const expected = s.hosts.map((h) => `${h.address}:${s.port}`);
  if (hosts.length === 1) return ': one host only; a shard with a standby names both';
  if (hosts.join() === [...expected].reverse().join()) return ': its hosts in the other order; the normal primary comes first';
  const other = t.shards.find((o) => o !== s && o.hosts.map((h) => `${h.address}:${o.port}`).join() === hosts.join());
  if (other) return `: that is shard ${other.shard}'s; the URLs must be in shard order (the order is the data placement)`;
  if (hosts.map((h) => h.replace(/:\d+$/, '')).join() === s.hosts.map((h) => h.address).join()) return `: wrong port; shard ${s.shard} listens on ${s.port}`;
  return '';
}

/**
 * A client-side deadline on every query (node-postgres reads query_timeout from the
 * URL): without it a partitioned db host hangs requests on its pooled connections
 * until TCP gives up. It must exceed the server-side statement timeout.
 */
function queryTimeoutFindings(vars: Record<string, string>, out: Finding[], label: string): void {
  const statementMs = Number(vars.PG_STATEMENT_TIMEOUT_MS ?? 5000);
  const urls = splitList(vars.PG_SHARDS);
  const timeouts = urls.map((u) => Number(new URLSearchParams(u.includes('?') ? u.slice(u.indexOf('?') + 1) : '').get('query_timeout') ?? NaN));
  check(out, urls.length > 0 && timeouts.every((t) => Number.isInteger(t) && t > statementMs),
    `${label}: every PG_SHARDS URL has query_timeout > PG_STATEMENT_TIMEOUT_MS (${statementMs}) (got ${timeouts.join(', ')}): ` +
    'the deadline that turns a network partition of a db host into a 503 instead of a hung request');
}

function envFindings(t: Topology, file: string | null, rendered: boolean, out: Finding[]): Record<string, string> | null {
  const label = rendered ? `env ${file}` : 'engine.env.example';
  const textIn = readOrSkip(file, label, out, rendered);
  if (textIn === null) return null;
  const { vars, badLines } = parseEnvFile(textIn);
  check(out, badLines.length === 0, `${label}: KEY=value lines only${badLines.length ? `; not understood: ${badLines.slice(0, 3).join(' | ')}` : ''}`);
  const missing = configVariables().filter((v) => !(v in vars));
  check(out, missing.length === 0, `${label}: sets every variable src/config.ts reads${missing.length ? `; missing ${missing.join(', ')}` : ''}`);
  const holes = Object.entries(vars).filter(([, v]) => PLACEHOLDER.test(v)).map(([k]) => k);
  if (rendered) check(out, holes.length === 0, `${label}: no CHANGE_ME_ placeholders left${holes.length ? `; still in ${holes.join(', ')}` : ''}`);
  else out.push({ level: 'info', what: `${label}: ${holes.length} variables to fill in per deployment (${holes.join(', ')})` });
  sameValues(t, vars, out, label);
  try {
    // As bf-engine.service runs it: NODE_ENV=production refuses test secrets and cheap password hashes.
    const v = judgeBudget({ ...vars, NODE_ENV: 'production' });
    check(out, v.ok, `${label}: the engine would ${v.ok ? 'accept' : 'refuse'} it: ${v.reason ?? `${v.budget.formula} <= ${v.budget.max}`}`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    out.push({ level: 'fail', what: `${label}: the engine would refuse it: ${err.message}` });
  }
  return vars;
}

function redisFindings(t: Topology, out: Finding[]): void {
  const conf = readOrSkip(t.files.redisConf, 'redis.conf', out);
  if (conf === null) return;
  const port = Number(/^port\s+(\d+)/m.exec(conf)?.[1] ?? 6379);
  check(out, port === t.redis.port, `redis.conf: port ${port} (topology: ${t.redis.port})`);
  check(out, /^requirepass\s+\S+/m.test(conf), 'redis.conf: requirepass is set (REDIS_URLS carry the password)');
}

function simFindings(t: Topology, out: Finding[]): void {
  if (t.simulators === null) return;
  const textIn = readOrSkip(t.files.simEnv, 'sim.env.example', out);
  if (textIn === null) return;
  const { vars } = parseEnvFile(textIn);
  const host = t.apps.find((a) => a.name === t.simulators!.host)!;
  const ok = vars.GATEWAY_HOST === host.address && vars.PROVIDER_HOST === host.address &&
    vars.GATEWAY_PORT === String(t.simulators.gateway_port) && vars.PROVIDER_PORT === String(t.simulators.provider_port);
  check(out, ok, `sim.env: gateway ${vars.GATEWAY_HOST}:${vars.GATEWAY_PORT}, provider ${vars.PROVIDER_HOST}:${vars.PROVIDER_PORT} (topology: ${host.name} ${host.address})`);
}

/** The scrape config lists every app server's engine, in host order (each is scraped on its own). */
function prometheusFindings(t: Topology, out: Finding[]): void {
  const conf = readOrSkip(t.files.prometheus, 'prometheus.yml', out);
  if (conf === null) return;
  const targets = [...conf.matchAll(/^\s*-?\s*targets:\s*\[([^\]]*)\]/gm)].flatMap((m) => [...m[1]!.matchAll(/"([^"]+)"/g)].map((x) => x[1]!));
  const want = t.apps.map((a) => `${a.address}:${t.engine.port}`);
  check(out, targets.join() === want.join(), `prometheus.yml: scrapes ${targets.join(', ') || 'nothing'} (the app servers: ${want.join(', ')})`);
}

function unitFindings(t: Topology, vars: Record<string, string> | null, out: Finding[]): void {
  const unit = readOrSkip(t.files.engineUnit, 'bf-engine.service', out);
  if (unit === null) return;
  const stopS = Number(/^TimeoutStopSec=(\d+)/m.exec(unit)?.[1] ?? 90);
  const graceS = Number(vars?.SHUTDOWN_GRACE_MS ?? 10000) / 1000;
  check(out, stopS > graceS + 3, `bf-engine.service: TimeoutStopSec=${stopS} > SHUTDOWN_GRACE_MS ${graceS} s + 3 s (the drain is not cut short)`);
  check(out, /^KillMode=mixed/m.test(unit), 'bf-engine.service: KillMode=mixed (SIGTERM to the primary, which drains its workers)');
  check(out, /^Environment=NODE_ENV=production$/m.test(unit), 'bf-engine.service: NODE_ENV=production (the engine refuses test secrets and cheap password hashes)');
  const noRestart = (/^RestartPreventExitStatus=(.*)$/m.exec(unit)?.[1] ?? '').split(/\s+/);
  check(out, noRestart.includes('78') && noRestart.includes(String(UWS_UNAVAILABLE_EXIT)),
    `bf-engine.service: RestartPreventExitStatus has 78 and ${UWS_UNAVAILABLE_EXIT} (a refused config or runtime is not retried)`);
}

/** On an app server (--env): the Node running this check should be the one the unit starts. */
function runtimeFindings(out: Finding[]): void {
  const rt = runtime();
  try {
    const { build } = loadUws();
    check(out, true, `runtime: ${build.package} ${build.version} loads natively on Node ${rt.node} (glibc ${rt.glibc ?? 'none'})`);
    if (build.package !== 'uws-upstream') out.push({ level: 'info', what: `runtime: production runs ${SUPPORTED_RUNTIMES[0]}` });
  } catch (err) {
    if (!(err instanceof UwsUnavailable)) throw err;
    check(out, false, `runtime: the engine would refuse to start (exit ${UWS_UNAVAILABLE_EXIT}): ${err.message.replace(/\n\s*/g, ' | ')}`);
  }
}

function hostFindings(t: Topology, out: Finding[]): void {
  const standbyOf = (name: string) => t.shards.filter((s) => s.hosts.slice(1).some((h) => h.name === name)).map((s) => `, standby of shard ${s.shard}`).join('');
  const dbs = t.dbs.map((d) => `${d.name} ${d.address} = shard ${d.shard}${standbyOf(d.name)}`).join(', ');
  out.push({ level: 'info', what: `hosts: ${t.apps.map((a) => `${a.name} ${a.address}`).join(', ')} (app); ${dbs} (db)` });
  if (t.files.placement === null) return;
  out.push({ level: 'info', what: `placement ${named(t, t.files.placement)}: ${t.shards.map((s) => `shard ${s.shard} on ${s.hosts.map((h) => h.name).join('+')} :${s.port}`).join(', ')} (primary first)` });
}

/** Everything `deploy:check` looks at; the CLI prints it, the tests read it. */
export function checkDeploy(topologyFile: string, envFile?: string): Report {
  const findings: Finding[] = [];
  let t: Topology;
  try {
    t = loadTopology(topologyFile);
  } catch (err) {
    if (!(err instanceof TopologyError)) throw err;
    return { findings: [{ level: 'fail', what: `REFUSED: ${err.message}` }], verdict: null, refused: true };
  }
  hostFindings(t, findings);
  let verdict: BudgetVerdict | null = null;
  try {
    verdict = budgetFindings(t, findings);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    findings.push({ level: 'fail', what: `REFUSED: ${err.message} (from ${path.basename(topologyFile)})` });
  }
  pgConfFindings(t, findings);
  patroniFindings(t, findings);
  hbaFindings(t, findings);
  const vars = envFindings(t, envFile ?? t.files.envTemplate, envFile !== undefined, findings);
  redisFindings(t, findings);
  simFindings(t, findings);
  unitFindings(t, vars, findings);
  prometheusFindings(t, findings);
  if (envFile !== undefined) runtimeFindings(findings);
  return { findings, verdict, refused: findings.some((f) => f.level === 'fail') };
}

function parseArgs(argv: string[]): { topology: string; env?: string } {
  const { values, positionals } = parseCli(argv, { options: { env: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, positionals: 1 });
  if (values.help) throw new UsageError('usage');
  if (values.env === '') throw new UsageError('--env needs a file');
  return { topology: positionals[0] ?? DEFAULT_TOPOLOGY, ...(values.env === undefined ? {} : { env: values.env }) };
}

function main(): void {
  let args: { topology: string; env?: string };
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage: npm run deploy:check [-- <topology.json>] [--env <rendered engine.env>]\n`);
    process.exit(EX_USAGE);
  }
  for (const [what, file] of [['', args.topology], ['--env ', args.env]] as const) {
    if (file !== undefined && !existsSync(file)) {
      process.stderr.write(`deploy:check: ${what}${file} not found\n`);
      process.exit(EX_USAGE);
    }
  }
  const report = checkDeploy(path.resolve(args.topology), args.env ? path.resolve(args.env) : undefined);
  const mark: Record<Level, string> = { ok: 'ok  ', fail: 'FAIL', skip: 'skip', info: '    ' };
  process.stdout.write(`deploy:check ${path.relative(process.cwd(), args.topology) || args.topology}${args.env ? ` --env ${args.env}` : ''}\n`);
  for (const f of report.findings) process.stdout.write(`  ${mark[f.level]} ${f.what}\n`);
  if (report.refused) {
    process.stdout.write('deploy:check: REFUSED (fix the lines marked FAIL)\n');
    process.exit(EX_CONFIG);
  }
  process.stdout.write('deploy:check: OK\n');
}

if (isEntry(import.meta.url)) main();
