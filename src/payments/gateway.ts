// The engine's side of the payment gateway: a small client behind an interface (a
// real gateway adapter implements the same), and webhook signature verification.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Breaker } from '../clients/breaker.js';
import { JsonClient } from '../clients/http.js';
import type { Config } from '../config.js';
import { EngineError } from '../errors.js';

export interface GatewaySession {
  id: string; merchant_ref: string; status: 'pending' | 'succeeded' | 'declined' | 'expired' | 'refunded';
  escrow: 'none' | 'held' | 'released' | 'refunded'; amount_cents: number; currency: string;
  method: 'card' | 'qr'; redirect_url?: string; qr_payload?: string; expires_at: string;
}

/** A signed event the gateway sends to the webhook (or one polling made of a session's state). */
export interface GatewayEvent {
  id: string; type: string;
  data: { session_id: string; merchant_ref: string; status: string; amount_cents: number; currency: string };
}

export interface Gateway {
  readonly breakerState: string;
  createSession(input: { merchant_ref: string; amount_cents: number; currency: string; method: 'card' | 'qr';
    webhook_url: string; expires_at: string }, key: string): Promise<GatewaySession>;
  getSession(id: string): Promise<GatewaySession | null>;
  release(id: string): Promise<GatewaySession>;
  refund(id: string, reason: string): Promise<GatewaySession>;
}

export class HttpGateway implements Gateway {
  private readonly client: JsonClient;
  private readonly keyPrefix: string;

  constructor(cfg: Config) {
    this.keyPrefix = cfg.gatewayKeyPrefix;
    this.client = new JsonClient({
      baseUrl: cfg.gatewayUrl, apiKey: cfg.gatewayApiKey, timeoutMs: cfg.remoteTimeoutMs, retries: cfg.remoteRetries,
      backoffMs: cfg.remoteBackoffMs, breaker: new Breaker('gateway', cfg.breakerThreshold, cfg.breakerOpenMs),
    });
  }

  get breakerState() { return this.client.breakerState; }

  async createSession(input: Parameters<Gateway['createSession']>[0], key: string): Promise<GatewaySession> {
    // Idempotent by key at the gateway, so a retry never opens a second session.
    return expectOk(await this.client.call<GatewaySession>('POST', '/v1/sessions', input,
      { idempotent: true, key: this.keyPrefix + key }), 'create session');
  }

  async getSession(id: string): Promise<GatewaySession | null> {
    const res = await this.client.call<GatewaySession>('GET', `/v1/sessions/${encodeURIComponent(id)}`, undefined,
      { idempotent: true });
    return res.status === 404 ? null : expectOk(res, 'get session');
  }

  async release(id: string): Promise<GatewaySession> {
    return expectOk(await this.client.call<GatewaySession>('POST', `/v1/sessions/${encodeURIComponent(id)}/release`, {},
      { idempotent: true }), 'release');
  }

  async refund(id: string, reason: string): Promise<GatewaySession> {
    return expectOk(await this.client.call<GatewaySession>('POST', `/v1/sessions/${encodeURIComponent(id)}/refund`,
      { reason }, { idempotent: true }), 'refund');
  }
}

function expectOk<T>(res: { status: number; body: T }, what: string): T {
  if (res.status >= 200 && res.status < 300) return res.body;
  throw new GatewayRefused(`gateway refused ${what}: ${res.status} ${JSON.stringify(res.body)}`, res.status, res.body);
}

/** The gateway answered 4xx: to our caller that is a dependency that would not serve us. */
export class GatewayRefused extends EngineError {
  constructor(message: string, readonly remoteStatus: number, readonly body: unknown) {
    super('dependency_unavailable', message, { retryAfterS: 5 });
  }
}

/** `t=<unix>,v1=<hex hmac(secret, t + "." + body)>`, within the tolerance, compared in constant time. */
export function verifySignature(secret: string, header: string, rawBody: Buffer, toleranceS: number,
  nowS = Math.floor(Date.now() / 1000)): boolean {
  const parts = Object.fromEntries(header.split(',').map((kv) => kv.trim().split('=') as [string, string]));
  const t = Number(parts.t);
  const given = parts.v1 ?? '';
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS || !/^[0-9a-f]{64}$/.test(given)) return false;
  const expected = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(given, 'hex'));
}
