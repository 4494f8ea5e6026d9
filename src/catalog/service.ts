// Catalog: categories (created on the least-filled shard) and items (on their
// category's shard). Reads are public; writes are admin-only (checked in http).
import { versionOf, type Version } from '../cache/version.js';
import type { Core, ReadSide } from '../deps.js';
import { EngineError } from '../errors.js';
import { parseCategoryId } from '../router/directory.js';
import { decodeRow, encodeRow } from '../router/ids.js';
import { decodeCursor, mergePage, scatter, shardBound, type Keyed, type Page,
  type SortKey } from '../router/scatter.js';
import { isServerError } from '../shard/pg-errors.js';
import { publicItem, toItem, type AdminItem, type CachedItem, type Category, type Fulfillment,
  type Item } from './model.js';
import { SQL, STOCK_MAX } from './sql.js';

export async function createCategory(deps: Core, name: string): Promise<Category> {
  const counts = await scatter(deps.dir.shards(), async (s) =>
    (await deps.shards.get(s).query<{ n: number }>(SQL.countCategories)).rows[0]!.n);
  const shard = counts.indexOf(Math.min(...counts));
  const res = await deps.shards.get(shard).query(SQL.insertCategory, [deps.shards.count, shard, name]);
  const row = res.rows[0]!;
  await deps.hooks.categoryAdded();
  return { id: String(row.id), name: row.name as string, shard: deps.dir.shardOfCategory(row.id as number) };
}

export async function listCategories(deps: Core & ReadSide, limit: number, cursor?: string): Promise<Page<Category>> {
  return deps.cache.pages.categories(`${limit}:${cursor ?? ''}`, () => loadCategories(deps, limit, cursor));
}

/** The categories from Postgres (what the cache holds pages of). */
export async function loadCategories(deps: Core, limit: number, cursor?: string): Promise<Page<Category>> {
  let after = 0;
  if (cursor) {
    if (!/^\d{1,15}$/.test(cursor)) throw new EngineError('invalid_cursor');
    after = Number(cursor);
  }
  const pages = await scatter(deps.dir.shards(), async (s) =>
    (await deps.shards.get(s).query(SQL.listCategories, [after, limit + 1])).rows);
  const all = pages.flat().sort((a, b) => (a.id as number) - (b.id as number));
  const data = all.slice(0, limit).map((r) => ({ id: String(r.id), name: r.name as string,
    shard: deps.dir.shardOfCategory(r.id as number) }));
  return { data, next_cursor: all.length > limit ? data[data.length - 1]!.id : null };
}

export interface NewItem {
  category_id: string | number; name: string; description?: string; price_cents: number; currency: string;
  stock: number; fulfillment?: Fulfillment; max_per_customer?: number | null;
}

export async function createItem(deps: Core, input: NewItem): Promise<AdminItem> {
  const categoryId = parseCategoryId(input.category_id);
  const shard = deps.dir.shardOfCategory(categoryId);
  try {
    const res = await deps.shards.get(shard).query(SQL.insertItem, [
      categoryId, input.name, input.description ?? '', input.price_cents, input.currency,
      input.fulfillment ?? 'instant', input.max_per_customer ?? null, input.stock,
    ]);
    const item = toItem(shard, res.rows[0]!);
    deps.hooks.itemChanged({ id: item.id, shard, available: item.available, reason: 'created' });
    await written(deps, item, true);
    return item;
  } catch (err) {
    // 23503: the category is not on the shard the directory names, so it does not exist.
    const cause = err instanceof EngineError ? err.cause : err;
    if (isServerError(cause) && cause.code === '23503') throw new EngineError('not_found', 'No such category',
      { details: { field: 'category_id' } });
    throw err;
  }
}

/**
 * The public view through the read cache (src/cache/items.ts states its staleness
 * bound); admins and domain logic read Postgres with getItem.
 */
export async function readItem(deps: Core & ReadSide, id: string): Promise<Item> {
  if (!deps.cache.enabled) return publicItem(await getItem(deps, id));
  const { shard, local } = decodeRow('item', id, deps.shards.count);
  const { item } = await deps.cache.items.read(shard, local);
  if (!item) throw new EngineError('not_found', 'No such item');
  const { reclaimable: _r, ...pub } = item;
  return pub;
}

