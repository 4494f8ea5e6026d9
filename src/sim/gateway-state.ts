// The payment gateway simulator's state and transitions, independent of HTTP (its
// routes are gateway-routes.ts, its process entry gateway.ts).
import { randomBytes } from 'node:crypto';
import { HttpError, type Logger } from './http.js';
import type { KnobSpec, KnobValues } from './knobs.js';
import type { ValidSessionInput } from './session-input.js';
import { WebhookSender, type DeliveryStats } from './webhooks.js';

export const KNOBS = {
  latency_ms: { env: 'GATEWAY_LATENCY_MS', kind: 'int', fallback: 0, max: 120_000 },
  error_rate: { env: 'GATEWAY_ERROR_RATE', kind: 'rate', fallback: 0 },
  duplicate_webhooks: { env: 'GATEWAY_DUPLICATE_WEBHOOKS', kind: 'int', fallback: 0, max: 20 },
  out_of_order: { env: 'GATEWAY_OUT_OF_ORDER', kind: 'bool', fallback: false },
  lost_webhooks: { env: 'GATEWAY_LOST_WEBHOOKS', kind: 'rate', fallback: 0 },
  webhook_retries: { env: 'GATEWAY_WEBHOOK_RETRIES', kind: 'int', fallback: 8, max: 100 },
  webhook_backoff_ms: { env: 'GATEWAY_WEBHOOK_BACKOFF_MS', kind: 'int', fallback: 200, min: 1, max: 60_000 },
} satisfies KnobSpec<string>;

export type KnobName = keyof typeof KNOBS;
type GatewayKnobs = KnobValues<KnobName>;

export type SessionStatus = 'pending' | 'succeeded' | 'declined' | 'expired' | 'refunded';
export type EscrowState = 'none' | 'held' | 'released' | 'refunded';

export interface Session {
  id: string;
  merchant_ref: string;
  status: SessionStatus;
  amount_cents: number;
  currency: string;
  method: 'card' | 'qr';
  redirect_url?: string;
  qr_payload?: string;
  expires_at: string;
  escrow: EscrowState;
  refunded_cents: number;
  /** When escrow was released to the merchant; kept through a later refund, so a payment paid out both ways shows. */
  released_at?: string;
  created_at: string;
  /** Not part of the public view: where this session's events go. */
  webhook_url: string;
}

export interface GatewayOptions {
  port: number;
  host: string;
  apiKey: string;
  webhookSecret: string;
  /** Base of redirect URLs; defaults to http://<host>:<bound port>. */
  publicUrl?: string;
  /** Session lifetime when the merchant gives no expires_at. */
  sessionTtlSec: number;
  knobs: GatewayKnobs;
  quiet: boolean;
}


function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

/** Longest delay setTimeout accepts; later expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** All gateway state and transitions, independent of HTTP. */
export class Gateway {
  readonly sessions = new Map<string, Session>();
  /** Idempotency-Key -> session id and the request fingerprint it was made with. */
  private readonly idempotency = new Map<string, { id: string; fingerprint: string }>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  readonly stats = {
    sessions: 0,
    captures: 0,
    declines: 0,
    refunds: 0,
    releases: 0,
    expirations: 0,
    webhooks_sent: 0,
    webhooks_failed: 0,
    webhooks_dropped: 0,
    webhooks_abandoned: 0,
    webhooks_pending: 0,
  } satisfies DeliveryStats & Record<string, number>;
  knobs: GatewayKnobs;
  readonly webhooks: WebhookSender;

  constructor(
    readonly opts: GatewayOptions,
    readonly publicUrl: string,
    readonly log: Logger,
  ) {
    this.knobs = { ...opts.knobs };
    this.webhooks = new WebhookSender(
      opts.webhookSecret,
      () => ({
        duplicate_webhooks: Number(this.knobs.duplicate_webhooks),
        out_of_order: Boolean(this.knobs.out_of_order),
        lost_webhooks: Number(this.knobs.lost_webhooks),
        webhook_retries: Number(this.knobs.webhook_retries),
        webhook_backoff_ms: Number(this.knobs.webhook_backoff_ms),
      }),
      this.stats,
      log,
    );
  }

  /** Creates a session, or replays the one made earlier under the same key. */
  create(input: ValidSessionInput, idemKey: string | undefined): { session: Session; created: boolean } {
    const fingerprint = JSON.stringify([input.merchant_ref, input.amount_cents, input.currency, input.method]);
    if (idemKey !== undefined) {
      const prior = this.idempotency.get(idemKey);
      if (prior) {
        if (prior.fingerprint !== fingerprint) {
          throw new HttpError(422, 'idempotency_mismatch', 'Idempotency-Key reused with different parameters');
        }
        return { session: this.get(prior.id), created: false };
      }
    }
    const session = this.newSession(input);
    this.sessions.set(session.id, session);
    if (idemKey !== undefined) this.idempotency.set(idemKey, { id: session.id, fingerprint });
    this.stats.sessions++;
    this.armExpiry(session);
    this.log('info', 'session_created', { session_id: session.id, merchant_ref: session.merchant_ref,
      amount_cents: session.amount_cents, method: session.method });
    return { session, created: true };
  }

