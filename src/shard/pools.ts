// One pg-pool per shard per process. Every timeout is explicit, the wait queue is
// bounded, and a shard that fails to connect is declared down for a cooldown so its
// requests fail fast (503) instead of piling up behind connect timeouts. A shard of
// several hosts follows its primary (src/shard/primary.ts): its pools connect where
// writes are taken, and drop connections left at a host that no longer takes them.
import pg from 'pg';
import Pool from 'pg-pool';
import { EngineError } from '../errors.js';
import { log } from '../log.js';
import { admissionShed } from '../metrics/index.js';
import { hostName } from './hosts.js';
import { isFailoverCode, isRetryable, isServerError, toEngineError } from './pg-errors.js';
import { hostOf, NotWritable, Primary } from './primary.js';

// BIGINT (int8) and NUMERIC come back as strings by default; our bigints are ids and
// cents well inside 2^53, so parse them as numbers once, here.
pg.types.setTypeParser(20, (v) => Number(v));

export interface Statement { name?: string; text: string }
export type Sql = Statement | string;

export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Sql, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface ShardOptions {
  /** Where the shard's writable host is; one per shard, shared by its lanes. */
  primary: Primary;
  poolSize: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  connectTimeoutMs: number;
  idleTxTimeoutMs: number;
  maxWaiting: number;
  downCooldownMs: number;
  appName: string;
}

export type ShardState = 'up' | 'down' | 'probing';

/**
 * What this process asked of one shard, as running totals: round trips (every query,
 * BEGIN and COMMIT included), connection checkouts and the time spent waiting for one,
 * and the time from sending a query to its answer. Where a request's time goes is read
 * off these (the bench samples them through /metrics).
 */
export interface ShardUsage { round_trips: number; checkouts: number; checkout_wait_ms: number; query_ms: number }

/** Why a connection left at a former primary was taken out of the pool (not a shard failure). */
class LeftBehind extends Error {
  readonly code = 'ELEFTBEHIND';
  constructor() { super('connection to a host that is no longer the primary'); }
}

export class Shard implements Queryable {
  readonly pool: Pool<pg.Client>;
  private downUntil = 0;
  private probing = false;
  private lastError: string | undefined;
  /** The pool's idle clients (from its events), so the ones at a former primary can be dropped at once. */
  private readonly idle = new Set<pg.ClientBase>();
  readonly usage: ShardUsage = { round_trips: 0, checkouts: 0, checkout_wait_ms: 0, query_ms: 0 };

  constructor(readonly index: number, private readonly opts: ShardOptions) {
    const { primary } = opts;
    this.pool = new Pool({
      Client: primary.clientClass(),
      connectionString: primary.target.urlFor(primary.host),
      max: opts.poolSize,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: opts.connectTimeoutMs,
      statement_timeout: opts.statementTimeoutMs,
      lock_timeout: opts.lockTimeoutMs,
      idle_in_transaction_session_timeout: opts.idleTxTimeoutMs,
      // A client-side deadline too: a partitioned host never answers, so the server-side
      // statement_timeout can never fire.
      query_timeout: opts.statementTimeoutMs + 1000,
      application_name: opts.appName,
    } as Pool.Config<pg.Client>);
    // pg-pool listens for a client's 'error' only while it is idle: a server ending a
    // checked-out connection (a crash, a failover's shutdown: 57P01) emits one with no
    // listener, and that would kill the process. The query in flight fails with it
    // anyway (or the next one, as not queryable), and is handled there.
    this.pool.on('connect', (client) => { client.on('error', () => undefined); });
    // An idle client losing its server must not crash the process; the shard is down
    // for the cooldown and, if it has standbys, looks for its primary.
    this.pool.on('error', (err) => {
      if (err instanceof LeftBehind) return;
      this.markDown(err);
      primary.suspect();
    });
    if (primary.follows) {
      // pg-pool emits 'release' (its types omit it; pg's Pool types have it).
      (this.pool as unknown as pg.Pool).on('release', (err: Error | undefined, client) => { if (!err) this.idle.add(client); });
      this.pool.on('acquire', (client) => this.idle.delete(client));
      this.pool.on('remove', (client) => this.idle.delete(client));
      primary.onChange(() => this.followPrimary());
    }
  }

  get primary(): Primary { return this.opts.primary; }

