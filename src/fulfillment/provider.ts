// The engine's side of the credit provider: activate (idempotent by ref) and verify.
import { Breaker } from '../clients/breaker.js';
import { JsonClient } from '../clients/http.js';
import type { Config } from '../config.js';

export interface Activation { id: string; ref: string; status: 'activating' | 'active' | 'failed'; attempts?: number;
  failure_reason?: string }

export type ActivateResult = { ok: true; activation: Activation } | { ok: false; reason: string };

export interface Provider {
  readonly breakerState: string;
  activate(input: { ref: string; sku: string; quantity: number; customer_ref: string }): Promise<ActivateResult>;
  verify(activationId: string): Promise<Activation>;
}

export class HttpProvider implements Provider {
  private readonly client: JsonClient;

  constructor(cfg: Config) {
    this.client = new JsonClient({
      baseUrl: cfg.providerUrl, apiKey: cfg.providerApiKey, timeoutMs: cfg.remoteTimeoutMs, retries: cfg.remoteRetries,
      backoffMs: cfg.remoteBackoffMs, breaker: new Breaker('provider', cfg.breakerThreshold, cfg.breakerOpenMs),
    });
  }

  get breakerState() { return this.client.breakerState; }

  async activate(input: { ref: string; sku: string; quantity: number; customer_ref: string }): Promise<ActivateResult> {
    const res = await this.client.call<Activation & { error?: { code: string } }>('POST', '/v1/activations', input,
      { idempotent: true });
    if (res.status === 200 || res.status === 201) return { ok: true, activation: res.body };
    return { ok: false, reason: res.body?.error?.code ?? `status_${res.status}` };
  }

  async verify(activationId: string): Promise<Activation> {
    const res = await this.client.call<Activation>('GET', `/v1/activations/${encodeURIComponent(activationId)}`,
      undefined, { idempotent: true });
    if (res.status !== 200) return { id: activationId, ref: '', status: 'failed',
      failure_reason: `status_${res.status}` };
    return res.body;
  }
}
