// Exactly-once POSTs, as request middleware: a route that declares `idempotent: true`
// (route.ts) runs its handler through `IdempotencyKeys.run` whenever the request
// carries an Idempotency-Key. The first request with a key claims it on the caller's
// shard with the request's fingerprint; the answer is stored when it is known (by the
// attempt still holding the claim: one taken over stores nothing) and replayed to every
// retry. Same key + other body -> 422; a retry while the first is
// still running -> 409. A claim whose holder died is taken over after
// IDEMPOTENCY_LOCK_S; the work it redoes must itself be idempotent (orders carry their
// request key). A retryable error gives the claim back (key-release.ts: fenced by the
// claim's token, and made again once a failing-over shard answers), also when the
// claim itself failed: it may have committed with only its answer lost. A single-shard
// checkout keeps its key inside its own statement (RouteDef.ownsKey), so the middleware
// stands aside for it.
import { createHash, randomUUID } from 'node:crypto';
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
  // takeover write the attempt's token (c), the fence of the claim's release.
  claim: {
    name: 'idem_claim_batch',
    text: `INSERT INTO idempotency_keys (user_id, key, route, fingerprint, locked_until, claim)
           SELECT t.u, t.k, t.r, t.f, now() + make_interval(secs => t.s), t.c
             FROM jsonb_to_recordset($1::jsonb) AS t(u uuid, k text, r text, f text, s int, c uuid)
           ON CONFLICT (user_id, key) DO NOTHING
           RETURNING user_id::text AS u, key AS k`,
  },
  get: {
    name: 'idem_get',
    text: `SELECT route, fingerprint, status, response_code, response_body, locked_until > now() AS locked
           FROM idempotency_keys WHERE user_id = $1 AND key = $2`,
  },
  takeOver: {
    name: 'idem_take_over',
    text: `UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $3), claim = $4
           WHERE user_id = $1 AND key = $2 AND status = 'in_progress' AND locked_until <= now() RETURNING 1`,
  },
  // Fenced by the attempt's token (a): an attempt whose lease lapsed and was taken over
  // stores nothing, so the answer replayed is the one of the attempt holding the claim.
  complete: {
    name: 'idem_complete_batch',
    text: `UPDATE idempotency_keys k SET status = 'done', response_code = t.c, response_body = t.b
             FROM jsonb_to_recordset($1::jsonb) AS t(u uuid, k text, c int, b jsonb, a uuid)
            WHERE k.user_id = t.u AND k.key = t.k AND k.claim = t.a`,
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

/** A claim row: user, key, route, fingerprint, lock seconds, the attempt's token. */
interface Claim { u: string; k: string; r: string; f: string; s: number; c: string }
/** A completion row: user, key, status code, body, the attempt's token. */
interface Completion { u: string; k: string; c: number; b: unknown; a: string }

const claimKey = (u: string, k: string) => `${u.toLowerCase()}\u0000${k}`;

/** Where the claim went: this attempt holds it, or a stored answer to replay. */
type Claimed = { held: true } | { replay: Reply };

const inProgress = () => new EngineError('idempotency_in_progress', undefined, { retryAfterS: 1 });
const isInProgress = (err: unknown) => err instanceof EngineError && err.code === 'idempotency_in_progress';

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
  /** Which claims of the batch won. Two of one key in a batch: the first may win, the other waits its turn. */
  private readonly claims = perShard<Claim, boolean>(async (q, rows) => {
    const first = new Map<string, Claim>(); // the row (and fingerprint) the winner was sent with
    for (const r of rows) if (!first.has(claimKey(r.u, r.k))) first.set(claimKey(r.u, r.k), r);
    const res = await q.query<{ u: string; k: string }>(SQL.claim, [JSON.stringify([...first.values()])]);
    const won = new Set(res.rows.map((r) => claimKey(r.u, r.k)));
    return rows.map((r) => won.delete(claimKey(r.u, r.k)));
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
    // This attempt's token, written with its claim: what its release is fenced by.
    const mine = { u: p.uuid, k: key, c: randomUUID() };
    const giveBack = () => this.releases.release(shard, mine, leaseEndMs);
    let claimed: Claimed;
    try {
      claimed = await this.claimOrReplay(shard, p, key, route, fp, mine.c);
    } catch (err) {
      // The claim may have committed with only its answer lost (the primary died in
      // between): give back whatever carries this attempt's token, or a retry would
      // meet 409s until the lease lapses. A claim that never landed matches nothing.
      if (!isFinal(err) && !isInProgress(err)) await giveBack();
      throw err;
    }
    if ('replay' in claimed) return { ...claimed.replay, replayed: true };
    let reply: Reply;
    try {
      reply = await work();
    } catch (err) {
      if (!isFinal(err)) {
        await giveBack();
        throw err;
      }
      reply = { status: err.status, body: errorBody(err) };
    }
    try {
      await this.completions(shard).submit({ u: p.uuid, k: key, c: reply.status, b: reply.body ?? null, a: mine.c });
    } catch (err) {
      // The answer could not be kept (the key's shard failing over, say): the client
      // is told to retry, and the key is given back like after a failed attempt, so the
      // retry redoes the (idempotent) work and answers alike, instead of meeting 409s
      // until the lease lapses and a takeover redoes it anyway.
      await giveBack();
      throw err;
    }
    return reply;
  }

  private async claimOrReplay(shard: Shard, p: Principal, key: string, route: string, fp: string, token: string): Promise<Claimed> {
    if (await this.claims(shard).submit({ u: p.uuid, k: key, r: route, f: fp, s: this.lockS, c: token })) return { held: true };
    const row = (await shard.query(SQL.get, [p.uuid, key])).rows[0];
    if (!row) throw inProgress();
    if (row.route !== route || row.fingerprint !== fp) throw new EngineError('idempotency_mismatch');
    if (row.status === 'done') return { replay: { status: row.response_code as number, body: row.response_body ?? undefined } };
    if (row.locked || (await shard.query(SQL.takeOver, [p.uuid, key, this.lockS, token])).rowCount === 0) throw inProgress();
    return { held: true };
  }
}

/** Deletes one batch of keys past IDEMPOTENCY_RETENTION_S on a shard (the retention cron); how many went. */
export async function pruneIdempotencyKeys(deps: Core, shard: number, batch: number): Promise<number> {
  return (await deps.shards.get(shard).query(SQL.prune, [deps.cfg.idempotencyRetentionS, batch])).rowCount ?? 0;
}
