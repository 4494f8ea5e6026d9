import type { WorkerDeps } from '../../deps.js';
import { deliverOrder, shipOrder } from '../../fulfillment/shipment.js';
import type { RouteDef } from '../route.js';
import { object } from '../schemas.js';
import { OrderSchema } from './orders.js';

const label = { type: 'string', minLength: 1, maxLength: 100, pattern: '^[\\x20-\\x7e]+$' };

export function shipmentRoutes(deps: WorkerDeps): RouteDef[] {
  return [
    {
      method: 'post', path: '/v1/orders/:id/ship', name: 'ship_order',
      summary: 'Mark a paid order of shipment items shipped (admin)', auth: 'admin', idempotent: true,
      body: object({ carrier: label, tracking: label }, ['carrier', 'tracking']),
      response: { status: 200, schema: OrderSchema },
      handler: async (ctx) => ({ status: 200, body: await shipOrder(deps, ctx.principal!, ctx.params.id!, ctx.body) }),
    },
    {
      method: 'post', path: '/v1/orders/:id/deliver', name: 'deliver_order',
      summary: 'Mark a shipped order delivered: completes it and releases escrow (admin)', auth: 'admin',
      idempotent: true,
      body: object({}), response: { status: 200, schema: OrderSchema },
      handler: async (ctx) => ({ status: 200, body: await deliverOrder(deps, ctx.principal!, ctx.params.id!) }),
    },
  ];
}
