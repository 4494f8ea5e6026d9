// Orders: checkout (POST /v1/orders), one order, its audit trail, a customer's list,
// cancel, and the admin's view of every customer's orders.
import type { WorkerDeps } from '../../deps.js';
import { listAllOrders } from '../../orders/admin.js';
import { ORDER_STATUSES } from '../../orders/model.js';
import * as orders from '../../orders/service.js';
import { getOrder, listOrders, orderEvents } from '../../orders/read.js';
import type { Ctx, RouteDef } from '../route.js';
import { listOf, object, S } from '../schemas.js';

const Line = object({ item_id: S.id, quantity: { type: 'integer' }, price_cents: S.cents, fulfillment: S.fulfillment });
export const OrderSchema = object({
  id: S.id, status: { type: 'string' }, shard: { type: 'integer' }, currency: S.currency, total_cents: S.cents,
  lines: { type: 'array', items: Line }, hold_expires_at: { type: 'string' }, created_at: { type: 'string' },
  updated_at: { type: 'string' }, customer_id: S.id, payments: { type: 'array' },
  shipment: {
    anyOf: [{ type: 'null' }, object({ carrier: { type: 'string' }, tracking: { type: 'string' },
      shipped_at: { type: 'string' }, delivered_at: { type: ['string', 'null'] } })],
  },
});

export const MAX_LINES = 50;
export const MAX_QUANTITY = 1000;
export const LinesSchema = {
  type: 'array', minItems: 1, maxItems: MAX_LINES,
  items: object({ item_id: S.id, quantity: { type: 'integer', minimum: 1, maximum: MAX_QUANTITY } },
    ['item_id', 'quantity']),
};

export function orderRoutes(deps: WorkerDeps): RouteDef[] {
  // A keyed checkout of one shard is one statement there, its key included (the
  // idempotency middleware stands aside); across shards the middleware claims the key
  // on the caller's shard and each part is one statement.
  const keyedInCheckout = (ctx: Ctx) => orders.isSingleShard(deps, (ctx.body as { items: orders.LineInput[] }).items);
  return [
    {
      method: 'post', path: '/v1/orders', name: 'create_order', summary: 'Hold stock and create one order per shard',
      auth: 'user', idempotent: true,
      body: object({ items: LinesSchema }, ['items']),
      response: { status: 201, schema: object({ orders: { type: 'array', items: OrderSchema } }) },
      // Without a key the sold-out gate answers a storm on a sold-out item with no write;
      // with one, the refusal is that key's answer like any other.
      ownsKey: keyedInCheckout,
      handler: async (ctx) => {
        const key = ctx.idempotencyKey;
        if (key && keyedInCheckout(ctx)) {
          const r = await orders.checkoutKeyed(deps, ctx.principal!, ctx.body.items, key);
          return { status: 201, body: { orders: r.orders }, replayed: r.replayed };
        }
        return { status: 201, body: { orders: await orders.createOrders(deps, ctx.principal!, ctx.body.items, key) } };
      },
    },
    {
      method: 'get', path: '/v1/orders/:id', name: 'get_order', summary: 'One order (owner or admin)', auth: 'user',
      response: { status: 200, schema: OrderSchema },
      handler: async (ctx) => ({ status: 200, body: await getOrder(deps, ctx.principal!, ctx.params.id!) }),
    },
    {
      method: 'get', path: '/v1/orders/:id/events', name: 'order_events', summary: 'The audit trail of one order',
      auth: 'user',
      handler: async (ctx) => ({ status: 200, body: { data: await orderEvents(deps, ctx.principal!, ctx.params.id!),
        next_cursor: null } }),
    },
    {
      method: 'get', path: '/v1/orders', name: 'list_orders', summary: 'Own orders across shards, newest first',
      auth: 'user',
      query: object({ limit: S.limit, cursor: S.cursor }), response: { status: 200, schema: listOf(OrderSchema) },
      handler: async (ctx) => ({ status: 200, body: await listOrders(deps, ctx.principal!, ctx.query.limit,
        ctx.query.cursor) }),
    },
    {
      method: 'post', path: '/v1/orders/:id/cancel', name: 'cancel_order',
      summary: 'Cancel; releases holds, refunds if paid', auth: 'user', idempotent: true,
      body: object({}), response: { status: 200, schema: OrderSchema },
      handler: async (ctx) => ({ status: 200, body: await orders.cancelOrder(deps, ctx.principal!, ctx.params.id!) }),
    },
    {
      method: 'get', path: '/v1/admin/orders', name: 'admin_list_orders',
      summary: 'Every customer\'s orders across shards, newest first (admin)', auth: 'admin',
      query: object({
        status: { type: 'string', enum: ORDER_STATUSES },
        customer_id: { type: 'string', pattern: '^us_[0-9a-z][0-9a-f]{32}$' },
        category_id: { type: 'string', pattern: '^[1-9][0-9]{0,14}$' }, limit: S.limit, cursor: S.cursor,
      }),
      response: { status: 200, schema: listOf(OrderSchema) },
      handler: async (ctx) => ({ status: 200, body: await listAllOrders(deps, ctx.query) }),
    },
  ];
}
