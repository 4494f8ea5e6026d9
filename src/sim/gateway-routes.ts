// The gateway simulator's HTTP surface: the merchant API (behind the latency and
// error knobs and the API key), the customer's checkout page, and test control.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkoutPage } from './checkout-page.js';
import { KNOBS, type Gateway, type KnobName, type Session } from './gateway-state.js';
import {
  HttpError,
  readJsonObject,
  readRawBody,
  redirect,
  rejectUnknownFields,
  requireBearer,
  sendHtml,
  sendJson,
  sleep,
  type Json,
  type Route,
} from './http.js';
import { controlRoutes, roll } from './knobs.js';
import { bad, validateSessionInput } from './session-input.js';

/** Public view of a session: everything but the webhook URL. */
function view(s: Session): Json {
  const { webhook_url: _hidden, ...rest } = s;
  return rest;
}

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  gw: Gateway;
}

/** Merchant API wrapper: latency knob, then error knob (before any work), then auth. */
function merchant(handle: (ctx: Ctx, p: Record<string, string>) => Promise<void>): Route<Ctx>['handle'] {
  return async (ctx, params) => {
    await sleep(Number(ctx.gw.knobs.latency_ms));
    if (roll(ctx.gw.knobs.error_rate)) {
      throw new HttpError(503, 'unavailable', 'simulated gateway outage');
    }
    requireBearer(ctx.req, ctx.gw.opts.apiKey);
    await handle(ctx, params);
  };
}

function idempotencyKey(req: IncomingMessage): string | undefined {
  const raw = req.headers['idempotency-key'];
  const key = Array.isArray(raw) ? raw[0] : raw;
  if (key === undefined) return undefined;
  if (key.length === 0 || key.length > 255) throw bad('Idempotency-Key must be 1..255 characters');
  return key;
}

const id = '(?<id>[^/]+)';

/** The gateway simulator's HTTP routes over its state (gateway-state.ts). */
export function gatewayRoutes(): Route<Ctx>[] {
  return [
  { method: 'GET', pattern: /^\/healthz$/, handle: ({ res }) => sendJson(res, 200, { ok: true }) },
  {
    method: 'POST',
    pattern: /^\/v1\/sessions$/,
    handle: merchant(async ({ req, res, gw }) => {
      const key = idempotencyKey(req);
      const input = validateSessionInput(await readJsonObject(req));
      const { session, created } = gw.create(input, key);
      sendJson(res, created ? 201 : 200, view(session));
    }),
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sessions/${id}$`),
    handle: merchant(async ({ res, gw }, p) => sendJson(res, 200, view(gw.get(p.id!)))),
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/v1/sessions/${id}/release$`),
    handle: merchant(async ({ req, res, gw }, p) => {
      rejectUnknownFields(await readJsonObject(req), []);
      sendJson(res, 200, view(gw.release(p.id!)));
    }),
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/v1/sessions/${id}/refund$`),
    handle: merchant(async ({ req, res, gw }, p) => {
      rejectUnknownFields(await readJsonObject(req), ['reason']);
      sendJson(res, 200, view(gw.refund(p.id!)));
    }),
  },
  // Customer side: no API key, no merchant knobs (the customer is not the merchant).
  {
    method: 'POST',
    pattern: new RegExp(`^/v1/sessions/${id}/complete$`),
    handle: async ({ req, res, gw }, p) => {
      const body = await readJsonObject(req);
      rejectUnknownFields(body, ['outcome']);
      if (body.outcome !== 'succeeded' && body.outcome !== 'declined') {
        throw bad('outcome must be "succeeded" or "declined"');
      }
      sendJson(res, 200, view(gw.complete(p.id!, body.outcome)));
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/checkout/${id}$`),
    handle: ({ res, gw }, p) => {
      const s = gw.sessions.has(p.id!) ? gw.get(p.id!) : undefined;
      sendHtml(res, s ? 200 : 404, checkoutPage(s));
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/checkout/${id}/(?<action>pay|decline)$`),
    handle: async ({ req, res, gw }, p) => {
      await readRawBody(req); // the form body carries nothing we need
      const s = gw.sessions.has(p.id!) ? gw.get(p.id!) : undefined;
      if (!s) return sendHtml(res, 404, checkoutPage(undefined));
      // A second click (or a click after expiry) changes nothing; the page shows the result.
      if (s.status === 'pending') gw.complete(s.id, p.action === 'pay' ? 'succeeded' : 'declined');
      redirect(res, `/checkout/${encodeURIComponent(s.id)}`);
    },
  },
  // Test control.
  ...controlRoutes<Ctx, KnobName>(KNOBS, (ctx) => ctx.gw),
  {
    // The customer walks away: expire now instead of waiting for the TTL.
    method: 'POST',
    pattern: new RegExp(`^/_sim/sessions/${id}/expire$`),
    handle: async ({ req, res, gw }, p) => {
      await readRawBody(req);
      const s = gw.get(p.id!);
      gw.expire(s);
      sendJson(res, 200, view(s));
    },
  },
];
}
