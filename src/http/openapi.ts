// GET /openapi.json: the OpenAPI 3.1 document built from the same route table and
// schemas that validate requests, plus the headers the HTTP layer reads and writes
// for every route (route.ts, reply.ts), so a client generated from it knows them too.
// docs/API.md is the same contract in prose; test/routing.test.ts keeps the two route
// lists equal.
import { ERRORS, type ErrorCode } from '../errors.js';
import type { RouteDef } from './route.js';
import type { Schema } from './schemas.js';

const ERROR: Schema = {
  type: 'object', required: ['error'],
  properties: {
    error: {
      type: 'object', required: ['type', 'code', 'message'],
      description: 'Some codes add fields that name what was refused: field, item_id, available, max_per_customer, ' +
        'shard, flag, status, dependency',
      properties: {
        type: { type: 'string', enum: [...new Set(Object.values(ERRORS).map((e) => e.type))] },
        code: { type: 'string', enum: Object.keys(ERRORS).filter((c) => c !== 'client_closed') },
        message: { type: 'string' },
      },
    },
  },
};

// ---- headers ----------------------------------------------------------------------

const REQUEST_ID_PARAM = {
  name: 'X-Request-Id', in: 'header', required: false, schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
  description: 'Kept as the request id when it matches the pattern (so client and engine logs line up); otherwise ' +
    'the engine makes one. Every answer carries it back.',
};

const IDEMPOTENCY_KEY_PARAM = {
  name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' },
  description: 'Makes this POST exactly-once per caller and key: a retry with the same key and the same request gets ' +
    'the first answer again (marked Idempotent-Replayed: true); the same key with another request is 422 ' +
    'idempotency_mismatch; while the first is still running, 409 idempotency_in_progress with Retry-After. ' +
    'Answers that say "retry later" (5xx, or any error with Retry-After) are not stored. ' +
    'Keys are kept 24 h (IDEMPOTENCY_RETENTION_S).',
};

/** Request headers a route declares in RouteDef.headers, as parameters. */
const DECLARED_HEADERS: Record<string, Record<string, unknown>> = {
  'gateway-signature': {
    name: 'Gateway-Signature', in: 'header', required: true,
    schema: { type: 'string', pattern: '^t=[0-9]+,v1=[0-9a-f]{64}$' },
    description: 't=<unix seconds>,v1=<hex HMAC-SHA256(GATEWAY_WEBHOOK_SECRET, t + "." + raw body)>; refused (401 ' +
      'invalid_signature) when wrong or when t is more than WEBHOOK_TOLERANCE_S (300) from now',
  },
};

const REQUEST_ID_HEADER = { description: 'The request id (the client\'s own X-Request-Id when it was acceptable)',
  schema: { type: 'string' } };
const RETRY_AFTER_HEADER = { description: 'Seconds to wait before trying again',
  schema: { type: 'integer', minimum: 1 } };
const REPLAYED_HEADER = {
  description: 'Present (true) when this is the stored answer of an earlier request with the same Idempotency-Key',
  schema: { type: 'string', enum: ['true'] },
};

// ---- responses --------------------------------------------------------------------

const errorContent = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };

function codesOf(status: number): string {
  return (Object.entries(ERRORS) as [ErrorCode, { status: number }][]).filter(([c, e]) => e.status === status
    && c !== 'client_closed').map(([c]) => c).join(', ');
}

function errorResponse(description: string, headers: Record<string, unknown>): Record<string, unknown> {
  return { description, headers: { 'X-Request-Id': REQUEST_ID_HEADER, ...headers }, content: errorContent };
}

function successResponse(r: RouteDef): Record<string, unknown> {
  const headers: Record<string, unknown> = { 'X-Request-Id': REQUEST_ID_HEADER };
  if (r.idempotent) headers['Idempotent-Replayed'] = REPLAYED_HEADER;
  const type = r.response?.type ?? 'application/json';
  const content = r.response?.schema
    ? { [type]: { schema: r.response.schema } }
    : r.response?.type ? { [type]: { schema: { type: 'string' } } } : undefined;
  return { description: r.response?.description ?? 'OK', headers, content };
}