  private newSession(input: ValidSessionInput): Session {
    const id = newId('gws');
    const now = Date.now();
    const session: Session = {
      id,
      merchant_ref: input.merchant_ref,
      status: 'pending',
      amount_cents: input.amount_cents,
      currency: input.currency,
      method: input.method,
      expires_at: input.expires_at ?? new Date(now + this.opts.sessionTtlSec * 1000).toISOString(),
      escrow: 'none',
      refunded_cents: 0,
      created_at: new Date(now).toISOString(),
      webhook_url: input.webhook_url,
    };
    if (input.method === 'card') session.redirect_url = `${this.publicUrl}/checkout/${id}`;
    else session.qr_payload = `GWQR|${id}|${input.amount_cents}|${input.currency}`;
    return session;
  }

  /** Looks a session up, expiring it first if its time has passed (lazy expiry). */
  get(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw new HttpError(404, 'not_found', `no session ${id}`);
    this.expireIfDue(s);
    return s;
  }

  private armExpiry(s: Session): void {
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, Date.parse(s.expires_at) - Date.now()));
    const timer = setTimeout(() => {
      this.expiryTimers.delete(s.id);
      if (!this.expireIfDue(s) && s.status === 'pending') this.armExpiry(s);
    }, wait);
    timer.unref();
    this.expiryTimers.set(s.id, timer);
  }

  private disarmExpiry(id: string): void {
    const timer = this.expiryTimers.get(id);
    if (timer) clearTimeout(timer);
    this.expiryTimers.delete(id);
  }

  private expireIfDue(s: Session): boolean {
    if (s.status !== 'pending' || Date.now() < Date.parse(s.expires_at)) return false;
    this.expire(s);
    return true;
  }

  /** pending -> expired; also used by the test control to force an abandon. */
  expire(s: Session): void {
    if (s.status !== 'pending') throw notPending(s);
    s.status = 'expired';
    this.stats.expirations++;
    this.disarmExpiry(s.id);
    this.transitioned(s, 'payment.expired');
  }

  /** pending -> succeeded (captured into escrow) or declined; never twice. */
  complete(id: string, outcome: 'succeeded' | 'declined'): Session {
    const s = this.get(id);
    if (s.status !== 'pending') throw notPending(s);
    this.disarmExpiry(s.id);
    if (outcome === 'succeeded') {
      s.status = 'succeeded';
      s.escrow = 'held';
      this.stats.captures++;
      this.transitioned(s, 'payment.succeeded');
    } else {
      s.status = 'declined';
      this.stats.declines++;
      this.transitioned(s, 'payment.declined');
    }
    return s;
  }

  /** escrow held -> released; a repeat on a released session is a no-op success. */
  release(id: string): Session {
    const s = this.get(id);
    if (s.escrow === 'released') return s;
    if (s.escrow !== 'held') {
      throw conflict(s, 'escrow_not_held', `cannot release: session is ${s.status}, escrow ${s.escrow}`);
    }
    s.escrow = 'released';
    s.released_at = new Date().toISOString();
    this.stats.releases++;
    this.transitioned(s, 'payment.released');
    return s;
  }

  /** succeeded (held or released) -> refunded in full; a repeat is a no-op success. */
  refund(id: string): Session {
    const s = this.get(id);
    if (s.status === 'refunded') return s;
    if (s.status !== 'succeeded' || (s.escrow !== 'held' && s.escrow !== 'released')) {
      throw conflict(s, 'not_refundable', `cannot refund: session is ${s.status}`);
    }
    s.status = 'refunded';
    s.escrow = 'refunded';
    s.refunded_cents = s.amount_cents;
    this.stats.refunds++;
    this.transitioned(s, 'payment.refunded');
    return s;
  }

  private transitioned(s: Session, type: string): void {
    this.log('info', 'session_transition', { session_id: s.id, type, status: s.status, escrow: s.escrow });
    this.webhooks.emit(s.webhook_url, type, {
      session_id: s.id,
      merchant_ref: s.merchant_ref,
      status: s.status,
      escrow: s.escrow,
      amount_cents: s.amount_cents,
      currency: s.currency,
    });
  }

  close(): void {
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    this.expiryTimers.clear();
    this.webhooks.close();
  }
}

/** A 409 that names the session's status and escrow. */
function conflict(s: Session, code: string, message: string): HttpError {
  return new HttpError(409, code, message, { status: s.status, escrow: s.escrow });
}

export function notPending(s: Session): HttpError {
  return conflict(s, 'session_not_pending', `session is ${s.status}`);
}
