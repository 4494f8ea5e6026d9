import type { RedisSet } from '../../cache/redis.js';
import type { Deps } from '../../deps.js';
import { render } from '../metrics.js';
import type { RouteDef } from '../route.js';

async function pingShard(deps: Deps, shard: number): Promise<{ shard: number; status: 'up' | 'down'; ms: number }> {
  const t = performance.now();
  try {
    await deps.shards.get(shard).query('SELECT 1');
    return { shard, status: 'up', ms: Math.round(performance.now() - t) };
  } catch {
    return { shard, status: 'down', ms: Math.round(performance.now() - t) };
  }
}

async function pingRedis(redis: RedisSet) {
  return Promise.all(redis.clients.map(async (c, i) => {
    try {
      await c.ping();
      return { redis: i, status: 'up' as const };
    } catch {
      return { redis: i, status: 'down' as const, state: c.status };
    }
  }));
}

export function opsRoutes(deps: Deps, redis: RedisSet, openapi: () => unknown): RouteDef[] {
  return [
    { method: 'get', path: '/healthz', name: 'healthz', summary: 'Liveness', auth: 'none', handler: async () => ({ status: 200, body: { status: 'ok' } }) },
    {
      method: 'get', path: '/readyz', name: 'readyz', summary: 'Readiness: every shard and Redis', auth: 'none',
      handler: async () => {
        const [shards, redisStates] = await Promise.all([Promise.all(deps.dir.shards().map((s) => pingShard(deps, s))), pingRedis(redis)]);
        const ok = shards.every((s) => s.status === 'up') && redisStates.every((r) => r.status === 'up');
        const degraded = shards.every((s) => s.status === 'up');
        return { status: ok ? 200 : 503, body: { status: ok ? 'ok' : degraded ? 'degraded' : 'unavailable', shards, redis: redisStates, pools: deps.shards.stats() } };
      },
    },
    {
      method: 'get', path: '/metrics', name: 'metrics', summary: 'Prometheus metrics', auth: 'none',
      handler: async () => ({ status: 200, body: render(), headers: { 'content-type': 'text/plain; version=0.0.4' } }),
    },
    { method: 'get', path: '/openapi.json', name: 'openapi', summary: 'This contract as OpenAPI 3.1', auth: 'none', handler: async () => ({ status: 200, body: openapi() }) },
  ];
}
