// Named statements of the cart. A cart lives on its customer's shard; the items its
// lines name are read from their own shards (`items`).
export const SQL = {
  // Locks the customer's cart row (creating it): adds are serialized per cart, which
  // keeps the line cap exact under concurrent adds.
  lock: {
    name: 'cart_lock',
    text: 'INSERT INTO carts (customer_id) VALUES ($1) ON CONFLICT (customer_id) DO UPDATE SET updated_at = now()',
  },
  // Adds units: a new line while the cart has room ($5 lines), or more units on an
  // existing line up to $6. Zero rows = a bound refused it.
  add: {
    name: 'cart_add',
    text: `INSERT INTO cart_lines AS c (customer_id, item_shard, item_local, quantity)
           SELECT $1::uuid, $2::smallint, $3::bigint, $4::int WHERE $4::int <= $6::int AND (
             EXISTS (SELECT 1 FROM cart_lines WHERE customer_id = $1::uuid AND item_shard = $2::smallint
               AND item_local = $3::bigint)
             OR (SELECT count(*) FROM cart_lines WHERE customer_id = $1::uuid) < $5::int)
           ON CONFLICT (customer_id, item_shard, item_local) DO UPDATE
             SET quantity = c.quantity + EXCLUDED.quantity, rev = nextval('cart_rev_seq'), updated_at = now()
             WHERE c.quantity + EXCLUDED.quantity <= $6::int
           RETURNING quantity, (xmax = 0) AS created`,
  },
  hasLine: {
    name: 'cart_has_line',
    text: 'SELECT quantity FROM cart_lines WHERE customer_id = $1 AND item_shard = $2 AND item_local = $3',
  },
  setQuantity: {
    name: 'cart_set_quantity',
    text: `UPDATE cart_lines SET quantity = $4, rev = nextval('cart_rev_seq'), updated_at = now()
           WHERE customer_id = $1 AND item_shard = $2 AND item_local = $3 RETURNING quantity`,
  },
  remove: {
    name: 'cart_remove',
    text: 'DELETE FROM cart_lines WHERE customer_id = $1 AND item_shard = $2 AND item_local = $3 RETURNING 1',
  },
  empty: { name: 'cart_empty', text: 'DELETE FROM cart_lines WHERE customer_id = $1' },
  lines: {
    name: 'cart_lines',
    text: `SELECT item_shard, item_local, quantity, rev, added_at FROM cart_lines WHERE customer_id = $1
           ORDER BY added_at, item_shard, item_local LIMIT $2`,
  },
  // Checkout removes exactly the lines it ordered, at the rev it read: a line added,
  // raised or re-added meanwhile carries another rev and stays.
  removeOrdered: {
    name: 'cart_remove_ordered',
    text: `DELETE FROM cart_lines c USING unnest($2::smallint[], $3::bigint[], $4::bigint[]) AS d(shard, local, rev)
           WHERE c.customer_id = $1 AND c.item_shard = d.shard AND c.item_local = d.local AND c.rev = d.rev`,
  },
  // On an item's shard: what a cart shows of its items now.
  items: {
    name: 'cart_items',
    text: `SELECT id, name, price_cents, currency, available, active, fulfillment FROM items
           WHERE id = ANY($1::bigint[])`,
  },
} as const;
