// Paying a share of the orders the load creates, once the engine has payments:
// the engine creates a card payment (a gateway session), then the "customer" pays
// at the gateway simulator (POST /v1/sessions/:id/complete), which tells the engine
// by signed webhook. Completing runs beside the load with bounded concurrency and a
// bounded queue; it is the simulated customer, not part of the engine's numbers.
import { PATIENT, request } from '../tools/lib/http.js';
import { sleep } from '../tools/lib/wait.js';

export interface PaymentsSupport { available: boolean; reason: string }

/** `POST /v1/orders/:id/payments` exists unless the router says route_not_found. */
export async function probePayments(base: string, token: string): Promise<PaymentsSupport> {
  const res = await request(base, 'POST', '/v1/orders/or_01/payments', { ...PATIENT,
    token, body: { method: 'card' }, headers: { 'idempotency-key': `bench-probe-${Date.now()}` },
  });
  if (res.status === 404 && res.body?.error?.code === 'route_not_found') return { available: false, reason: 'POST /v1/orders/:id/payments answers route_not_found' };
  return { available: true, reason: `probe answered HTTP ${res.status} ${res.body?.error?.code ?? ''}`.trim() };
}

/** The gateway session id of a payment: a field when the engine exposes one, else the redirect URL's last segment. */
export function sessionIdOf(payment: Record<string, unknown>): string | null {
  for (const k of ['gateway_session_id', 'session_id']) if (typeof payment[k] === 'string') return payment[k] as string;
  const url = payment.redirect_url;
  const m = typeof url === 'string' ? /\/checkout\/([A-Za-z0-9_-]+)/.exec(url) : null;
  return m ? m[1]! : null;
}

export interface PayerStats { queued: number; completed: number; failed: number; dropped: number; no_session: number; left: number; failures: Record<string, number> }

const QUEUE_MAX = 20_000;
const LANES = 8;

export class Payer {
  private readonly queue: string[] = [];
  private lanes: Promise<void>[] = [];
  private closing = false;
  private deadline = Infinity;
  readonly stats: PayerStats = { queued: 0, completed: 0, failed: 0, dropped: 0, no_session: 0, left: 0, failures: {} };

  constructor(private readonly gatewayUrl: string | null) {}

  start(): void {
    if (!this.gatewayUrl) return;
    this.lanes = Array.from({ length: LANES }, () => this.lane());
  }

  offer(sessionId: string | null): void {
    if (!sessionId) { this.stats.no_session++; return; }
    if (!this.gatewayUrl || this.queue.length >= QUEUE_MAX) { this.stats.dropped++; return; }
    this.stats.queued++;
    this.queue.push(sessionId);
  }

  private async lane(): Promise<void> {
    for (;;) {
      const id = this.queue.shift();
      if (id === undefined) {
        if (this.closing) return;
        await sleep(20);
        continue;
      }
      if (Date.now() > this.deadline) { this.stats.left++; continue; }
      try {
        const res = await request(this.gatewayUrl!, 'POST', `/v1/sessions/${encodeURIComponent(id)}/complete`, { ...PATIENT, body: { outcome: 'succeeded' }, timeoutMs: 10_000 });
        if (res.status === 200) this.stats.completed++;
        else this.fail(`http_${res.status}_${res.body?.error?.code ?? ''}`);
      } catch (err) {
        this.fail((err as Error).name);
      }
    }
  }

  private fail(why: string): void {
    this.stats.failed++;
    this.stats.failures[why] = (this.stats.failures[why] ?? 0) + 1;
  }

  /** Finishes what is queued, for at most maxMs; what is left is counted, not paid. */
  async drain(maxMs: number): Promise<PayerStats> {
    this.deadline = Date.now() + maxMs;
    this.closing = true;
    await Promise.all(this.lanes);
    this.stats.left += this.queue.length;
    this.queue.length = 0;
    return this.stats;
  }
}