function responsesOf(r: RouteDef): Record<string, unknown> {
  const replayed = r.idempotent ? { 'Idempotent-Replayed': REPLAYED_HEADER } : {};
  const out: Record<string, unknown> = { [String(r.response?.status ?? 200)]: successResponse(r) };
  if (r.idempotent) {
    out['409'] = errorResponse('A conflict: this request refused in the current state (the code says why, e.g. ' +
      'sold_out, invalid_state), or idempotency_in_progress and a concurrent update that could not be retried, ' +
      'both with Retry-After',
      { 'Retry-After': RETRY_AFTER_HEADER, ...replayed });
    out['422'] = errorResponse('idempotency_mismatch: this Idempotency-Key was used with another request', {});
  }
  if (r.rateLimited) out['429'] = errorResponse('rate_limited: too many attempts from this account or address',
    { 'Retry-After': RETRY_AFTER_HEADER });
  out['503'] = errorResponse(
    `Unavailable (${codesOf(503)}): a shard down, this worker overloaded, or a dependency's breaker open`,
    { 'Retry-After': RETRY_AFTER_HEADER },
  );
  out.default = errorResponse('Error', replayed);
  for (const a of r.alsoAnswers ?? []) {
    const prior = out[String(a.status)] as { headers?: Record<string, unknown> } | undefined;
    out[String(a.status)] = { description: a.description,
      headers: { ...prior?.headers, 'X-Request-Id': REQUEST_ID_HEADER },
        content: { 'application/json': { schema: a.schema } } };
  }
  return out;
}

// ---- operations -------------------------------------------------------------------

function openapiPath(p: string): string { return p.replace(/:([a-z_]+)/g, '{$1}'); }

const AUTH_TEXT: Record<RouteDef['auth'], string> = {
  none: 'public', optional: 'public; an admin bearer token sees more', user: 'bearer token',
  admin: 'bearer token of an admin',
};

function parametersOf(r: RouteDef): Record<string, unknown>[] {
  const params = [...r.path.matchAll(/:([a-z_]+)/g)].map((m) =>
    ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const query = Object.entries((r.query?.properties ?? {}) as Record<string,
    unknown>).map(([name, schema]) => ({ name, in: 'query', schema }));
  const declared = (r.headers ?? []).map((h) => DECLARED_HEADERS[h]
    ?? { name: h, in: 'header', required: false, schema: { type: 'string' } });
  return [...params, ...query, ...(r.idempotent ? [IDEMPOTENCY_KEY_PARAM] : []), ...declared, REQUEST_ID_PARAM];
}

function operationOf(r: RouteDef): Record<string, unknown> {
  const op: Record<string, unknown> = {
    operationId: r.name, summary: r.summary, parameters: parametersOf(r),
    security: r.auth === 'none' || r.auth === 'optional' ? [] : [{ bearer: [] }],
    'x-auth': AUTH_TEXT[r.auth],
    responses: responsesOf(r),
  };
  if (r.description) op.description = r.description;
  if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: r.body } } };
  return op;
}

/** Path items documented beside the route table (the WebSocket stream is mounted on its own). */
export type PathItems = Record<string, Record<string, Record<string, unknown>>>;

export function buildOpenApi(routes: RouteDef[], extra: PathItems = {}): Record<string, unknown> {
  const paths: PathItems = {};
  for (const r of routes) {
    const item = (paths[openapiPath(r.path)] ??= {});
    item[r.method === 'del' ? 'delete' : r.method] = operationOf(r);
  }
  for (const [p, item] of Object.entries(extra)) Object.assign((paths[p] ??= {}), item);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Sharded order and payment engine', version: '1',
      description: 'Money is integer cents plus an ISO 4217 currency; times are ISO 8601 in UTC; ids are opaque ' +
        'strings that name their shard. Every answer carries X-Request-Id; ' +
        'errors are {"error":{"type","code","message",...}}.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas: { Error: ERROR } },
    paths,
  };
}

/** An operation documented by hand (not from a RouteDef), with the same headers as the rest. */
export function documentedOperation(op: {
  name: string; summary: string; description: string; auth: RouteDef['auth']; parameters: Record<string, unknown>[];
  responses: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    operationId: op.name, summary: op.summary, description: op.description,
    parameters: [...op.parameters, REQUEST_ID_PARAM], security: [], 'x-auth': AUTH_TEXT[op.auth],
    responses: {
      ...op.responses,
      '503': errorResponse('overloaded: too many stream connections or too much stream work on this worker',
        { 'Retry-After': RETRY_AFTER_HEADER }),
      default: errorResponse('Error', {}),
    },
  };
}

