// Shipments (paid -> shipped -> delivered, as a physical-goods shop runs them): an order of
// `shipment` items waits in `paid` until an admin ships it (carrier, tracking), and
// completes when the admin marks it delivered, which releases its escrow. Until it
// ships the customer may cancel with a full refund (orders/service.ts cancelOrder); after,
// the status fence refuses the cancel. Every transition is the order lifecycle's
// (src/orders/lifecycle.ts): one fenced statement with its audit row (order_events; the
// outbox trigger notifies), streamed.
import type { Principal } from '../accounts/principal.js';
import type { Core, Remote } from '../deps.js';
import { EngineError } from '../errors.js';
import { ship } from '../orders/lifecycle.js';
import type { Order } from '../orders/model.js';
import { getOrderFresh, orderWithLines } from '../orders/read.js';
import { decodeRow, encodeRow } from '../router/ids.js';
import { releaseAndComplete, type LineRow } from './release.js';

export interface ShipmentInput { carrier: string; tracking: string }

/** Why a transition did not happen, from the order as it is now (404 when it does not exist). */
async function refusal(deps: Core & Remote, p: Principal, orderId: string,
  verb: 'shipped' | 'delivered'): Promise<EngineError> {
  const order = await getOrderFresh(deps, p, orderId);
  if (verb === 'shipped' && order.status === 'paid') {
    const ships = order.lines.some((l) => l.fulfillment === 'shipment');
    return new EngineError('invalid_state',
      ships ? 'The order\'s credit lines are not active yet' : 'Order has no shipment lines to ship',
        { details: { status: order.status } });
  }
  return new EngineError('invalid_state', `Order is ${order.status} and cannot be ${verb}`,
    { details: { status: order.status } });
}

/** paid -> shipped (admin). */
export async function shipOrder(deps: Core & Remote, p: Principal, orderId: string,
  input: ShipmentInput): Promise<Order> {
  const { shard, local } = decodeRow('order', orderId, deps.shards.count);
  if (!(await ship(deps, shard, local, input, `admin:${p.id}`))) throw await refusal(deps, p, orderId, 'shipped');
  return getOrderFresh(deps, p, encodeRow('order', shard, local));
}

/** shipped -> completed (admin): delivered, escrow released through the ledger. */
export async function deliverOrder(deps: Core & Remote, p: Principal, orderId: string): Promise<Order> {
  const { shard, local } = decodeRow('order', orderId, deps.shards.count);
  const order = await orderWithLines(deps, shard, local);
  if (!order || order.status !== 'shipped') throw await refusal(deps, p, orderId, 'delivered');
  if ((await completeDelivery(deps, shard, order, `admin:${p.id}`)) !== 'completed') throw await refusal(deps, p,
    orderId, 'delivered');
  return getOrderFresh(deps, p, encodeRow('order', shard, local));
}

/** The delivery of a shipped order (an admin's, or the cron finishing one whose runner died). */
export function completeDelivery(deps: Core & Remote, shard: number, order: Record<string, unknown>,
  actor: string): Promise<'completed' | 'unchanged'> {
  const lines = (order.lines as LineRow[] | null) ?? [];
  return releaseAndComplete(deps, shard, order, lines,
    { from: ['shipped'], reason: 'delivered', actor, deliveredBy: actor });
}
