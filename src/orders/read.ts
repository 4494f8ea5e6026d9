// Reading orders: one order (owner or admin; through the read cache, or from Postgres
// for a writer reading its own write), a customer's orders across shards, the audit
// trail. Nothing here changes an order (lifecycle.ts does).
import type { Principal } from '../accounts/principal.js';
import { publicUserId } from '../accounts/service.js';
import type { Core, ReadSide } from '../deps.js';
import { EngineError } from '../errors.js';
import { decodeRow } from '../router/ids.js';
import { decodeCursor, mergePage, scatter, shardBound, type Page } from '../router/scatter.js';
import { toOrder, type Order } from './model.js';
import { SQL } from './sql.js';

/** Owner or admin; anyone else is told the order does not exist. */
export async function getOrderRow(deps: Core, p: Principal,
  id: string): Promise<{ shard: number; local: number; row: Record<string, unknown> }> {
  const { shard, local } = decodeRow('order', id, deps.shards.count);
  const row = (await deps.shards.get(shard).query(SQL.orderById, [local])).rows[0];
  if (!row || (row.customer_id !== p.uuid && p.role !== 'admin')) throw new EngineError('not_found', 'No such order');
  return { shard, local, row };
}

/**
 * Owner or admin, from Postgres: what a writer reads after its write. A concurrent
 * writer's change may not have reached the cache yet when this one's fence said no.
 */
export async function getOrderFresh(deps: Core, p: Principal, id: string): Promise<Order> {
  const { shard, row } = await getOrderRow(deps, p, id);
  return toOrder(shard, row, publicUserId(deps, row.customer_id as string));
}

/** Owner or admin, through the read cache (src/cache/orders.ts states its bound). */
export async function getOrder(deps: Core & ReadSide, p: Principal, id: string): Promise<Order> {
  const { shard, local } = decodeRow('order', id, deps.shards.count);
  const load = async () => {
    const row = (await deps.shards.get(shard).query(SQL.orderById, [local])).rows[0];
    return row ? { order: toOrder(shard, row, publicUserId(deps, row.customer_id as string)),
      owner: row.customer_id as string } : null;
  };
  const found = await deps.cache.orders.read(shard, local, load);
  if (!found || (found.owner !== p.uuid && p.role !== 'admin')) throw new EngineError('not_found', 'No such order');
  return found.order;
}

/** The order row with its lines (status, customer, payment), as fulfilment works from it; undefined when none. */
export async function orderWithLines(deps: Core, shard: number, local: number): Promise<Record<string,
  unknown> | undefined> {
  return (await deps.shards.get(shard).query(SQL.withLines, [local])).rows[0];
}

export async function listOrders(deps: Core, p: Principal, limit: number, cursorRaw?: string): Promise<Page<Order>> {
  const cursor = decodeCursor(cursorRaw, deps.shards.count);
  const customerId = publicUserId(deps, p.uuid);
  const pages = await scatter(deps.dir.shards(), async (s) => {
    const b = shardBound(cursor, s);
    const res = await deps.shards.get(s).query(SQL.listByCustomer, [b.createdUs, b.local, p.uuid, limit + 1]);
    return res.rows.map((r) => ({ key: { createdUs: String(r.created_us), shard: s, local: r.id as number },
      value: toOrder(s, r, customerId) }));
  });
  return mergePage(pages, limit);
}

export async function orderEvents(deps: Core, p: Principal, id: string): Promise<unknown[]> {
  const { shard, local } = await getOrderRow(deps, p, id);
  const res = await deps.shards.get(shard).query(SQL.events, [local]);
  return res.rows.map((r) => ({ ...r, created_at: (r.created_at as Date).toISOString() }));
}
