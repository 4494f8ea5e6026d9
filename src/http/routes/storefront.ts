// What a storefront needs around checkout: the cart, shipments, admin views and runtime flags.
import type { WorkerDeps } from '../../deps.js';
import type { RouteDef } from '../route.js';
import { adminRoutes } from './admin.js';
import { cartRoutes } from './cart.js';
import { shipmentRoutes } from './shipments.js';

export function storefrontRoutes(deps: WorkerDeps): RouteDef[] {
  return [...cartRoutes(deps), ...shipmentRoutes(deps), ...adminRoutes(deps)];
}
