// Exactly-once POSTs, as request middleware: a route that declares `idempotent: true`
// (route.ts) runs its handler through `IdempotencyKeys.run` whenever the request
// carries an Idempotency-Key. The first request with a key claims it on the caller's
// shard with the request's fingerprint; the answer is stored when it is known and
// replayed to every retry. Same key + other body -> 422; a retry while the first is
// still running -> 409. A claim whose holder died is taken over after
// IDEMPOTENCY_LOCK_S; the work it redoes must itself be idempotent (orders carry their
// request key). A retryable error gives the claim back (key-release.ts: fenced by the
// claim's lease, and made again once a failing-over shard answers). A single-shard
// checkout keeps its key inside its own statement (RouteDef.ownsKey), so the middleware
// stands aside for it.
import { createHash } from 'node:crypto';
import type { Principal } from '../accounts/principal.js';
import type { Core } from '../deps.js';
import { EngineError } from '../errors.js';
import { perShard } from '../shard/batch.js';
import type { Shard } from '../shard/pools.js';
import type { Lane, Shards } from '../shard/shards.js';
import { KeyReleases } from './key-release.js';
import { errorBody, type Reply } from './reply.js';

const SQL = {
  // Claims and completions of concurrent requests go to their shard as one statement each
  // (shard/batch.ts); a row of the batch is {u: user id, k: key, ...}. A claim and a
  // takeover return the lease they set (l), exact, as the fence of the claim's release.
  claim: {
    name: 'idem_claim_batch',
    text: `INSERT INTO idempotency_keys (user_id, key, route, fingerprint, locked_until)
           SELECT t.u, t.k, t.r, t.f, now() + make_interval(secs => t.s)
             FROM jsonb_to_recordset($1::jsonb) AS t(u uuid, k text, r text, f text, s int)
           ON CONFLICT (user_id, key) DO NOTHING
           RETURNING user_id::text AS u, key AS k, to_json(locked_until) #>> '{}' AS l`,
  },
  get: {
    name: 'idem_get',
    text: `SELECT route, fingerprint, status, response_code, response_body, locked_until > now() AS locked
           FROM idempotency_keys WHERE user_id = $1 AND key = $2`,
  },
  takeOver: {
    name: 'idem_take_over',
    text: `UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $3)
           WHERE user_id = $1 AND key = $2 AND status = 'in_progress' AND locked_until <= now()
           RETURNING to_json(locked_until) #>> '{}' AS l`,
  },
  complete: {
    name: 'idem_complete_batch',
    text: `UPDATE idempotency_keys k SET status = 'done', response_code = t.c, response_body = t.b
             FROM jsonb_to_recordset($1::jsonb) AS t(u uuid, k text, c int, b jsonb)
            WHERE k.user_id = t.u AND k.key = t.k`,
  },
  // Keys older than the window, a bounded batch at a time. A retry after that runs again;
  // an order it would have replayed is found by its request key (place_orders, sql/010).
  prune: {
    name: 'idem_prune',
    text: `DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys
             WHERE created_at < now() - make_interval(secs => $1) AND (status = 'done' OR locked_until < now())
               LIMIT $2)`,
  },
} as const;

/** What a request was: its route, path parameters and body. */
export function fingerprint(route: string, params: unknown, body: unknown): string {
  return createHash('sha256').update(JSON.stringify([route, params, body])).digest('hex');
}

/** A claim row: user, key, route, fingerprint, lock seconds. */
interface Claim { u: string; k: string; r: string; f: string; s: number }
interface Completion { u: string; k: string; c: number; b: unknown }

const claimKey = (u: string, k: string) => `${u.toLowerCase()}\u0000${k}`;

/** Where the claim went: this attempt holds it (with its lease, the fence), or a stored answer to replay. */
type Claimed = { fence: string } | { replay: Reply };

const inProgress = () => new EngineError('idempotency_in_progress', undefined, { retryAfterS: 1 });

/**
 * An answer that tells the client to come back later (a 5xx, or any error with
 * Retry-After: a deadlock retried to its end, a rate limit) is not what the key means:
 * the key is released so the retry runs again. Every other answer is final.
 */
function isFinal(err: unknown): err is EngineError {
  return err instanceof EngineError && err.status < 500 && err.retryAfterS === undefined;
}

