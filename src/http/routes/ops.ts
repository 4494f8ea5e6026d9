import { authenticate } from '../../accounts/service.js';
import type { RedisSet } from '../../redis/set.js';
import type { WorkerDeps } from '../../deps.js';
import { fleetText } from '../../metrics/fleet.js';
import { docsPage } from '../docs-page.js';
import type { RouteDef } from '../route.js';
import { object, type Schema } from '../schemas.js';
import { loadUws, runtime } from '../uws.js';

// /readyz answers anyone with statuses only: an error text names hosts, ports and users
// of the databases, pool figures show load, and the runtime (Node, glibc, which uWS
// build serves) tells an attacker what to try. Those go to the logs (when a component
// goes down, and the primary's "uws loaded" line at start) and to an admin's bearer
// token, here, with each shard's primary (the host its writes go to, as this worker
// last found it) and, for a shard of several hosts, what the last probe found on each.

interface ShardPing { shard: number; status: 'up' | 'down'; ms: number; error?: string }
interface RedisPing { redis: number; status: 'up' | 'down'; state?: string; error?: string }

async function pingShard(deps: WorkerDeps, shard: number): Promise<ShardPing> {
  const t = performance.now();
  try {
    await deps.shards.get(shard).query('SELECT 1');
    return { shard, status: 'up', ms: Math.round(performance.now() - t) };
  } catch (err) {
    return { shard, status: 'down', ms: Math.round(performance.now() - t), error: messageOf(err) };
  }
}

async function pingRedis(redis: RedisSet): Promise<RedisPing[]> {
  return Promise.all(redis.clients.map(async (c, i) => {
    try {
      await c.ping();
      return { redis: i, status: 'up' as const };
    } catch (err) {
      return { redis: i, status: 'down' as const, state: c.status, error: messageOf(err) };
    }
  }));
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** An admin's token sees the details; any failure to tell (no token, shard down) is anonymous. */
async function isAdmin(deps: WorkerDeps, token: string | null): Promise<boolean> {
  if (!token) return false;
  try {
    return (await authenticate(deps, token))?.role === 'admin';
  } catch {
    return false;
  }
}

async function readiness(deps: WorkerDeps, redis: RedisSet, token: string | null) {
  const [shards, redisStates, admin] = await Promise.all([Promise.all(deps.dir.shards().map((s) => pingShard(deps, s))),
    pingRedis(redis), isAdmin(deps, token)]);
  const ok = shards.every((s) => s.status === 'up') && redisStates.every((r) => r.status === 'up');
  const degraded = shards.every((s) => s.status === 'up');
  const status = ok ? 'ok' : degraded ? 'degraded' : 'unavailable';
  const body = admin
    ? { status, shards: shards.map((s) => ({ ...s, ...deps.shards.get(s.shard).primaryInfo() })), redis: redisStates, pools: deps.pools.stats(),
      runtime: { ...runtime(), uws: loadUws().build } }
    : { status, shards: shards.map((s) => ({ shard: s.shard, status: s.status })),
      redis: redisStates.map((r) => ({ redis: r.redis, status: r.status })) };
  return { status: ok ? 200 : 503, body };
}

const up = { type: 'string', enum: ['up', 'down'] };
const ReadySchema = object({
  status: { type: 'string', enum: ['ok', 'degraded', 'unavailable'],
    description: 'degraded: a Redis is down; unavailable: a shard is down' },
  shards: { type: 'array', items: { type: 'object', properties: { shard: { type: 'integer' }, status: up } } },
  redis: { type: 'array', items: { type: 'object', properties: { redis: { type: 'integer' }, status: up } } },
  pools: { type: 'array', description: 'admin bearer token only (and shards[].error, shards[].ms, redis[].error)' },
  runtime: { type: 'object',
    description: 'admin bearer token only: node, abi, platform, glibc, and uws (the uWebSockets.js build serving: ' +
      'package, version, native)' },
});
const notReady: Schema = { anyOf: [ReadySchema, { $ref: '#/components/schemas/Error' }] };

export function opsRoutes(deps: WorkerDeps, redis: RedisSet, openapi: () => Record<string, unknown>): RouteDef[] {
  let page: { html: string; headers: Record<string, string> } | null = null;
  return [
    { method: 'get', path: '/healthz', name: 'healthz', summary: 'Liveness', auth: 'none',
      response: { status: 200, schema: object({ status: { const: 'ok' } }) },
      handler: async () => ({ status: 200, body: { status: 'ok' } }) },
    {
      method: 'get', path: '/readyz', name: 'readyz', auth: 'none',
      summary: 'Readiness: every shard and Redis (statuses; an admin bearer token also sees errors, pools and the ' +
        'runtime)',
      response: { status: 200, schema: ReadySchema },
      alsoAnswers: [{ status: 503,
        description: 'A shard or a Redis is down (the readiness body); or this worker is overloaded (the error ' +
          'shape, with Retry-After)', schema: notReady }],
      handler: async (ctx) => readiness(deps, redis, ctx.token),
    },
    {
      method: 'get', path: '/metrics', name: 'metrics',
      summary: 'Prometheus metrics of this app server (every process, merged)', auth: 'none',
      response: { status: 200, type: 'text/plain' },
      handler: async () => ({ status: 200, body: await fleetText(),
        headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } }),
    },
    { method: 'get', path: '/openapi.json', name: 'openapi', summary: 'This contract as OpenAPI 3.1', auth: 'none',
      handler: async () => ({ status: 200, body: openapi() }) },
    {
      method: 'get', path: '/docs', name: 'docs',
      summary: 'This contract as a readable page (rendered from /openapi.json)', auth: 'none',
      response: { status: 200, type: 'text/html' },
      handler: async () => {
        page ??= docsPage(openapi());
        return { status: 200, body: page.html, headers: page.headers };
      },
    },
  ];
}
