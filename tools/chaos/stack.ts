// The chaos runner's own world: three Postgres clusters, a Redis, the two simulators
// and the engine cluster, on ports and in a folder of its own (.stack/chaos/ by
// default), so stopping a shard or Redis here never touches the shared dev/test stack.
// Every piece it starts is registered for cleanup, which runs on success, failure and
// interrupt alike.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { DIST_DIR } from '../../src/paths.js';
import { ensurePgCluster, ensureRedis, ensureStack, findPgBin, stopPgCluster, stopStack, type StackOptions } from '../dev/stack.js';
import { portAnswers, request } from '../lib/http.js';
import { alive, childrenWithRole, spawnSim, type SpawnedSim } from '../lib/spawn.js';
import { eventually, sleep } from '../lib/wait.js';

export interface ChaosPorts { engine: number; gateway: number; provider: number; pg: number[]; redis: number }

export const ADMIN_EMAIL = 'chaos-admin@example.com';
export const ADMIN_PASSWORD = 'chaos-admin-password';
/** The database the runner recreates at every start, so each run checks only its own rows. */
const DB = 'chaos';

const say = (msg: string) => process.stdout.write(`chaos: ${msg}\n`);

async function onServer<T>(port: number, db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  // One-off connections for administration (create/drop databases).
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: db, connectionTimeoutMillis: 3000 });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

export class ChaosStack {
  readonly opts: StackOptions;
  readonly shardUrls: string[];
  readonly redisUrl: string;
  private readonly bin = findPgBin();
  /** Small pools for the checks a scenario runs (some poll every few milliseconds). */
  private pools = new Map<number, pg.Pool>();

  constructor(readonly dir: string, readonly ports: ChaosPorts) {
    this.opts = { dir, pgPorts: ports.pg, redisPort: ports.redis };
    this.shardUrls = ports.pg.map((p) => `postgres://postgres@127.0.0.1:${p}/${DB}`);
    this.redisUrl = `redis://127.0.0.1:${ports.redis}`;
  }

  /** Clusters and Redis up (reused when already running), after checking the HTTP ports are free. */
  async up(): Promise<void> {
    for (const port of [this.ports.engine, this.ports.gateway, this.ports.provider]) {
      if (await portAnswers(port)) throw new Error(`port ${port} is already serving; stop what runs there or pick other ports (--engine-port)`);
    }
    mkdirSync(this.dir, { recursive: true });
    // A start can lose a race for its port (an outgoing connection may hold it briefly).
    for (let attempt = 1; ; attempt++) {
      try {
        await ensureStack(this.opts);
        return;
      } catch (err) {
        if (attempt >= 3) throw err;
        say(`stack start failed (${(err as Error).message.split('\n')[0]}); retrying`);
        await sleep(1000);
      }
    }
  }

