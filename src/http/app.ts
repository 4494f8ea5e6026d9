// build() is separate from listen(): this assembles the uWS app from the route
// table; the process entry decides where it listens.
import { authenticate } from '../accounts/service.js';
import type { RedisSet } from '../redis/set.js';
import type { CachedItem } from '../catalog/model.js';
import { inLane, type WorkerDeps } from '../deps.js';
import { EngineError, invariant } from '../errors.js';
import { LANES, type Lane } from '../shard/shards.js';
import { observeRequest } from '../metrics/index.js';
import type { Admission } from './admission.js';
import { IdempotencyKeys } from './idempotency.js';
import { buildOpenApi } from './openapi.js';
import type { Live } from '../realtime/live.js';
import { mountDashboard } from './dashboard/page.js';
import { errorReply, type Replies } from './reply.js';
import { laneOf, mount, requestIdOf, type HttpEnv, type RouteDef } from './route.js';
import { accountRoutes } from './routes/accounts.js';
import { cartRoutes } from './routes/cart.js';
import { catalogRoutes } from './routes/catalog.js';
import { flagRoutes } from './routes/flags.js';
import { opsRoutes } from './routes/ops.js';
import { orderRoutes } from './routes/orders.js';
import { paymentRoutes } from './routes/payments.js';
import { shipmentRoutes } from './routes/shipments.js';
import { mountStream, streamOpenApi } from './routes/stream.js';
import { uws, type TemplatedApp } from './uws.js';

/** A worker's: the WebSocket stream (`live`) is mounted on the same app, both admitted by `admission`. */
export interface AppParts { deps: WorkerDeps; redis: RedisSet; live: Live<CachedItem>; admission: Admission;
  replies: Replies }

/** `close`: stops what the app keeps doing in the background (idempotency keys being released). */
export function buildApp(parts: AppParts): { app: TemplatedApp; routes: RouteDef[]; close(): void } {
  const { deps, redis } = parts;
  const env: HttpEnv = {
    bodyLimitBytes: deps.cfg.bodyLimitBytes,
    bodyTimeoutMs: deps.cfg.bodyTimeoutMs,
    admission: parts.admission,
    logRequests: deps.cfg.logRequests,
    trustProxy: deps.cfg.trustProxy,
    authenticate: (token, lane) => authenticate(inLane(deps, lane), token),
    idempotency: new IdempotencyKeys(deps.pools, deps.cfg.idempotencyLockS),
    replies: parts.replies,
  };
  let openapi: Record<string, unknown> = {};
  const group = (d: WorkerDeps): RouteDef[] => [
    ...opsRoutes(d, redis, () => openapi),
    ...accountRoutes(d),
    ...catalogRoutes(d),
    ...orderRoutes(d),
    ...shipmentRoutes(d),
    ...paymentRoutes(d),
    ...cartRoutes(d),
    ...flagRoutes(d),
  ];
  const routes = inLanes(deps, group);
  openapi = buildOpenApi(routes, streamOpenApi());
  const app = uws().App();
  for (const r of routes) mount(app, env, r);
  mountStream(app, {
    deps, live: parts.live, admission: parts.admission, authenticate: (token) => env.authenticate(token, 'read'),
    replies: parts.replies,
  });
  mountDashboard(app, parts.replies);
  app.any('/*', (res, req) => {
    const started = performance.now();
    const requestId = requestIdOf(req.getHeader('x-request-id'), parts.replies);
    parts.replies.send(res, requestId, errorReply(new EngineError('route_not_found'), requestId));
    observeRequest('unmatched', 404, (performance.now() - started) / 1000);
  });
  return { app, routes, close: () => env.idempotency.close() };
}

/**
 * Every route, each built with the dependencies of its lane (bulkheads): the route
 * table is made once per lane and each route is taken from its own lane's table.
 */
function inLanes(deps: WorkerDeps, group: (d: WorkerDeps) => RouteDef[]): RouteDef[] {
  const tables = Object.fromEntries(LANES.map((lane) => [lane, group(inLane(deps, lane))])) as Record<Lane, RouteDef[]>;
  return tables.read.map((def, i) => {
    const mine = tables[laneOf(def)][i]!;
    invariant(mine.name === def.name, 'every lane builds the same route table');
    return mine;
  });
}
