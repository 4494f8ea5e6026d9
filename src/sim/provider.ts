// Credit provider simulator: a separate process holding per-package quota,
// activating credit for a customer and reporting activation progress on
// verify calls, with failure knobs (latency, errors, timeouts, failed
// activations, slow or failed verification). Wire protocol: src/sim/PROTOCOL.md.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  HttpError,
  makeLogger,
  readJsonObject,
  rejectUnknownFields,
  requireBearer,
  runAsMain,
  sendJson,
  serve,
  sleep,
  type Json,
  type Logger,
  type Route,
} from './http.js';
import { controlRoutes, intEnv, knobsFromEnv, roll, type KnobSpec, type KnobValues } from './knobs.js';

const KNOBS = {
  latency_ms: { env: 'PROVIDER_LATENCY_MS', kind: 'int', fallback: 0, max: 120_000 },
  error_rate: { env: 'PROVIDER_ERROR_RATE', kind: 'rate', fallback: 0 },
  timeout_rate: { env: 'PROVIDER_TIMEOUT_RATE', kind: 'rate', fallback: 0 },
  /** How long a "timed out" request is held before it is finally answered. */
  timeout_ms: { env: 'PROVIDER_TIMEOUT_MS', kind: 'int', fallback: 35_000, max: 600_000 },
  activation_fail_rate: { env: 'PROVIDER_ACTIVATION_FAIL_RATE', kind: 'rate', fallback: 0 },
  verify_fail_first: { env: 'PROVIDER_VERIFY_FAIL_FIRST', kind: 'int', fallback: 0, max: 1000 },
  verify_fail_rate: { env: 'PROVIDER_VERIFY_FAIL_RATE', kind: 'rate', fallback: 0 },
} satisfies KnobSpec<string>;

type KnobName = keyof typeof KNOBS;
type ProviderKnobs = KnobValues<KnobName>;

export type ActivationStatus = 'activating' | 'active' | 'failed';

interface Activation {
  id: string;
  ref: string;
  sku: string;
  quantity: number;
  customer_ref: string;
  status: ActivationStatus;
  /** Verify calls answered for this activation. */
  attempts: number;
  created_at: string;
  activated_at?: string;
  failure_reason?: string;
}

export interface ProviderOptions {
  port: number;
  host: string;
  apiKey: string;
  /** Quota a package starts with the first time it is mentioned. */
  defaultQuota: number;
  knobs: ProviderKnobs;
  quiet: boolean;
}

export interface RunningSim {
  port: number;
  url: string;
  close(): Promise<void>;
}

export function providerOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ProviderOptions {
  return {
    port: intEnv(env, 'PROVIDER_PORT', 8091),
    host: env.PROVIDER_HOST || '127.0.0.1',
    apiKey: env.PROVIDER_API_KEY || 'pv_test_key',
    defaultQuota: intEnv(env, 'PROVIDER_DEFAULT_QUOTA', 1_000_000),
    knobs: knobsFromEnv(KNOBS, env),
    quiet: env.SIM_QUIET === '1',
  };
}

/** All provider state and transitions, independent of HTTP. */
class Provider {
  private readonly quota = new Map<string, number>();
  private readonly byId = new Map<string, Activation>();
  private readonly byRef = new Map<string, Activation>();
  readonly stats = { activations: 0, active: 0, failed: 0, verify_calls: 0, quota_exhausted: 0 };
  knobs: ProviderKnobs;

  constructor(
    readonly opts: ProviderOptions,
    readonly log: Logger,
  ) {
    this.knobs = { ...opts.knobs };
  }

  quotaOf(sku: string): number {
    return this.quota.get(sku) ?? this.opts.defaultQuota;
  }

  setQuota(sku: string, quota: number): void {
    this.quota.set(sku, quota);
    this.log('info', 'quota_set', { sku, quota });
  }

