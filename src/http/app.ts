// build() is separate from listen(): this assembles the uWS app from the route
// table; the process entry decides where it listens.
import uWS from 'uWebSockets.js';
import { authenticate } from '../accounts/service.js';
import type { RedisSet } from '../cache/redis.js';
import type { CachedItem } from '../catalog/service.js';
import type { Deps } from '../deps.js';
import { EngineError } from '../errors.js';
import { buildOpenApi } from './openapi.js';
import type { Live } from '../realtime/live.js';
import { mountDashboard } from './dashboard/page.js';
import { errorReply, send } from './reply.js';
import { mount, requestIdOf, type HttpEnv, type RouteDef } from './route.js';
import { accountRoutes } from './routes/accounts.js';
import { catalogRoutes } from './routes/catalog.js';
import { opsRoutes } from './routes/ops.js';
import { orderRoutes } from './routes/orders.js';
import { paymentRoutes } from './routes/payments.js';
import { storefrontRoutes } from './routes/storefront.js';
import { mountStream } from './routes/stream.js';

/** `live` (workers): the WebSocket stream is mounted on the same app. */
export interface AppParts { deps: Deps; redis: RedisSet; live?: Live<CachedItem> | null; extraRoutes?: RouteDef[] }

let seq = 0;
const tag = `${process.pid.toString(36)}`;

export function buildApp(parts: AppParts): { app: uWS.TemplatedApp; routes: RouteDef[] } {
  const { deps, redis } = parts;
  const env: HttpEnv = {
    bodyLimitBytes: deps.cfg.bodyLimitBytes,
    bodyTimeoutMs: deps.cfg.bodyTimeoutMs,
    maxInflight: deps.cfg.maxInflight,
    logRequests: deps.cfg.logRequests,
    trustProxy: deps.cfg.trustProxy,
    authenticate: (token) => authenticate(deps, token),
    nextRequestId: () => `${tag}-${(++seq).toString(36)}`,
  };
  let openapi: unknown = null;
  const routes: RouteDef[] = [
    ...opsRoutes(deps, redis, () => openapi),
    ...accountRoutes(deps),
    ...catalogRoutes(deps),
    ...orderRoutes(deps),
    ...paymentRoutes(deps),
    ...storefrontRoutes(deps),
    ...(parts.extraRoutes ?? []),
  ];
  openapi = buildOpenApi(routes);
  const app = uWS.App();
  for (const r of routes) mount(app, env, r);
  if (parts.live) mountStream(app, { deps, live: parts.live, authenticate: env.authenticate, nextRequestId: env.nextRequestId });
  mountDashboard(app, env.nextRequestId);
  app.any('/*', (res, req) => {
    const requestId = requestIdOf(req.getHeader('x-request-id'), env);
    send(res, requestId, errorReply(new EngineError('route_not_found'), requestId));
  });
  return { app, routes };
}
