// Payment gateway simulator: a separate process that speaks the wire protocol
// in src/sim/PROTOCOL.md. It holds captured funds in escrow, releases and
// refunds them, and notifies the merchant by signed webhooks, with failure
// knobs so the engine's resilience can be exercised end to end.
import { makeLogger, runAsMain, serve } from './http.js';
import { intEnv, knobsFromEnv } from './knobs.js';
import { Gateway, KNOBS, type GatewayOptions } from './gateway-state.js';
import { gatewayRoutes, type Ctx } from './gateway-routes.js';

export { signWebhook, verifySignature } from './webhooks.js';

export interface RunningSim {
  port: number;
  url: string;
  close(): Promise<void>;
}

export function gatewayOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): GatewayOptions {
  return {
    port: intEnv(env, 'GATEWAY_PORT', 8090),
    host: env.GATEWAY_HOST || '127.0.0.1',
    apiKey: env.GATEWAY_API_KEY || 'gw_test_key',
    webhookSecret: env.GATEWAY_WEBHOOK_SECRET || 'whsec_test',
    publicUrl: env.GATEWAY_PUBLIC_URL || undefined,
    sessionTtlSec: intEnv(env, 'GATEWAY_AUTO_EXPIRE', 900, 1),
    knobs: knobsFromEnv(KNOBS, env),
    quiet: env.SIM_QUIET === '1',
  };
}

/** Starts the gateway simulator; options default to the environment's. */
export async function start(overrides: Partial<GatewayOptions> = {}): Promise<RunningSim> {
  const opts = { ...gatewayOptionsFromEnv(), ...overrides };
  const log = makeLogger('gateway', opts.quiet);
  let gw: Gateway | undefined;
  // The gateway needs its own URL (redirect_url), known only once it listens.
  const served = await serve<Ctx>(gatewayRoutes(), (req, res) => ({ req, res, gw: gw! }), opts, log);
  gw = new Gateway(opts, (opts.publicUrl ?? served.url).replace(/\/+$/, ''), log);
  log('info', 'listening', { port: served.port, url: served.url, public_url: gw.publicUrl });
  return { port: served.port, url: served.url, close: async () => { gw!.close(); await served.close(); } };
}

runAsMain(import.meta.url, 'gateway', start);