  /**
   * The primary moved: idle connections to the former one go now (a demoted primary
   * must not serve another write), busy ones when handed back, and the new primary is
   * tried at once, not after the cooldown. An idle client is removed the way pg-pool
   * removes one whose server went away: by the 'error' it listens for on idle clients
   * (pg-pool 3.10 has no public call for it); the pool then ends the connection.
   */
  private followPrimary(): void {
    for (const client of [...this.idle]) {
      if (!this.primary.isStale(hostOf(client))) continue;
      this.idle.delete(client);
      client.emit('error', new LeftBehind());
    }
    this.downUntil = 0;
  }

  get state(): ShardState {
    if (this.probing) return 'probing';
    return Date.now() < this.downUntil || this.lastError !== undefined ? 'down' : 'up';
  }

  stats() {
    return {
      shard: this.index, state: this.state, total: this.pool.totalCount, idle: this.pool.idleCount,
      waiting: this.pool.waitingCount, max: this.opts.poolSize, last_error: this.lastError ?? null,
    };
  }

  /** Where the shard's writes go, for operators (/readyz with an admin token). */
  primaryInfo() {
    const p = this.primary;
    return { primary: hostName(p.host), follows: p.follows, ...(p.follows ? { hosts: p.lastProbe } : {}) };
  }

  private markDown(err: unknown): void {
    const first = this.lastError === undefined;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.downUntil = Date.now() + this.opts.downCooldownMs;
    if (first) log.warn('shard down', { shard: this.index, err });
  }

  private markUp(): void {
    if (this.lastError !== undefined) log.info('shard up', { shard: this.index });
    this.lastError = undefined;
    this.downUntil = 0;
  }

  private unavailable(): EngineError {
    return new EngineError('shard_unavailable', `Shard ${this.index} is unavailable`, { retryAfterS: 1, details: { shard: this.index } });
  }

  /** Checkout with fail-fast: down shards answer at once, one probe at a time heals them. */
  async connect(): Promise<pg.PoolClient> {
    const isProbe = this.lastError !== undefined;
    if (isProbe && (Date.now() < this.downUntil || this.probing)) throw this.unavailable();
    if (this.pool.waitingCount >= this.opts.maxWaiting) {
      admissionShed.inc({ reason: 'pg_queue_full' });
      throw new EngineError('overloaded', `Shard ${this.index} queue is full`, { retryAfterS: 1 });
    }
    if (isProbe) this.probing = true;
    // Every connection busy: this checkout waits in the pool's queue, and running out of
    // time there means the shard is busy, not down (declaring it down would turn an
    // overload into an outage of every request to it for the cooldown).
    const queued = this.pool.totalCount >= this.opts.poolSize && this.pool.idleCount === 0;
    const started = performance.now();
    try {
      // Not marked up here: a pooled idle client may be dead; a query that works says so.
      const client = await this.checkout();
      this.usage.checkouts++;
      this.usage.checkout_wait_ms += performance.now() - started;
      return client;
    } catch (err) {
      if (queued && isQueueTimeout(err)) {
        admissionShed.inc({ reason: 'pg_queue_timeout' });
        throw new EngineError('overloaded', `Shard ${this.index} is busy`, { retryAfterS: 1, details: { shard: this.index } });
      }
      this.markDown(err);
      this.primary.suspect();
      throw this.unavailable();
    } finally {
      if (isProbe) this.probing = false;
    }
  }

