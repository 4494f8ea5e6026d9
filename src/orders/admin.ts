// The admin's view of orders: every customer's, across every shard, newest first,
// with the same stable cross-shard cursor as a customer's own list.
import { publicUserId } from '../accounts/service.js';
import type { Core } from '../deps.js';
import { parseCategoryId } from '../router/directory.js';
import { decodeUser } from '../router/ids.js';
import { decodeCursor, mergePage, scatter, shardBound, type Keyed, type Page } from '../router/scatter.js';
import { toOrder, type Order, type OrderStatus } from './model.js';
import { adminListStatement, type AdminFilter } from './sql.js';

export interface AdminOrderQuery { status?: OrderStatus; customer_id?: string; category_id?: string; limit: number;
  cursor?: string }

function filterOf(deps: Core, q: AdminOrderQuery): AdminFilter {
  const f: AdminFilter = {};
  if (q.status !== undefined) f.status = q.status;
  if (q.customer_id !== undefined) f.customerUuid = decodeUser(q.customer_id, deps.shards.count).uuid;
  if (q.category_id !== undefined) f.categoryId = parseCategoryId(q.category_id);
  return f;
}

/**
 * A customer's orders live on the shards of their items, so a customer filter still
 * asks every shard; a category's orders are all on that category's shard.
 */
export async function listAllOrders(deps: Core, q: AdminOrderQuery): Promise<Page<Order>> {
  const cursor = decodeCursor(q.cursor, deps.shards.count);
  const filter = filterOf(deps, q);
  const shards = filter.categoryId === undefined ? deps.dir.shards() : [deps.dir.shardOfCategory(filter.categoryId)];
  const pages = await scatter(shards, async (s): Promise<Keyed<Order>[]> => {
    const { statement, params } = adminListStatement(filter, shardBound(cursor, s), q.limit + 1);
    const res = await deps.shards.get(s).query(statement, params);
    return res.rows.map((r) => ({
      key: { createdUs: String(r.created_us), shard: s, local: r.id as number },
      value: toOrder(s, r, publicUserId(deps, r.customer_id as string)),
    }));
  });
  return mergePage(pages, q.limit);
}
