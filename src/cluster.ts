// Process entry. The node:cluster primary checks that a native uWS loads here,
// validates config and the connection budget, migrates the shards, ensures the first
// admin, then forks WORKERS HTTP workers and one cron process, respawns any that die,
// and drains all on SIGTERM.
import cluster, { type Worker } from 'node:cluster';
import { AdminEmailTaken, ensureAdmin } from './accounts/service.js';
import { assertBudget, ConfigError, loadConfig, type Config } from './config.js';
import { runCron } from './cron/main.js';
import { openTool } from './engine.js';
import { buildDashboard } from './http/dashboard/page.js';
import { loadUws, runtime, UwsUnavailable, UWS_UNAVAILABLE_EXIT, type UwsBuild } from './http/uws.js';
import { log, setLogContext, setLogLevel } from './log.js';
import { Fleet } from './metrics/fleet.js';
import { processRestarts, zeroCounters } from './metrics/index.js';
import { startProcessMetrics } from './metrics/process.js';
import { app as appMetrics, collected } from './metrics/registry.js';
import { SQL_DIR } from './paths.js';
import { loadMigrations, migrateReachable } from './shard/migrate.js';
import { runWorker } from './worker.js';

type Role = 'worker' | 'cron';

const EX_CONFIG = 78;

/**
 * A start that restarting cannot fix: say why on stderr and exit EX_CONFIG, or
 * EX_UNAVAILABLE for a runtime with no native uWS (systemd retries neither).
 */
function refuse(reason: string, code = EX_CONFIG): never {
  log.error('refusing to start', { reason, exit_code: code });
  process.stderr.write(`engine: ${reason}\n`);
  process.exit(code);
}

/** Before anything is forked: workers that could only serve on the JavaScript fallback never start. */
function nativeUwsOrExit(): UwsBuild {
  try {
    const { build } = loadUws();
    log.info('uws loaded', { uws: build, runtime: runtime() });
    return build;
  } catch (err) {
    if (!(err instanceof UwsUnavailable)) throw err;
    return refuse(err.message, UWS_UNAVAILABLE_EXIT);
  }
}

function loadOrExit(): Config {
  try {
    const cfg = loadConfig();
    setLogLevel(cfg.logLevel);
    assertBudget(cfg);
    return cfg;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return refuse(err.message);
  }
}

/**
 * The files read at start besides the code, checked once here: a copy of the engine
 * without them (dist/ from tsc alone, a hand-made release) would otherwise crash
 * every worker as it starts, respawned forever. Nothing a restart can fix.
 */
function checkInstallation(cfg: Config): void {
  try {
    buildDashboard();
    if (cfg.migrateOnStart && loadMigrations().length === 0) throw new Error(`no migrations in ${SQL_DIR}`);
  } catch (err) {
    refuse(`incomplete installation: ${(err as Error).message} (install what \`npm run release\` builds)`);
  }
}

async function prepare(cfg: Config): Promise<void> {
  if (cfg.migrateOnStart) await migrateReachable(cfg.pgShards);
  const tool = openTool(cfg);
  try {
    await ensureAdmin(tool.deps, cfg.adminEmail, cfg.adminPassword).catch((err: unknown) => {
      if (err instanceof AdminEmailTaken) throw new ConfigError(err.message);
      // The admin's shard may be the one that is down: serve anyway, the admin exists already
      // on every deployment but the first.
      log.error('could not ensure the first admin', { err });
    });
  } finally {
    await tool.close();
  }
}

async function runPrimary(): Promise<void> {
  setLogContext({ role: 'primary', pid: process.pid });
  const cfg = loadOrExit();
  const build = nativeUwsOrExit();
  checkInstallation(cfg);
  try {
    await prepare(cfg);
  } catch (err) {
    if (err instanceof ConfigError) refuse(err.message);
    log.error('start failed: shards not reachable or migration failed', { err });
    process.exit(1);
  }
  // Each child has a role and a slot ("0".."WORKERS-1", or "cron"): a respawn takes over
  // its predecessor's slot, which labels its per-process metrics.
  const roles = new Map<Worker, { role: Role; slot: string }>();
  const fleet = new Fleet(() => roles.keys());
  exportPrimary(cfg, roles);
  const respawns: number[] = [];
  let stopping = false;
  let listening = 0;

  const fork = (role: Role, slot: string) => {
    const w = cluster.fork({ ENGINE_ROLE: role, ENGINE_WORKER_INDEX: slot });
    roles.set(w, { role, slot });
    w.on('message', (msg: { type?: string }) => {
      if (fleet.handle(w, msg)) return;
      if (msg?.type === 'listening' && ++listening === cfg.workers) {
        log.info('engine ready', { url: `http://${cfg.host}:${cfg.port}`, workers: cfg.workers,
          shards: cfg.pgShards.length, redis: cfg.redisUrls, uws: `${build.package}@${build.version}` });
      }
    });
  };

  cluster.on('exit', (w, code, signal) => {
    const { role, slot } = roles.get(w) ?? { role: 'worker' as const, slot: '0' };
    roles.delete(w);
    fleet.exited(w);
    if (stopping) return;
    // A worker that found no native uWS will not find one when forked again.
    if (code === UWS_UNAVAILABLE_EXIT) refuse(`a ${role} process found no native uWS build (exit ${code})`,
      UWS_UNAVAILABLE_EXIT);
    const now = Date.now();
    respawns.push(now);
    while (respawns.length && respawns[0]! < now - 10_000) respawns.shift();
    if (respawns.length > 20) {
      log.error('crash loop: more than 20 respawns in 10 s, giving up');
      process.exit(1);
    }
    log.warn('process died, respawning', { role, code, signal });
    processRestarts.inc({ role });
    fork(role, slot);
  });

  const shutdown = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal: sig });
    for (const w of roles.keys()) if (w.isConnected()) w.send({ type: 'shutdown' });
    const force = setTimeout(() => {
      for (const w of roles.keys()) w.process.kill('SIGKILL');
      process.exit(1);
    }, cfg.shutdownGraceMs + 3000);
    force.unref();
    const check = setInterval(() => {
      if (roles.size > 0) return;
      clearInterval(check);
      log.info('stopped');
      process.exit(0);
    }, 20);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  for (let i = 0; i < cfg.workers; i++) fork('worker', String(i));
  fork('cron', 'cron');
}

/** The primary's own figures: its process metrics, respawns, and the children it runs. */
function exportPrimary(cfg: Config, roles: Map<Worker, { role: Role }>): void {
  startProcessMetrics('primary');
  zeroCounters(cfg.pgShards.length);
  collected(appMetrics, 'bf_processes', 'Worker and cron processes running under the primary, by role', 'gauge', () => {
    const running = { worker: 0, cron: 0 };
    for (const { role } of roles.values()) running[role]++;
    return Object.entries(running).map(([role, value]) => ({ labels: { role }, value }));
  });
  collected(appMetrics, 'bf_processes_expected',
    'Worker and cron processes the primary is configured to run (WORKERS, and one cron)', 'gauge',
    () => [{ labels: { role: 'worker' }, value: cfg.workers }, { labels: { role: 'cron' }, value: 1 }]);
}

if (cluster.isPrimary) {
  await runPrimary();
} else {
  const cfg = loadConfig();
  setLogLevel(cfg.logLevel);
  if (process.env.ENGINE_ROLE === 'cron') await runCron(cfg);
  else await runWorker(cfg);
}
