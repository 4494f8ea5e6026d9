import type { WorkerDeps } from '../../deps.js';
import { EngineError } from '../../errors.js';
import { advanceOrder } from '../../fulfillment/service.js';
import { log } from '../../log.js';
import { webhookSignatureFailures } from '../../metrics/index.js';
import { ledgerReport } from '../../payments/audit.js';
import { verifySignature, type GatewayEvent } from '../../payments/gateway.js';
import * as payments from '../../payments/service.js';
import type { RouteDef } from '../route.js';
import { object, S } from '../schemas.js';

export const PaymentSchema = object({
  id: S.id, order_id: S.id, status: { type: 'string' }, method: { type: 'string', enum: ['card', 'qr'] },
  amount_cents: S.cents,
  currency: S.currency, escrow: { type: 'string' }, redirect_url: { type: 'string' }, qr_payload: { type: 'string' },
  expires_at: { type: 'string' }, gateway_session_id: { type: ['string', 'null'] }, created_at: { type: 'string' },
  updated_at: { type: 'string' },
  refund_reason: { type: 'string' }, failure_reason: { type: 'string' },
});

function parseEvent(raw: Buffer): GatewayEvent {
  let ev: GatewayEvent;
  try {
    ev = JSON.parse(raw.toString('utf8')) as GatewayEvent;
  } catch {
    throw new EngineError('invalid_json');
  }
  const d = ev?.data;
  const ok = typeof ev?.id === 'string' && ev.id.length <= 200 && typeof ev.type === 'string' && typeof d === 'object'
    && d !== null &&
    typeof d.merchant_ref === 'string' && typeof d.session_id === 'string' && Number.isInteger(d.amount_cents)
      && typeof d.currency === 'string';
  if (!ok) throw new EngineError('validation_failed', 'Not a gateway event');
  return ev;
}

export function paymentRoutes(deps: WorkerDeps): RouteDef[] {
  return [
    {
      method: 'post', path: '/v1/orders/:id/payments', name: 'create_payment',
      summary: 'Open a card or QR payment for an order (owner)', auth: 'user', lane: 'payment', idempotent: true,
      description: '201 with a new payment; 200 with the payment already open for the order (one pending payment per ' +
        'order).',
      body: object({ method: { type: 'string', enum: ['card', 'qr'] } }, ['method']),
      response: { status: 201, schema: PaymentSchema },
      handler: async (ctx) => {
        const r = await payments.createPayment(deps, ctx.principal!, ctx.params.id!, ctx.body.method);
        return { status: r.created ? 201 : 200, body: r.payment };
      },
    },
    {
      method: 'get', path: '/v1/payments/:id', name: 'get_payment', summary: 'A payment (owner or admin)', auth: 'user',
      response: { status: 200, schema: PaymentSchema },
      handler: async (ctx) => ({ status: 200, body: await payments.getPayment(deps, ctx.principal!, ctx.params.id!) }),
    },
    {
      method: 'post', path: '/v1/webhooks/gateway', name: 'gateway_webhook', summary: 'Signed gateway events',
      auth: 'none', lane: 'payment',
      rawBody: true, headers: ['gateway-signature'],
      description: 'Called by the payment gateway, not by storefronts. The body is taken as raw bytes (the signature ' +
        'covers them exactly): ' +
        '{"id":"evt_...","type":"payment.succeeded|payment.declined|payment.expired|' +
        'payment.released|payment.refunded",' +
        '"data":{"session_id","merchant_ref":"<payment id>","status","amount_cents","currency"}}. Each event id is ' +
        'applied once; ' +
        'a repeat answers 200 with duplicate: true. An amount, currency or session that does not match the payment ' +
        'is 400 and changes nothing.',
      response: { status: 200, schema: object({ received: { type: 'boolean' }, duplicate: { type: 'boolean' } }) },
      handler: async (ctx) => {
        const sig = ctx.headers['gateway-signature'] ?? '';
        if (!verifySignature(deps.cfg.gatewayWebhookSecret, sig, ctx.rawBody, deps.cfg.webhookToleranceS)) {
          webhookSignatureFailures.inc({ source: 'gateway' });
          throw new EngineError('invalid_signature');
        }
        const applied = await payments.applyGatewayEvent(deps, parseEvent(ctx.rawBody));
        if (applied.placed) {
          void advanceOrder(deps, applied.shard, applied.orderLocal,
            applied.order).catch((err: unknown) => log.warn('fulfilment deferred to cron', { err }));
        }
        return { status: 200, body: { received: true, duplicate: applied.duplicate } };
      },
    },
    {
      method: 'get', path: '/v1/admin/ledger', name: 'ledger_report',
      summary: 'Ledger sums per shard and currency (must be zero)', auth: 'admin',
      handler: async () => ({ status: 200, body: await ledgerReport(deps) }),
    },
  ];
}
