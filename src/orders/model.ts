// The public shape of an order, built from its row.
import { toPayment, type Payment } from '../payments/model.js';
import { encodeRow } from '../router/ids.js';

export const ORDER_STATUSES = [
  'awaiting_payment', 'paid', 'fulfilling', 'shipped', 'completed', 'expired', 'canceled', 'failed', 'refunded',
] as const;

export type OrderStatus = (typeof ORDER_STATUSES)[number];

export interface OrderLine { item_id: string; quantity: number; price_cents: number; fulfillment: string }

export interface Order {
  id: string; status: OrderStatus; shard: number; currency: string; total_cents: number;
  lines: OrderLine[]; hold_expires_at: string; created_at: string; updated_at: string;
  customer_id: string; payments: Payment[];
  /** Orders of `shipment` items, once shipped; null before. */
  shipment: Shipment | null;
}

export interface Shipment { carrier: string; tracking: string; shipped_at: string; delivered_at: string | null }

type Row = Record<string, unknown>;
interface LineRow { item_id: number; quantity: number; price_cents: number; fulfillment: string }
interface ShipmentRow { carrier: string; tracking: string; shipped_at: string; delivered_at: string | null }

function toShipment(s: ShipmentRow | null | undefined): Shipment | null {
  if (!s) return null;
  const delivered = s.delivered_at ? new Date(s.delivered_at).toISOString() : null;
  return { carrier: s.carrier, tracking: s.tracking, shipped_at: new Date(s.shipped_at).toISOString(),
    delivered_at: delivered };
}

export function toOrder(shard: number, r: Row, customerId: string): Order {
  const lines = ((r.lines as LineRow[] | null) ?? []).map((l) => ({
    item_id: encodeRow('item', shard, l.item_id), quantity: l.quantity, price_cents: Number(l.price_cents),
    fulfillment: l.fulfillment,
  }));
  return {
    id: encodeRow('order', shard, r.id as number), status: r.status as OrderStatus, shard,
    currency: r.currency as string,
    total_cents: r.total_cents as number, lines, hold_expires_at: (r.hold_expires_at as Date).toISOString(),
    created_at: (r.created_at as Date).toISOString(), updated_at: (r.updated_at as Date).toISOString(),
    customer_id: customerId, payments: ((r.payments as Row[] | null) ?? []).map((pr) => toPayment(shard, pr)),
    shipment: toShipment(r.shipment as ShipmentRow | null | undefined),
  };
}