  /** A fresh database on each shard and an empty Redis: each scenario checks only its own rows. */
  async fresh(): Promise<void> {
    await this.endPools();
    await ensureStack(this.opts); // restarts a shard or Redis a failed scenario left stopped
    await Promise.all(this.ports.pg.map((port) => onServer(port, 'postgres', async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${DB}`);
    })));
    spawnSync('redis-cli', ['-p', String(this.ports.redis), 'flushall'], { stdio: 'ignore' });
  }

  /** `immediate` is a crash: the server dies without a checkpoint, every connection drops. */
  stopShard(shard: number, mode: 'fast' | 'immediate' = 'immediate'): void { stopPgCluster(this.bin, shard, this.opts, mode); }

  startShard(shard: number): void { ensurePgCluster(this.bin, shard, this.opts); }

  stopRedis(): void {
    spawnSync('redis-cli', ['-p', String(this.ports.redis), 'shutdown', 'nosave'], { stdio: 'ignore' });
  }

  async startRedis(): Promise<void> { await ensureRedis(this.ports.redis, this.opts); }

  async sql<T extends pg.QueryResultRow = any>(shard: number, text: string, params: unknown[] = []): Promise<T[]> {
    let pool = this.pools.get(shard);
    if (!pool) {
      pool = new pg.Pool({ connectionString: this.shardUrls[shard], max: 3, connectionTimeoutMillis: 3000, idleTimeoutMillis: 5000 });
      pool.on('error', () => undefined); // a stopped shard drops idle clients; the next query reconnects
      this.pools.set(shard, pool);
    }
    return (await pool.query<T>(text, params)).rows;
  }

  async endPools(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools = new Map();
    await Promise.allSettled(pools.map((p) => p.end()));
  }

  down(): void { stopStack(this.opts); }
}

export interface Sims { gateway: SpawnedSim; provider: SpawnedSim }

export async function startSims(ports: ChaosPorts): Promise<Sims> {
  const gateway = await spawnSim('gateway', { GATEWAY_PORT: String(ports.gateway), SIM_QUIET: '1' });
  try {
    const provider = await spawnSim('provider', { PROVIDER_PORT: String(ports.provider), SIM_QUIET: '1' });
    return { gateway, provider };
  } catch (err) {
    await gateway.stop();
    throw err;
  }
}

/** The engine's environment: chaos ports, crons at test speed, quiet logs. */
export function engineEnv(stack: ChaosStack, overrides: Record<string, string>): NodeJS.ProcessEnv {
  const { ports } = stack;
  return {
    ...process.env,
    PORT: String(ports.engine), WORKERS: '2', PG_SHARDS: stack.shardUrls.join(','), REDIS_URLS: stack.redisUrl,
    PG_POOL_SIZE: '12', CRON_POOL_SIZE: '4',
    ADMIN_EMAIL, ADMIN_PASSWORD, LOG_LEVEL: 'warn',
    GATEWAY_URL: `http://127.0.0.1:${ports.gateway}`, PROVIDER_URL: `http://127.0.0.1:${ports.provider}`,
    ENGINE_PUBLIC_URL: `http://127.0.0.1:${ports.engine}`,
    PAYMENT_RECONCILE_AFTER_S: '2', UNCLAIMED_REFUND_AFTER_S: '1', STUCK_ORDER_AFTER_S: '2', PAYMENTS_CRON_EVERY_MS: '500',
    PROVIDER_VERIFY_BACKOFF_MS: '50', OUTBOX_EVERY_MS: '500', NOTIFY_FILE: '/dev/null',
    // A retry after a crash waits this long for the dead request's Idempotency-Key claim.
    IDEMPOTENCY_LOCK_S: '2',
    // Every customer is registered and logs in from 127.0.0.1.
    LOGIN_MAX_FAILS_ADDRESS: '1000000', REGISTER_MAX_ADDRESS: '1000000',
    // Customers are made by the dozen per scenario: the production scrypt cost (2^17)
    // would spend the run on hashing, which no chaos scenario is about.
    PASSWORD_SCRYPT_N: '16384',
    ...overrides,
  };
}

export class EngineProc {
  readonly child: ChildProcess;
  readonly url: string;
  private readonly exited: Promise<void>;

  constructor(stack: ChaosStack, overrides: Record<string, string>, logFile: string) {
    const out = openSync(logFile, 'a');
    this.child = spawn(process.execPath, [path.join(DIST_DIR, 'cluster.js')], { env: engineEnv(stack, overrides), stdio: ['ignore', out, out] });
    closeSync(out);
    this.url = `http://127.0.0.1:${stack.ports.engine}`;
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  get pid(): number { return this.child.pid!; }

  get alive(): boolean { return alive(this.child); }

  async ready(timeoutMs = 60_000): Promise<void> {
    const ok = await eventually(async () => {
      if (!this.alive) throw new Error(`engine exited during start (code ${this.child.exitCode}); see the engine log`);
      const res = await request(this.url, 'GET', '/readyz', { timeoutMs: 1000 });
      return res.status === 200 && this.workers().length > 0;
    }, timeoutMs);
    if (!ok) throw new Error(`engine not ready after ${timeoutMs} ms`);
  }

  workers(): number[] { return childrenWithRole(this.pid, 'worker'); }
  cron(): number[] { return childrenWithRole(this.pid, 'cron'); }

  /** SIGTERM (drain), then SIGKILL for the primary and any child left behind. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.alive) return;
    const children = [...this.workers(), ...this.cron()];
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { this.child.kill('SIGKILL'); for (const pid of children) killQuietly(pid); }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  try { process.kill(pid, signal); return true; } catch { return false; }
}

/** Resident memory of a process in MiB (0 when it is gone). */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

export { say };
