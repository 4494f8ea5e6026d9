// Runtime feature flags (admin): read and switch them; every worker applies a switch
// within a second (src/flags/).
import type { WorkerDeps } from '../../deps.js';
import * as flags from '../../flags/index.js';
import type { RouteDef } from '../route.js';
import { listOf, object } from '../schemas.js';

const FlagSchema = object({
  name: { type: 'string', enum: flags.FLAG_NAMES }, enabled: { type: 'boolean' }, default: { type: 'boolean' },
  description: { type: 'string' }, applied: { type: 'boolean',
    description: 'what the answering worker applies right now' },
  updated_at: { type: ['string', 'null'] }, updated_by: { type: ['string', 'null'] },
});

export function flagRoutes(deps: WorkerDeps): RouteDef[] {
  return [
    {
      method: 'get', path: '/v1/admin/flags', name: 'list_flags', summary: 'Every runtime feature flag (admin)',
      auth: 'admin',
      response: { status: 200, schema: listOf(FlagSchema) },
      handler: async () => ({ status: 200, body: { data: await flags.listFlags(deps), next_cursor: null } }),
    },
    {
      method: 'get', path: '/v1/admin/flags/:name', name: 'get_flag', summary: 'One runtime feature flag (admin)',
      auth: 'admin',
      response: { status: 200, schema: FlagSchema },
      handler: async (ctx) => ({ status: 200, body: await flags.getFlag(deps, ctx.params.name!) }),
    },
    {
      method: 'put', path: '/v1/admin/flags/:name', name: 'set_flag',
      summary: 'Switch a feature flag; every worker applies it within a second (admin)', auth: 'admin',
      body: object({ enabled: { type: 'boolean' } }, ['enabled']), response: { status: 200, schema: FlagSchema },
      handler: async (ctx) => ({ status: 200, body: await flags.setFlag(deps, ctx.params.name!, ctx.body.enabled,
        `admin:${ctx.principal!.id}`) }),
    },
  ];
}
