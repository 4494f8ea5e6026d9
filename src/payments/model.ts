import { encodeRow } from '../router/ids.js';

export interface Payment {
  id: string; order_id: string; status: string; method: 'card' | 'qr'; amount_cents: number; currency: string;
  escrow: string; redirect_url?: string; qr_payload?: string; expires_at: string; gateway_session_id: string | null;
  created_at: string; updated_at: string; refund_reason?: string; failure_reason?: string;
}

type Row = Record<string, unknown>;

export function toPayment(shard: number, r: Row): Payment {
  const p: Payment = {
    id: encodeRow('payment', shard, r.id as number), order_id: encodeRow('order', shard, r.order_id as number),
    status: r.status as string, method: r.method as 'card' | 'qr', amount_cents: r.amount_cents as number,
    currency: r.currency as string, escrow: r.escrow as string,
    expires_at: new Date(r.expires_at as string | Date).toISOString(),
    gateway_session_id: (r.gateway_session_id as string | null) ?? null,
    created_at: new Date(r.created_at as string | Date).toISOString(),
    updated_at: new Date(r.updated_at as string | Date).toISOString(),
  };
  if (r.redirect_url) p.redirect_url = r.redirect_url as string;
  if (r.qr_payload) p.qr_payload = r.qr_payload as string;
  if (r.refund_reason) p.refund_reason = r.refund_reason as string;
  if (r.failure_reason) p.failure_reason = r.failure_reason as string;
  return p;
}
