// Signed webhook delivery for the gateway simulator: at-least-once, with
// retries and the failure knobs (duplicates, reordering, loss) that a real
// gateway's delivery exhibits and that the engine must survive.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Agent, request, type ClientRequest } from 'node:http';
import type { Json, Logger } from './http.js';

/** One attempt may take this long before it counts as a network failure. */
const ATTEMPT_TIMEOUT_MS = 10_000;
/** Backoff doubles from the base up to this cap. */
const BACKOFF_CAP_MS = 5_000;
/** With out_of_order on, each copy waits a random 0..this before its first attempt. */
const REORDER_WINDOW_MS = 500;

export interface WebhookEvent {
  id: string;
  type: string;
  created: number;
  data: Json;
}

export interface DeliveryKnobs {
  duplicate_webhooks: number;
  out_of_order: boolean;
  lost_webhooks: number;
  webhook_retries: number;
  webhook_backoff_ms: number;
}

export interface DeliveryStats {
  webhooks_sent: number;
  webhooks_failed: number;
  webhooks_dropped: number;
  webhooks_abandoned: number;
  webhooks_pending: number;
}

/** Header value `t=<unix>,v1=<hex hmac_sha256(secret, t + "." + body)>`. */
export function signWebhook(secret: string, unixSeconds: number, rawBody: string | Buffer): string {
  const mac = createHmac('sha256', secret)
    .update(`${unixSeconds}.`)
    .update(rawBody)
    .digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * Verifies a Gateway-Signature header against the raw body, rejecting
 * timestamps more than `toleranceSec` away from now (replay protection).
 * Exported for tests; the engine carries its own implementation.
 */
export function verifySignature(
  secret: string,
  header: string | undefined,
  rawBody: string | Buffer,
  toleranceSec = 300,
  nowSec = Math.floor(Date.now() / 1000),
): boolean {
  if (!header) return false;
  const parts = new Map<string, string[]>();
  for (const piece of header.split(',')) {
    const eq = piece.indexOf('=');
    if (eq <= 0) continue;
    const k = piece.slice(0, eq).trim();
    parts.set(k, [...(parts.get(k) ?? []), piece.slice(eq + 1).trim()]);
  }
  const t = Number(parts.get('t')?.[0]);
  if (!Number.isInteger(t) || Math.abs(nowSec - t) > toleranceSec) return false;
  const expected = Buffer.from(signWebhook(secret, t, rawBody).split('v1=')[1] ?? '', 'hex');
  // Several v1 values may be present (secret rotation): any match is enough.
  return (parts.get('v1') ?? []).some((sig) => {
    const given = Buffer.from(sig, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export function backoffMs(baseMs: number, retryNumber: number): number {
  return Math.min(BACKOFF_CAP_MS, baseMs * 2 ** (retryNumber - 1));
}

export class WebhookSender {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inflight = new Set<ClientRequest>();
  private closed = false;

  constructor(
    private readonly secret: string,
    private readonly knobs: () => DeliveryKnobs,
    private readonly stats: DeliveryStats,
    private readonly log: Logger,
  ) {}

  /** Builds the event and hands it to delivery, applying loss/duplication knobs. */
  emit(url: string, type: string, data: Json): WebhookEvent {
    const event: WebhookEvent = {
      id: `evt_${randomBytes(12).toString('hex')}`,
      type,
      created: Math.floor(Date.now() / 1000),
      data,
    };
    const k = this.knobs();
    if (k.lost_webhooks > 0 && Math.random() < k.lost_webhooks) {
      // Lost for good: the receiver can only learn the outcome by polling.
      this.stats.webhooks_dropped++;
      this.log('info', 'webhook_dropped', { event_id: event.id, type });
      return event;
    }
    const body = JSON.stringify(event);
    // Copies share the event id: receivers must dedupe by it.
    for (let copy = 0; copy <= k.duplicate_webhooks; copy++) {
      const delay = k.out_of_order ? Math.floor(Math.random() * (REORDER_WINDOW_MS + 1)) : 0;
      this.stats.webhooks_pending++;
      this.later(delay, () => void this.attempt(url, event, body, 0));
    }
    return event;
  }

  private later(ms: number, fn: () => void): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(timer);
  }

  /** One attempt; on failure schedules the next with doubling backoff. */
  private async attempt(url: string, event: WebhookEvent, body: string, retry: number): Promise<void> {
    const status = await this.post(url, body).catch((err: Error) => err);
    if (this.closed) return;
    if (typeof status === 'number' && status >= 200 && status < 300) {
      this.stats.webhooks_sent++;
      this.stats.webhooks_pending--;
      this.log('info', 'webhook_delivered', { event_id: event.id, type: event.type, attempt: retry + 1, status });
      return;
    }
    this.stats.webhooks_failed++;
    const reason = typeof status === 'number' ? `status ${status}` : status.message;
    const { webhook_retries: maxRetries, webhook_backoff_ms: base } = this.knobs();
    if (retry >= maxRetries) {
      this.stats.webhooks_pending--;
      this.stats.webhooks_abandoned++;
      this.log('warn', 'webhook_abandoned', { event_id: event.id, type: event.type, attempts: retry + 1, reason });
      return;
    }
    const wait = backoffMs(base, retry + 1);
    this.log('info', 'webhook_retry', { event_id: event.id, type: event.type, attempt: retry + 1, reason,
      retry_in_ms: wait });
    this.later(wait, () => void this.attempt(url, event, body, retry + 1));
  }

  /** POSTs the body, freshly signed so a late retry stays inside the receiver's tolerance. */
  private post(url: string, body: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const signature = signWebhook(this.secret, Math.floor(Date.now() / 1000), body);
      const req = request(url, {
        method: 'POST',
        agent: this.agent,
        timeout: ATTEMPT_TIMEOUT_MS,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          'Gateway-Signature': signature,
          'User-Agent': 'gateway-sim/1',
        },
      });
      this.inflight.add(req);
      req.on('response', (res) => {
        res.resume(); // drain so the keep-alive socket is reused
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.on('close', () => this.inflight.delete(req));
      req.end(body);
    });
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const req of this.inflight) req.destroy();
    this.agent.destroy();
  }
}