/** What the cache and the stream load: public items with the snapshot they were read in. */
export async function loadItemsVersioned(deps: Core, shard: number,
  locals: number[]): Promise<{ version: Version; items: Map<number, CachedItem> }> {
  const rows = (await deps.shards.get(shard).query(SQL.itemsVersioned, [locals])).rows;
  const items = new Map<number, CachedItem>();
  for (const r of rows) if (r.id !== null) items.set(Number(r.id),
    { ...publicItem(toItem(shard, r)), reclaimable: r.reclaimable as boolean });
  return { version: versionOf(rows[0]!.snap as string), items };
}

/** Read-your-writes for the writer: the read side holds the change before the answer goes out. */
function written(deps: Core, item: AdminItem, listed: boolean): Promise<void> {
  const { shard, local } = decodeRow('item', item.id, deps.shards.count);
  return deps.hooks.itemWritten({ shard, local, categoryId: item.category_id }, listed);
}

export async function getItem(deps: Core, id: string): Promise<AdminItem> {
  const { shard, local } = decodeRow('item', id, deps.shards.count);
  const row = (await deps.shards.get(shard).query(SQL.itemById, [local])).rows[0];
  if (!row) throw new EngineError('not_found', 'No such item');
  return toItem(shard, row);
}

export interface ItemQuery { category_id?: string; q?: string; limit: number; cursor?: string;
  includeInactive: boolean }

export async function listItems(deps: Core & ReadSide, query: ItemQuery): Promise<Page<AdminItem>> {
  const cursor = decodeCursor(query.cursor, deps.shards.count);
  const categoryId = query.category_id === undefined ? null : parseCategoryId(query.category_id);
  if (query.includeInactive) return searchItems(deps, query, cursor, categoryId);
  const category = categoryId === null ? null : { id: String(categoryId), shard: deps.dir.shardOfCategory(categoryId) };
  const key = { c: categoryId, q: query.q?.toLowerCase() ?? null, l: query.limit, k: query.cursor ?? null };
  return deps.cache.pages.search(category, key, () => searchItems(deps, query, cursor, categoryId));
}

async function searchItems(deps: Core, query: ItemQuery, cursor: SortKey | null,
  categoryId: number | null): Promise<Page<AdminItem>> {
  const shards = categoryId === null ? deps.dir.shards() : [deps.dir.shardOfCategory(categoryId)];
  const pattern = query.q ? `%${query.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
  const pages = await scatter(shards, async (s): Promise<Keyed<AdminItem>[]> => {
    const b = shardBound(cursor, s);
    const res = await deps.shards.get(s).query(SQL.listItems,
      [b.createdUs, b.local, categoryId, pattern, query.includeInactive, query.limit + 1]);
    return res.rows.map((r) => ({ key: { createdUs: String(r.created_us), shard: s, local: r.id as number },
      value: toItem(s, r) }));
  });
  return mergePage(pages, query.limit);
}

export interface ItemPatch { name?: string; description?: string; price_cents?: number; active?: boolean;
  max_per_customer?: number | null }

export async function updateItem(deps: Core, id: string, patch: ItemPatch): Promise<AdminItem> {
  const { shard, local } = decodeRow('item', id, deps.shards.count);
  const res = await deps.shards.get(shard).query(SQL.updateItem, [
    local, patch.name ?? null, patch.description ?? null, patch.price_cents ?? null, patch.active ?? null,
    'max_per_customer' in patch, patch.max_per_customer ?? null,
  ]);
  const row = res.rows[0];
  if (!row) throw new EngineError('not_found', 'No such item');
  const item = toItem(shard, row);
  deps.hooks.itemChanged({ id: item.id, shard, available: item.available, reason: 'updated' });
  await written(deps, item, true);
  return item;
}

export async function adjustStock(deps: Core, id: string, delta: number): Promise<AdminItem> {
  const { shard, local } = decodeRow('item', id, deps.shards.count);
  const res = await deps.shards.get(shard).query(SQL.adjustStock, [local, delta]);
  const row = res.rows[0];
  if (!row) {
    await getItem(deps, id); // 404 when missing; otherwise the floor or the ceiling refused it
    if (delta > 0) throw new EngineError('stock_ceiling', `Stock cannot exceed ${STOCK_MAX} units`);
    throw new EngineError('stock_floor',
      'Stock cannot go below zero available; held and sold units are not adjustable');
  }
  const item = toItem(shard, row);
  deps.hooks.itemChanged({ id: item.id, shard, available: item.available, reason: 'stock' });
  await written(deps, item, false);
  return item;
}