  /**
   * Idempotent by ref. Check-and-decrement runs synchronously on the single
   * event loop, so concurrent activations can never oversell a package.
   */
  activate(input: ActivationInput): { activation: Activation; created: boolean } {
    const prior = this.byRef.get(input.ref);
    if (prior) {
      if (prior.sku !== input.sku || prior.quantity !== input.quantity || prior.customer_ref !== input.customer_ref) {
        throw new HttpError(422, 'idempotency_mismatch', `ref ${input.ref} was used with different parameters`);
      }
      return { activation: prior, created: false };
    }
    const available = this.quotaOf(input.sku);
    if (available < input.quantity) {
      // Nothing is recorded, so the same ref may succeed after a restock.
      this.stats.quota_exhausted++;
      this.log('info', 'quota_exhausted', { ref: input.ref, sku: input.sku, quantity: input.quantity,
        quota: available });
      throw new HttpError(409, 'quota_exhausted',
        `package ${input.sku} has ${available} left, ${input.quantity} requested`,
          { sku: input.sku, quota: available });
    }
    const activation = this.record(input);
    if (roll(this.knobs.activation_fail_rate)) {
      this.fail(activation, 'activation_rejected', false);
    } else {
      this.quota.set(input.sku, available - input.quantity);
    }
    this.log('info', 'activation_created', { activation_id: activation.id, ref: activation.ref, sku: activation.sku,
      quantity: activation.quantity, status: activation.status });
    return { activation, created: true };
  }

  private record(input: ActivationInput): Activation {
    const activation: Activation = {
      id: `pva_${randomBytes(12).toString('hex')}`,
      ...input,
      status: 'activating',
      attempts: 0,
      created_at: new Date().toISOString(),
    };
    this.byId.set(activation.id, activation);
    this.byRef.set(activation.ref, activation);
    this.stats.activations++;
    return activation;
  }

  private fail(a: Activation, reason: string, returnQuota: boolean): void {
    a.status = 'failed';
    a.failure_reason = reason;
    this.stats.failed++;
    if (returnQuota) this.quota.set(a.sku, this.quotaOf(a.sku) + a.quantity);
  }

  /**
   * A verify call: the first `verify_fail_first` calls report "activating";
   * the next one settles the activation as active, or failed at the
   * verify-fail rate (quota returned). Settled activations stay settled.
   */
  verify(id: string): Activation {
    const a = this.byId.get(id);
    if (!a) throw new HttpError(404, 'not_found', `no activation ${id}`);
    a.attempts++;
    this.stats.verify_calls++;
    if (a.status !== 'activating' || a.attempts <= Number(this.knobs.verify_fail_first)) return a;
    if (roll(this.knobs.verify_fail_rate)) {
      this.fail(a, 'verification_failed', true);
    } else {
      a.status = 'active';
      a.activated_at = new Date().toISOString();
      this.stats.active++;
    }
    this.log('info', 'activation_settled', { activation_id: a.id, ref: a.ref, status: a.status, attempts: a.attempts });
    return a;
  }

  findByRef(ref: string): Activation {
    const a = this.byRef.get(ref);
    if (!a) throw new HttpError(404, 'not_found', `no activation with ref ${ref}`);
    return a;
  }
}

interface ActivationInput {
  ref: string;
  sku: string;
  quantity: number;
  customer_ref: string;
}

function bad(message: string): HttpError {
  return new HttpError(400, 'invalid_request', message);
}

function isShortString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 200;
}

function validateActivation(body: Json): ActivationInput {
  rejectUnknownFields(body, ['ref', 'sku', 'quantity', 'customer_ref']);
  const { ref, sku, quantity, customer_ref } = body;
  if (!isShortString(ref)) throw bad('ref must be a non-empty string of at most 200 characters');
  if (!isShortString(sku)) throw bad('sku must be a non-empty string of at most 200 characters');
  if (typeof quantity !== 'number' || !Number.isSafeInteger(quantity) || quantity < 1) {
    throw bad('quantity must be an integer >= 1');
  }
  if (!isShortString(customer_ref)) throw bad('customer_ref must be a non-empty string of at most 200 characters');
  return { ref, sku, quantity, customer_ref };
}

