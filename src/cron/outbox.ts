// The outbox dispatcher: leases due notices in a short transaction, delivers them to
// the sinks outside any transaction, then marks them delivered. A crash between
// delivery and marking redelivers (at least once; sinks dedupe by notice id).
import { appendFile } from 'node:fs/promises';
import type { Core } from '../deps.js';
import { log } from '../log.js';
import { outboxDelivered, outboxFailures } from '../metrics/index.js';
import { encodeRow } from '../router/ids.js';
import { publicUserId } from '../accounts/service.js';

export interface Notice { id: string; topic: string; payload: Record<string, unknown>; created_at: string }

export interface Sink { name: string; deliver(batch: Notice[]): Promise<void> }

export function logSink(): Sink {
  return { name: 'log', deliver: async (batch) => { for (const n of batch) log.info('notice', { notice: n }); } };
}

export function fileSink(path: string): Sink {
  return { name: 'file', deliver: (batch) => appendFile(path, batch.map((n) => JSON.stringify(n)).join('\n') + '\n') };
}

export function webhookSink(url: string, timeoutMs: number): Sink {
  return {
    name: 'webhook',
    deliver: async (batch) => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ notices: batch }), signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) throw new Error(`notice webhook answered ${res.status}`);
    },
  };
}

export function sinksFromConfig(deps: Core): Sink[] {
  const sinks: Sink[] = [];
  if (deps.cfg.notifyFile) sinks.push(fileSink(deps.cfg.notifyFile));
  if (deps.cfg.notifyWebhookUrl) sinks.push(webhookSink(deps.cfg.notifyWebhookUrl, deps.cfg.remoteTimeoutMs));
  if (sinks.length === 0) sinks.push(logSink());
  return sinks;
}

const LEASE = {
  name: 'outbox_lease',
  text: `UPDATE outbox SET leased_until = now() + make_interval(secs => $2), attempts = attempts + 1
         WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= now()
                        AND (leased_until IS NULL OR leased_until < now())
                      ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, topic, payload, created_at, attempts`,
};
const DELIVERED = { name: 'outbox_delivered',
  text: 'UPDATE outbox SET delivered_at = now(), leased_until = NULL WHERE id = ANY($1::bigint[])' };
const RETRY_LATER = {
  name: 'outbox_retry',
  text: `UPDATE outbox SET leased_until = NULL, last_error = $2,
           next_attempt_at = now() + make_interval(secs => LEAST(300, power(2, attempts)::int))
             WHERE id = ANY($1::bigint[])`,
};

const PRUNE = {
  name: 'outbox_prune',
  text: `DELETE FROM outbox WHERE ctid IN (SELECT ctid FROM outbox
           WHERE delivered_at IS NOT NULL AND delivered_at < now() - make_interval(secs => $1) LIMIT $2)`,
};

/** Deletes one batch of notices delivered more than OUTBOX_RETENTION_S ago; how many went. */
export async function pruneOutbox(deps: Core, shard: number, batch: number): Promise<number> {
  return (await deps.shards.get(shard).query(PRUNE, [deps.cfg.outboxRetentionS, batch])).rowCount ?? 0;
}

function toNotice(deps: Core, shard: number, r: Record<string, unknown>): Notice {
  const p = r.payload as Record<string, unknown>;
  const payload = { ...p, order_id: encodeRow('order', shard, p.order_id as number),
    customer_id: publicUserId(deps, p.customer_id as string) };
  return { id: `${shard}:${r.id as number}`, topic: r.topic as string, payload,
    created_at: new Date(r.created_at as Date).toISOString() };
}

/** One lease-deliver-mark round on one shard; returns how many were delivered. */
export async function dispatchOnce(deps: Core, shard: number, sinks: Sink[], batchSize = 200): Promise<number> {
  const s = deps.shards.get(shard);
  const rows = (await s.query(LEASE, [batchSize, deps.cfg.outboxLeaseS])).rows;
  if (rows.length === 0) return 0;
  const ids = rows.map((r) => r.id as number);
  try {
    const batch = rows.map((r) => toNotice(deps, shard, r));
    for (const sink of sinks) await sink.deliver(batch);
  } catch (err) {
    outboxFailures.inc({ shard: String(shard) });
    await s.query(RETRY_LATER, [ids, err instanceof Error ? err.message : String(err)]);
    return 0;
  }
  await s.query(DELIVERED, [ids]);
  outboxDelivered.inc({ shard: String(shard) }, ids.length);
  return ids.length;
}