  /**
   * A pooled connection at the primary. One left at a former primary is dropped on the
   * way; a new one refused as not writable is tried once more if a probe (joined, or
   * made now: at most one per interval) found the primary elsewhere, so a shard whose
   * first host is a standby is served from its first request.
   */
  private async checkout(): Promise<pg.PoolClient> {
    let followed = false;
    for (;;) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        if (err instanceof NotWritable && !followed && (await this.primary.movedFrom(err.at))) {
          followed = true;
          continue;
        }
        throw err;
      }
      if (!this.primary.isStale(hostOf(client))) return client;
      client.release(new LeftBehind());
    }
  }

  /** A healthy connection goes back to the pool, unless the primary moved away from its host meanwhile. */
  private giveBack(client: pg.PoolClient): void {
    if (this.primary.isStale(hostOf(client))) client.release(new LeftBehind());
    else client.release();
  }

  /**
   * The connection met a failure: it is destroyed and the shard (if it has standbys)
   * looks for its primary. A broken socket also marks the shard down for the cooldown;
   * a server's own word (read-only, shutting down) does not: one terminated session
   * is no outage, and a host that is really going away refuses the next connect.
   */
  private lost(client: pg.PoolClient, err: unknown): void {
    client.release(err instanceof Error ? err : new Error(String(err)));
    if (!isServerError(err)) this.markDown(err);
    this.primary.suspect();
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Sql, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    const client = await this.connect();
    try {
      const res = await this.timed(() => client.query<R>(toConfig(sql, params)));
      this.giveBack(client);
      this.markUp();
      return res;
    } catch (err) {
      this.releaseAfterError(client, err);
      throw toEngineError(err, this.index);
    }
  }

  /**
   * One statement that is a whole transaction on its own (a plpgsql function, or CTEs),
   * in autocommit: one round trip instead of BEGIN, the statements and COMMIT. Like
   * transaction(), a serialization failure or deadlock rolled all of it back, so it is
   * retried a bounded number of times.
   */
  async statement<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: Sql, params: unknown[] = [], attemptsMax = 3): Promise<pg.QueryResult<R>> {
    return retried(() => this.query<R>(sql, params), attemptsMax);
  }


  /**
   * A transaction is a function: return commits, throw rolls back, the connection
   * always goes home. Serialization failures and deadlocks are retried a bounded
   * number of times; the function must therefore be safe to run again.
   */
  async transaction<T>(fn: (q: Queryable) => Promise<T>, attemptsMax = 3): Promise<T> {
    return retried(() => this.transactionOnce(fn), attemptsMax);
  }


  private async transactionOnce<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    const client = await this.connect();
    const q: Queryable = { query: (sql, params = []) => this.timed(() => client.query(toConfig(sql, params))) };
    try {
      await q.query('BEGIN');
      const result = await fn(q);
      await q.query('COMMIT');
      this.giveBack(client);
      this.markUp();
      return result;
    } catch (err) {
      if (isFailoverCode(err)) {
        // Nothing to roll back on a host that refuses writes or is going away.
        this.lost(client, err);
        throw toEngineError(err, this.index);
      }
      if (!(await this.rolledBack(client))) throw this.unavailable();
      // The connection is healthy: a domain refusal or a bug (an invariant) keeps its
      // own meaning; only SQL errors are translated.
      throw isServerError(err) ? toEngineError(err, this.index) : err;
    }
  }

  /** One round trip, counted and timed. */
  private async timed<T>(send: () => Promise<T>): Promise<T> {
    const started = performance.now();
    this.usage.round_trips++;
    try {
      return await send();
    } finally {
      this.usage.query_ms += performance.now() - started;
    }
  }

  /** Whether ROLLBACK worked; if not the connection is broken and the pool drops it. */
  private async rolledBack(client: pg.PoolClient): Promise<boolean> {
    try {
      await client.query('ROLLBACK');
      this.giveBack(client);
      return true;
    } catch (rbErr) {
      this.releaseAfterError(client, rbErr);
      return false;
    }
  }

  /**
   * A client that failed below SQL, or met a failover (read-only, shut down), goes back
   * with the error so the pool destroys it; a plain SQL error leaves it healthy.
   */
  private releaseAfterError(client: pg.PoolClient, err: unknown): void {
    if (isServerError(err) && !isFailoverCode(err)) {
      this.giveBack(client);
      return;
    }
    this.lost(client, err);
  }

  end(): Promise<void> { return this.pool.end(); }
}

/** Runs `once` again after a serialization failure or deadlock (it rolled all of it back), a bounded number of times. */
async function retried<T>(once: () => Promise<T>, attemptsMax: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await once();
    } catch (err) {
      const cause = err instanceof EngineError ? err.cause : err;
      if (attempt >= attemptsMax || !isRetryable(cause)) throw err;
    }
  }
}

/**
 * pg-pool fails a queued checkout after connectionTimeoutMillis with a bare Error; a
 * failed connect carries a socket code (ECONNREFUSED), a server error, or a cause.
 */
function isQueueTimeout(err: unknown): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === undefined && err.cause === undefined && !isServerError(err);
}

function toConfig(sql: Sql, values: unknown[]): pg.QueryConfig {
  return typeof sql === 'string' ? { text: sql, values } : { name: sql.name, text: sql.text, values };
}