function validateQuota(body: Json): number {
  rejectUnknownFields(body, ['quota']);
  const { quota } = body;
  if (typeof quota !== 'number' || !Number.isSafeInteger(quota)
    || quota < 0) throw bad('quota must be an integer >= 0');
  return quota;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  pv: Provider;
}

type Answer = { status: number; body: unknown };

/**
 * Provider API wrapper. Order matters: latency, then the error knob (503
 * before any work), then auth and the work itself. A request picked by the
 * timeout knob is processed now but answered only after timeout_ms, the
 * case where the caller cannot tell whether its call took effect.
 */
function api(handle: (ctx: Ctx, p: Record<string, string>) => Promise<Answer> | Answer): Route<Ctx>['handle'] {
  return async (ctx, params) => {
    const { pv } = ctx;
    await sleep(Number(pv.knobs.latency_ms));
    if (roll(pv.knobs.error_rate)) throw new HttpError(503, 'unavailable', 'simulated provider outage');
    const hold = roll(pv.knobs.timeout_rate);
    let outcome: Answer | { error: unknown };
    try {
      requireBearer(ctx.req, pv.opts.apiKey);
      outcome = await handle(ctx, params);
    } catch (error) {
      outcome = { error };
    }
    if (hold) {
      pv.log('info', 'request_held', { path: ctx.url.pathname, hold_ms: pv.knobs.timeout_ms });
      await sleep(Number(pv.knobs.timeout_ms));
    }
    if ('error' in outcome) throw outcome.error;
    sendJson(ctx.res, outcome.status, outcome.body);
  };
}

const routes: Route<Ctx>[] = [
  { method: 'GET', pattern: /^\/healthz$/, handle: ({ res }) => sendJson(res, 200, { ok: true }) },
  {
    method: 'GET',
    pattern: /^\/v1\/packages\/(?<sku>[^/]+)$/,
    handle: api(({ pv }, p) => ({ status: 200, body: { sku: p.sku, quota: pv.quotaOf(p.sku!) } })),
  },
  {
    method: 'PUT',
    pattern: /^\/v1\/packages\/(?<sku>[^/]+)$/,
    handle: api(async ({ req, pv }, p) => {
      const quota = validateQuota(await readJsonObject(req));
      pv.setQuota(p.sku!, quota);
      return { status: 200, body: { sku: p.sku, quota } };
    }),
  },
  {
    method: 'POST',
    pattern: /^\/v1\/activations$/,
    handle: api(async ({ req, pv }) => {
      const { activation, created } = pv.activate(validateActivation(await readJsonObject(req)));
      return { status: created ? 201 : 200, body: activation };
    }),
  },
  {
    method: 'GET',
    pattern: /^\/v1\/activations$/,
    handle: api(({ url, pv }) => {
      const ref = url.searchParams.get('ref');
      if (!ref) throw bad('query parameter ref is required');
      return { status: 200, body: pv.findByRef(ref) };
    }),
  },
  {
    method: 'GET',
    pattern: /^\/v1\/activations\/(?<id>[^/]+)$/,
    handle: api(({ pv }, p) => ({ status: 200, body: pv.verify(p.id!) })),
  },
  // Test control.
  ...controlRoutes<Ctx, KnobName>(KNOBS, (ctx) => ctx.pv),
];

/** Starts the provider simulator; options default to the environment's. */
export async function start(overrides: Partial<ProviderOptions> = {}): Promise<RunningSim> {
  const opts = { ...providerOptionsFromEnv(), ...overrides };
  const log = makeLogger('provider', opts.quiet);
  const pv = new Provider(opts, log);
  const served = await serve<Ctx>(routes, (req, res, url) => ({ req, res, url, pv }), opts, log);
  log('info', 'listening', { port: served.port, url: served.url });
  return { port: served.port, url: served.url, close: served.close };
}

runAsMain(import.meta.url, 'provider', start);
