import { publicItem, type AdminItem } from '../../catalog/model.js';
import * as catalog from '../../catalog/service.js';
import type { WorkerDeps } from '../../deps.js';
import type { RouteDef } from '../route.js';
import { listOf, object, S } from '../schemas.js';

export const CategorySchema = object({ id: S.id, name: S.name, shard: { type: 'integer' } });
export const ItemSchema = object({
  id: S.id, category_id: S.id, name: S.name, description: S.text, price_cents: S.cents, currency: S.currency,
  available: { type: 'integer' }, fulfillment: S.fulfillment, active: { type: 'boolean' },
  max_per_customer: { type: ['integer', 'null'] }, created_at: { type: 'string' }, updated_at: { type: 'string' },
  held: { type: 'integer', description: 'admin only' }, sold: { type: 'integer', description: 'admin only' },
  stocked: { type: 'integer', description: 'admin only' },
});
const maxPerCustomer = { type: ['integer', 'null'], minimum: 1, maximum: 1_000_000 };

const view = (isAdmin: boolean, item: AdminItem) => (isAdmin ? item : publicItem(item));

export function catalogRoutes(deps: WorkerDeps): RouteDef[] {
  return [
    {
      method: 'post', path: '/v1/categories', name: 'create_category',
      summary: 'Create a category on the least-filled shard', auth: 'admin',
      body: object({ name: S.name }, ['name']), response: { status: 201, schema: CategorySchema },
      handler: async (ctx) => ({ status: 201, body: await catalog.createCategory(deps, ctx.body.name) }),
    },
    {
      method: 'get', path: '/v1/categories', name: 'list_categories', summary: 'List categories', auth: 'none',
      query: object({ limit: { ...S.limit, default: 100 }, cursor: S.cursor }),
      response: { status: 200, schema: listOf(CategorySchema) },
      handler: async (ctx) => ({ status: 200, body: await catalog.listCategories(deps, ctx.query.limit,
        ctx.query.cursor) }),
    },
    {
      method: 'post', path: '/v1/items', name: 'create_item', summary: 'Create an item in a category', auth: 'admin',
      body: object({
        category_id: S.categoryId, name: S.name, description: S.text, price_cents: S.price, currency: S.currency,
        stock: S.stock, fulfillment: S.fulfillment, max_per_customer: maxPerCustomer,
      }, ['category_id', 'name', 'price_cents', 'currency', 'stock']),
      response: { status: 201, schema: ItemSchema },
      handler: async (ctx) => ({ status: 201, body: await catalog.createItem(deps, ctx.body) }),
    },
    {
      method: 'get', path: '/v1/items/:id', name: 'get_item', summary: 'Read one item', auth: 'optional',
      response: { status: 200, schema: ItemSchema },
      handler: async (ctx) => {
        // Admins see exact counts from Postgres; everyone else reads through the cache.
        const isAdmin = ctx.principal?.role === 'admin';
        return { status: 200, body: isAdmin ? await catalog.getItem(deps, ctx.params.id!) : await catalog.readItem(deps,
          ctx.params.id!) };
      },
    },
    {
      method: 'get', path: '/v1/items', name: 'list_items', summary: 'Search items by category and text, newest first',
      auth: 'optional',
      query: object({ category_id: { type: 'string', pattern: '^[1-9][0-9]{0,14}$' },
        q: { type: 'string', minLength: 1, maxLength: 100 }, limit: S.limit, cursor: S.cursor }),
      response: { status: 200, schema: listOf(ItemSchema) },
      handler: async (ctx) => {
        const isAdmin = ctx.principal?.role === 'admin';
        const page = await catalog.listItems(deps, { ...ctx.query, includeInactive: isAdmin });
        return { status: 200, body: { data: page.data.map((i) => view(isAdmin, i)), next_cursor: page.next_cursor } };
      },
    },
    {
      method: 'patch', path: '/v1/items/:id', name: 'update_item',
      summary: 'Change name, description, price, active, purchase limit', auth: 'admin',
      body: object({ name: S.name, description: S.text, price_cents: S.price, active: { type: 'boolean' },
        max_per_customer: maxPerCustomer }),
      response: { status: 200, schema: ItemSchema },
      handler: async (ctx) => ({ status: 200, body: await catalog.updateItem(deps, ctx.params.id!, ctx.body) }),
    },
    {
      method: 'post', path: '/v1/items/:id/stock', name: 'adjust_stock',
      summary: 'Restock (+) or correct (-) available stock', auth: 'admin',
      body: object({ delta: { type: 'integer', minimum: -100_000_000, maximum: 100_000_000, not: { const: 0 } } },
        ['delta']),
      response: { status: 200, schema: ItemSchema },
      handler: async (ctx) => ({ status: 200, body: await catalog.adjustStock(deps, ctx.params.id!, ctx.body.delta) }),
    },
  ];
}
