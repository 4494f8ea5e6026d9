// JSON Schemas of the contract, compiled once at start. The same objects feed
// request validation and GET /openapi.json, so the two cannot drift.
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { EngineError } from '../errors.js';

const Ajv = AjvModule as unknown as typeof AjvModule.default;
const bodies = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const queries = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true, coerceTypes: true,
  useDefaults: true });

export type Schema = Record<string, unknown>;

export const S = {
  id: { type: 'string', minLength: 1, maxLength: 64 },
  email: { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$' },
  password: { type: 'string', minLength: 8, maxLength: 200 },
  name: { type: 'string', minLength: 1, maxLength: 200 },
  text: { type: 'string', maxLength: 5000 },
  cents: { type: 'integer', minimum: 0, maximum: 100_000_000_000 },
  // A price is at least one cent: a gateway takes no payment of 0, so a free item
  // could be held but never paid.
  price: { type: 'integer', minimum: 1, maximum: 100_000_000_000 },
  currency: { type: 'string', pattern: '^[A-Z]{3}$' },
  categoryId: { type: ['string', 'integer'], pattern: '^[1-9][0-9]{0,14}$', minimum: 1, maximum: 999_999_999_999_999 },
  stock: { type: 'integer', minimum: 0, maximum: 100_000_000 },
  fulfillment: { type: 'string', enum: ['instant', 'shipment', 'provider'] },
  limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
  cursor: { type: 'string', maxLength: 200 },
} as const;

export function object(properties: Record<string, unknown>, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}

export const listOf = (item: Schema): Schema => object({ data: { type: 'array', items: item },
  next_cursor: { type: ['string', 'null'] } }, ['data', 'next_cursor']);

export type Validator = (value: unknown) => void;

function fieldOf(e: ErrorObject): string {
  const base = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const extra = (e.params as { additionalProperty?: string; missingProperty?: string });
  const leaf = extra.additionalProperty ?? extra.missingProperty;
  return leaf ? (base ? `${base}.${leaf}` : leaf) : base || '(body)';
}

function toError(e: ErrorObject): EngineError {
  const field = fieldOf(e);
  if (e.keyword === 'additionalProperties') return new EngineError('unknown_field', `Unknown field '${field}'`,
    { details: { field } });
  if (e.keyword === 'required') return new EngineError('validation_failed', `Field '${field}' is required`,
    { details: { field } });
  return new EngineError('validation_failed', `Field '${field}' ${e.message ?? 'is invalid'}`, { details: { field } });
}

function wrap(fn: ValidateFunction): Validator {
  return (value) => {
    if (!fn(value)) throw toError(fn.errors![0]!);
  };
}

export function compileBody(schema: Schema): Validator { return wrap(bodies.compile(schema)); }
export function compileQuery(schema: Schema): Validator { return wrap(queries.compile(schema)); }
