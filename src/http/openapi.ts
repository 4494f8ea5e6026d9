// GET /openapi.json: the OpenAPI 3.1 document built from the same route table and
// schemas that validate requests.
import type { RouteDef } from './route.js';

const ERROR = {
  type: 'object', required: ['error'],
  properties: { error: { type: 'object', required: ['type', 'code', 'message'], properties: { type: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } } } },
};

function openapiPath(p: string): string { return p.replace(/:([a-z_]+)/g, '{$1}'); }

export function buildOpenApi(routes: RouteDef[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = [...r.path.matchAll(/:([a-z_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const query = Object.entries((r.query?.properties ?? {}) as Record<string, unknown>).map(([name, schema]) => ({ name, in: 'query', schema }));
    const op: Record<string, unknown> = {
      operationId: r.name, summary: r.summary, parameters: [...params, ...query],
      security: r.auth === 'none' || r.auth === 'optional' ? [] : [{ bearer: [] }],
      responses: {
        [String(r.response?.status ?? 200)]: { description: 'OK', content: r.response?.schema ? { 'application/json': { schema: r.response.schema } } : undefined },
        default: { description: 'Error', content: { 'application/json': { schema: ERROR } } },
      },
    };
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: r.body } } };
    (paths[openapiPath(r.path)] ??= {})[r.method === 'del' ? 'delete' : r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Sharded order and payment engine', version: '1' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas: { Error: ERROR } },
    paths,
  };
}
