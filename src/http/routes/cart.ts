import * as cart from '../../cart/service.js';
import type { WorkerDeps } from '../../deps.js';
import type { RouteDef } from '../route.js';
import { object, S } from '../schemas.js';
import { OrderSchema } from './orders.js';

const quantity = { type: 'integer', minimum: 1, maximum: cart.LINE_QUANTITY_MAX };
const nullable = (type: string) => ({ type: [type, 'null'] });

const CartLineSchema = object({
  item_id: S.id, quantity: { type: 'integer' }, name: nullable('string'), price_cents: nullable('integer'),
  currency: nullable('string'),
  available: nullable('integer'), active: { type: 'boolean' }, fulfillment: nullable('string'),
  subtotal_cents: nullable('integer'),
  purchasable: { type: 'boolean', description: 'active and available >= quantity right now (the cart holds no stock)' },
  added_at: { type: 'string' },
});
export const CartSchema = object({
  lines: { type: 'array', items: CartLineSchema }, line_count: { type: 'integer' },
  totals: { type: 'array', items: object({ currency: S.currency, total_cents: S.cents }) },
  purchasable: { type: 'boolean' },
  checkout: {
    type: 'array', description: 'only while the new_checkout flag is on: the orders a checkout would create now',
    items: object({ shard: { type: 'integer' }, currency: S.currency, total_cents: S.cents,
      line_count: { type: 'integer' } }),
  },
});

export function cartRoutes(deps: WorkerDeps): RouteDef[] {
  return [
    {
      method: 'get', path: '/v1/cart', name: 'get_cart',
      summary: "The caller's cart, with current prices and availability", auth: 'user',
      response: { status: 200, schema: CartSchema },
      handler: async (ctx) => ({ status: 200, body: await cart.getCart(deps, ctx.principal!) }),
    },
    {
      method: 'post', path: '/v1/cart/items', name: 'add_cart_item',
      summary: 'Add units of an item (a new line or more on its line); holds no stock', auth: 'user', idempotent: true,
      description: '201 when the item gets a new line, 200 when an existing line grows.',
      body: object({ item_id: S.id, quantity }, ['item_id', 'quantity']), response: { status: 201, schema: CartSchema },
      handler: async (ctx) => {
        const r = await cart.addItem(deps, ctx.principal!, ctx.body.item_id, ctx.body.quantity);
        return { status: r.created ? 201 : 200, body: r.cart };
      },
    },
    {
      method: 'patch', path: '/v1/cart/items/:item_id', name: 'set_cart_item', summary: "Set a line's quantity",
      auth: 'user',
      body: object({ quantity }, ['quantity']), response: { status: 200, schema: CartSchema },
      handler: async (ctx) => ({ status: 200, body: await cart.setQuantity(deps, ctx.principal!, ctx.params.item_id!,
        ctx.body.quantity) }),
    },
    {
      method: 'del', path: '/v1/cart/items/:item_id', name: 'remove_cart_item', summary: 'Remove a line', auth: 'user',
      response: { status: 200, schema: CartSchema },
      handler: async (ctx) => ({ status: 200, body: await cart.removeItem(deps, ctx.principal!, ctx.params.item_id!) }),
    },
    {
      method: 'del', path: '/v1/cart', name: 'empty_cart', summary: 'Remove every line', auth: 'user',
      response: { status: 200, schema: CartSchema },
      handler: async (ctx) => ({ status: 200, body: await cart.emptyCart(deps, ctx.principal!) }),
    },
    {
      method: 'post', path: '/v1/cart/checkout', name: 'checkout_cart',
      summary: 'POST /v1/orders with the cart\'s lines (one order per shard, all or nothing); removes the ordered ' +
        'lines on success', auth: 'user', idempotent: true,
      body: object({}), response: { status: 201, schema: object({ orders: { type: 'array', items: OrderSchema } }) },
      handler: async (ctx) => ({ status: 201, body: { orders: await cart.checkout(deps, ctx.principal!,
        ctx.idempotencyKey) } }),
    },
  ];
}
