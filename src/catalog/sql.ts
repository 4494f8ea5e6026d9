// Named statements of the catalog domain.
import { AFTER_BOUND, CREATED_US } from '../router/scatter.js';

/** The largest count an integer stock column holds. */
export const STOCK_MAX = 2_147_483_647;

const ITEM_COLS = `id, category_id, name, description, price_cents, currency, fulfillment, max_per_customer,
  active, available, held, sold, stocked, created_at, updated_at, ${CREATED_US}`;

export const SQL = {
  countCategories: { name: 'cat_count', text: 'SELECT count(*)::int AS n FROM categories' },
  insertCategory: {
    name: 'cat_insert',
    text: `INSERT INTO categories (id, name) VALUES (nextval('category_seq') * $1 + $2, $3)
      RETURNING id, name, created_at`,
  },
  listCategories: {
    name: 'cat_list',
    text: 'SELECT id, name, created_at FROM categories WHERE id > $1 ORDER BY id LIMIT $2',
  },
  insertItem: {
    name: 'item_insert',
    text: `INSERT INTO items (category_id, name, description, price_cents, currency, fulfillment, max_per_customer,
      available, stocked)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING ${ITEM_COLS}`,
  },
  itemById: { name: 'item_by_id', text: `SELECT ${ITEM_COLS} FROM items WHERE id = $1` },
  // For the read cache (src/cache): rows with the snapshot they were read in, so the cache
  // keeps the newest read whatever order refreshes land in (cache/version.ts). The LEFT
  // JOIN answers one row of nulls when no id exists, so a miss carries a version too.
  // `reclaimable`: expired holds wait for the sweeper, so a hold would succeed anyway.
  itemsVersioned: {
    name: 'item_versioned',
    text: `SELECT pg_current_snapshot()::text AS snap, i.* FROM (SELECT 1) one
           LEFT JOIN (SELECT ${ITEM_COLS}, EXISTS (SELECT 1 FROM holds h WHERE h.item_id = items.id
             AND h.status = 'active'
                        AND h.expires_at <= now()) AS reclaimable
                      FROM items WHERE id = ANY($1::bigint[])) i ON true`,
  },
  // $3 category (or null), $4 lowercased LIKE pattern (or null), $5 include inactive, $6 limit.
  listItems: {
    name: 'item_list',
    text: `SELECT ${ITEM_COLS} FROM items
           WHERE ${AFTER_BOUND}
             AND ($3::bigint IS NULL OR category_id = $3)
             AND ($4::text IS NULL OR lower(name) LIKE $4)
             AND (active OR $5::boolean)
           ORDER BY created_at DESC, id DESC LIMIT $6`,
  },
  // Optional fields: null leaves the column as it is ($6 says whether max_per_customer was given).
  updateItem: {
    name: 'item_update',
    text: `UPDATE items SET name = COALESCE($2, name), description = COALESCE($3, description),
             price_cents = COALESCE($4, price_cents), active = COALESCE($5, active),
             max_per_customer = CASE WHEN $6::boolean THEN $7::int ELSE max_per_customer END, updated_at = now()
           WHERE id = $1 RETURNING ${ITEM_COLS}`,
  },
  // A restock or correction: one conditional statement, never below zero available and
  // never past the integer column (stocked >= available). The sums are bigint so the
  // guard itself cannot overflow: an int4 overflow would be a 500, not a refusal.
  adjustStock: {
    name: 'item_adjust_stock',
    text: `UPDATE items SET available = available + $2::int, stocked = stocked + $2::int, updated_at = now()
           WHERE id = $1 AND available::bigint + $2::int >= 0 AND stocked::bigint + $2::int <= ${STOCK_MAX}
           RETURNING ${ITEM_COLS}`,
  },
} as const;