/** The keys of one process: its claim and completion batches per shard and lane. */
export class IdempotencyKeys {
  /**
   * Which claims of the batch won, as the lease each won with (null: lost). Two of one
   * key in a batch: the first may win, the other waits its turn.
   */
  private readonly claims = perShard<Claim, string | null>(async (q, rows) => {
    const first = new Map<string, Claim>(); // the row (and fingerprint) the winner was sent with
    for (const r of rows) if (!first.has(claimKey(r.u, r.k))) first.set(claimKey(r.u, r.k), r);
    const res = await q.query<{ u: string; k: string; l: string }>(SQL.claim, [JSON.stringify([...first.values()])]);
    const won = new Map(res.rows.map((r) => [claimKey(r.u, r.k), r.l]));
    return rows.map((r) => {
      const lease = won.get(claimKey(r.u, r.k)) ?? null;
      won.delete(claimKey(r.u, r.k));
      return lease;
    });
  });

  private readonly completions = perShard<Completion, void>(async (q, rows) => {
    await q.query(SQL.complete, [JSON.stringify(rows)]);
    return rows.map(() => undefined);
  });

  private readonly releases = new KeyReleases();

  constructor(private readonly pools: Shards, private readonly lockS: number) {}

  /** The process is shutting down: releases still being retried are given up. */
  close(): void { this.releases.close(); }

  /**
   * Runs `work` once per (user, key), with the connections of the route's lane. Answers
   * and final client errors (4xx) are stored and replayed (`replayed`); retryable errors,
   * and an answer that could not be stored, release the key so a retry can run again.
   */
  async run(lane: Lane, p: Principal, key: string, route: string, fp: string,
    work: () => Promise<Reply>): Promise<Reply> {
    const shard = this.pools.forLane(lane).get(p.shard);
    // Taken before the claim: no later than the end of the lease it will get.
    const leaseEndMs = performance.now() + this.lockS * 1000;
    const claimed = await this.claimOrReplay(shard, p, key, route, fp);
    if ('replay' in claimed) return { ...claimed.replay, replayed: true };
    let reply: Reply;
    try {
      reply = await work();
    } catch (err) {
      if (!isFinal(err)) {
        await this.releases.release(shard, { u: p.uuid, k: key, l: claimed.fence }, leaseEndMs);
        throw err;
      }
      reply = { status: err.status, body: errorBody(err) };
    }
    try {
      await this.completions(shard).submit({ u: p.uuid, k: key, c: reply.status, b: reply.body ?? null });
    } catch (err) {
      // The answer could not be kept (the key's shard failing over, say): the client
      // is told to retry, and the key is given back like after a failed attempt, so the
      // retry redoes the (idempotent) work and answers alike, instead of meeting 409s
      // until the lease lapses and a takeover redoes it anyway.
      await this.releases.release(shard, { u: p.uuid, k: key, l: claimed.fence }, leaseEndMs);
      throw err;
    }
    return reply;
  }

  private async claimOrReplay(shard: Shard, p: Principal, key: string, route: string, fp: string): Promise<Claimed> {
    const fence = await this.claims(shard).submit({ u: p.uuid, k: key, r: route, f: fp, s: this.lockS });
    if (fence !== null) return { fence };
    const row = (await shard.query(SQL.get, [p.uuid, key])).rows[0];
    if (!row) throw inProgress();
    if (row.route !== route || row.fingerprint !== fp) throw new EngineError('idempotency_mismatch');
    if (row.status === 'done') return { replay: { status: row.response_code as number, body: row.response_body ?? undefined } };
    if (row.locked) throw inProgress();
    const taken = (await shard.query<{ l: string }>(SQL.takeOver, [p.uuid, key, this.lockS])).rows[0];
    if (!taken) throw inProgress();
    return { fence: taken.l };
  }
}

/** Deletes one batch of keys past IDEMPOTENCY_RETENTION_S on a shard (the retention cron); how many went. */
export async function pruneIdempotencyKeys(deps: Core, shard: number, batch: number): Promise<number> {
  return (await deps.shards.get(shard).query(SQL.prune, [deps.cfg.idempotencyRetentionS, batch])).rowCount ?? 0;
}
