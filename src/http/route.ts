// The one path every request takes: copy what uWS gives before the first await,
// register onAborted, take an admission slot, read a bounded body, validate,
// authenticate, run the handler, map any error, and write the answer corked. Routes
// only declare what they need. The slot comes back on every path: an answer, an error,
// a client that hangs up mid-body, a body that never finishes.
import type { Principal } from '../accounts/principal.js';
import { EngineError, invariant } from '../errors.js';
import type { Lane } from '../shard/shards.js';
import { log } from '../log.js';
import type { Admission } from './admission.js';
import { fingerprint, type IdempotencyKeys } from './idempotency.js';
import { admissionShed, idempotencyReplays, observeRequest, zeroRequests } from '../metrics/index.js';
import { errorReply, type Replies, type Reply } from './reply.js';
import { compileBody, compileQuery, type Schema } from './schemas.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';

export type Method = 'get' | 'post' | 'patch' | 'put' | 'del';
export type AuthMode = 'none' | 'optional' | 'user' | 'admin';

export interface Ctx<B = Record<string, unknown>, Q = Record<string, unknown>> {
  requestId: string;
  params: Record<string, string>;
  query: Q;
  body: B;
  principal: Principal | null;
  token: string | null;
  idempotencyKey: string | null;
  ip: string;
  rawBody: Buffer;
  headers: Record<string, string>;
}

export interface RouteDef<B = any, Q = any> {
  method: Method;
  path: string;
  name: string;
  summary: string;
  auth: AuthMode;
  body?: Schema;
  /** Raw bodies are handed over unparsed (webhooks sign the exact bytes). */
  rawBody?: boolean;
  query?: Schema;
  /** The success answer; `type` when the body is not JSON (text/plain, text/html). */
  response?: { status: number; schema?: Schema; type?: string; description?: string };
  /** Extra request headers the handler reads, lower-case. */
  headers?: string[];
  /** Longer text for /openapi.json and /docs, where the summary is not enough. */
  description?: string;
  /**
   * Takes an Idempotency-Key: the handler runs through the idempotency middleware
   * (idempotency.ts), which stores its first answer and replays it; published with its
   * headers, replays counted in bf_idempotency_replays_total. Needs an authenticated caller.
   */
  idempotent?: boolean;
  /**
   * For these requests the handler keeps the Idempotency-Key itself (and marks a replay); the
   * middleware stands aside.
   */
  ownsKey?: (ctx: Ctx<B, Q>) => boolean;
  /** May answer 429 rate_limited with Retry-After (login and registration limits). */
  rateLimited?: boolean;
  /** Other answers of the route's own (not the error shape), published as they are. */
  alsoAnswers?: { status: number; description: string; schema: Schema }[];
  handler: (ctx: Ctx<B, Q>) => Promise<Reply>;
  /** Whose connections it draws on (src/shard/pools.ts); by default GETs read, the rest write. */
  lane?: Lane;
}

export function laneOf(def: Pick<RouteDef, 'method' | 'lane'>): Lane {
  return def.lane ?? (def.method === 'get' ? 'read' : 'write');
}

export interface HttpEnv {
  bodyLimitBytes: number;
  /** From the request's headers to its body's last byte, however the bytes trickle in. */
  bodyTimeoutMs: number;
  /** The worker's slots (MAX_INFLIGHT): every request holds one until its answer. */
  admission: Admission;
  logRequests: boolean;
  trustProxy: boolean;
  /** Resolves a bearer token, with the connections of the route's lane. */
  authenticate(token: string, lane: Lane): Promise<Principal | null>;
  /** Request ids, and the answers' writer (closing connections once the worker drains). */
  replies: Replies;
  /** The stored answers of Idempotency-Keys, for routes that declare `idempotent`. */
  idempotency: IdempotencyKeys;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** A client's own request id is kept when it is sane, so its logs and ours line up. */
export function requestIdOf(given: string, replies: Replies): string {
  return REQUEST_ID_RE.test(given) ? given : replies.nextRequestId();
}
const IDEMPOTENCY_RE = /^[\x21-\x7e]{1,128}$/;
const BASE_HEADERS = ['authorization', 'content-type', 'x-request-id', 'idempotency-key', 'x-forwarded-for'];

/** What metrics count a request as when its client hung up before the answer (nginx's 499). */
const CLIENT_CLOSED = 499;

/** A request's abort as the body reader sees it: uWS calls onAborted once, at most. */
interface RequestState { aborted: boolean; onAbort: (() => void) | null }

export function mount(app: TemplatedApp, env: HttpEnv, def: RouteDef): void {
  const validateBody = def.body ? compileBody(def.body) : null;
  const validateQuery = compileQuery(def.query ?? { type: 'object', properties: {}, additionalProperties: false });
  const paramNames = [...def.path.matchAll(/:([a-z_]+)/g)].map((m) => m[1]!);
  const headerNames = [...BASE_HEADERS, ...(def.headers ?? [])];
  invariant(!def.idempotent || def.auth === 'user' || def.auth === 'admin',
    `${def.name}: an Idempotency-Key is kept per caller`);
  zeroRequests(def.name, [def.response?.status ?? 200, 500, 503]);
  if (def.idempotent) idempotencyReplays.inc({ route: def.name }, 0);

  app[def.method](def.path, (res: HttpResponse, req: HttpRequest) => {
    const started = performance.now();
    const headers: Record<string, string> = {};
    for (const h of headerNames) headers[h] = req.getHeader(h);
    const params: Record<string, string> = {};
    paramNames.forEach((n, i) => { params[n] = decodeParam(req.getParameter(i) ?? ''); });
    const rawQuery = req.getQuery() ?? '';
    // uWS trims bytes >= 0x80 and whitespace around a header value: a key sent as "é"
    // reads as "". Sent but empty is refused below, never taken for "no key".
    const keySent = headers['idempotency-key'] !== '' || (def.method !== 'get' && hasHeader(req, 'idempotency-key'));
    const given = headers['x-request-id']!;
    const requestId = requestIdOf(given, env.replies);
    const ip = clientIp(env.trustProxy, headers['x-forwarded-for']!,
      Buffer.from(res.getRemoteAddressAsText()).toString());
    const state: RequestState = { aborted: false, onAbort: null };
    res.onAborted(() => {
      state.aborted = true;
      state.onAbort?.();
    });

    const finish = (reply: Reply) => {
      const ms = performance.now() - started;
      const status = state.aborted ? CLIENT_CLOSED : reply.status;
      if (!state.aborted) env.replies.send(res, requestId, reply);
      observeRequest(def.name, status, ms / 1000);
      if (reply.replayed) idempotencyReplays.inc({ route: def.name });
      if (env.logRequests) log.info('request', { request_id: requestId, route: def.name, status,
        ms: Math.round(ms * 10) / 10 });
    };

    const release = env.admission.request();
    if (!release) {
      admissionShed.inc({ reason: 'http_inflight' });
      finish(errorReply(new EngineError('overloaded', undefined, { retryAfterS: 1 }), requestId));
      return;
    }
    const needsBody = def.method === 'post' || def.method === 'patch' || def.method === 'put';
    // A handler that already runs is not cut short by an abort: it finishes (its own
    // timeouts bound it) and only then gives the slot back, so hanging up cannot be
    // used to start more work than MAX_INFLIGHT.
    readBody(res, needsBody, env, state)
      .then((raw) => run(def, env, { headers, params, rawQuery, requestId, ip, raw, keySent }, validateBody,
        validateQuery))
      .catch((err: unknown) => errorReply(err, requestId))
      .then(finish)
      .finally(release);
  });
}

/**
 * Behind one trusted load balancer the client is the hop it appended: the last one.
 * Earlier hops come from the client and can be forged.
 */
function clientIp(trustProxy: boolean, forwarded: string, socket: string): string {
  if (!trustProxy || !forwarded) return socket;
  return forwarded.split(',').pop()!.trim().slice(0, 64) || socket;
}

/**
 * A path segment with broken percent-encoding (`%ZZ`, a cut UTF-8 sequence) must not
 * throw inside the uWS callback: that kills the worker. Kept raw, it matches no id
 * pattern and the route answers 404 like any other unknown id.
 */
function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

interface Incoming {
  headers: Record<string, string>; params: Record<string,
    string>; rawQuery: string; requestId: string; ip: string; raw: Buffer;
  keySent: boolean;
}

function hasHeader(req: HttpRequest, name: string): boolean {
  let found = false;
  req.forEach((k) => { if (k === name) found = true; });
  return found;
}

async function run(def: RouteDef, env: HttpEnv, inc: Incoming, validateBody: ((v: unknown) => void) | null,
  validateQuery: (v: unknown) => void): Promise<Reply> {
  const query = Object.fromEntries(new URLSearchParams(inc.rawQuery));
  validateQuery(query);
  assertStorable(query, '');
  assertStorable(inc.params, '');
  const body = def.rawBody ? {} : parseBody(inc, validateBody);
  const token = bearer(inc.headers.authorization!);
  const principal = await resolvePrincipal(def.auth, env, token, laneOf(def));
  const key = inc.headers['idempotency-key']!;
  if (inc.keySent && !IDEMPOTENCY_RE.test(key)) throw new EngineError('validation_failed',
    'Idempotency-Key must be 1..128 printable ASCII characters', { details: { field: 'Idempotency-Key' } });
  const ctx: Ctx = {
    requestId: inc.requestId, params: inc.params, query, body, principal, token, idempotencyKey: key || null,
    ip: inc.ip, rawBody: inc.raw, headers: inc.headers,
  };
  if (!def.idempotent || !ctx.idempotencyKey || def.ownsKey?.(ctx)) return def.handler(ctx);
  const fp = fingerprint(def.name, ctx.params, ctx.body);
  return env.idempotency.run(laneOf(def), principal!, ctx.idempotencyKey, def.name, fp, () => def.handler(ctx));
}

function parseBody(inc: Incoming, validate: ((v: unknown) => void) | null): Record<string, unknown> {
  if (!validate) return {};
  let body: unknown = {};
  if (inc.raw.length > 0) {
    if (!/^application\/json\b/i.test(inc.headers['content-type']!)) throw new EngineError('unsupported_media_type');
    try {
      body = JSON.parse(UTF8.decode(inc.raw));
    } catch {
      throw new EngineError('invalid_json');
    }
  }
  validate(body);
  assertStorable(body, '');
  return body as Record<string, unknown>;
}

// JSON is UTF-8 (RFC 8259): bytes that are not are refused, never silently replaced.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// Text Postgres cannot store (NUL) or that is not Unicode (a lone surrogate from a
// `\ud800` escape) is refused here with a 400, instead of a 500 from the database or
// a U+FFFD stored in its place.
const UNSTORABLE_RE = /[\0\p{Cs}]/u;

/** Walks a parsed value (iteratively: bodies may nest deeply within the size limit). */
function assertStorable(value: unknown, root: string): void {
  const stack: [unknown, string][] = [[value, root]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      if (UNSTORABLE_RE.test(v)) {
        const field = path || '(body)';
        throw new EngineError('validation_failed', `Field '${field}' must be Unicode text without NUL characters`,
          { details: { field } });
      }
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        const at = path ? `${path}.${k}` : k;
        if (UNSTORABLE_RE.test(k)) throw new EngineError('validation_failed',
          'Field names must be Unicode text without NUL characters', { details: { field: at } });
        stack.push([x, at]);
      }
    }
  }
}

function bearer(header: string): string | null {
  const m = /^Bearer ([\x21-\x7e]{1,200})$/.exec(header);
  return m ? m[1]! : null;
}

async function resolvePrincipal(mode: AuthMode, env: HttpEnv, token: string | null, lane: Lane): Promise<Principal
  | null> {
  if (mode === 'none') return null;
  const principal = token ? await env.authenticate(token, lane) : null;
  if (mode === 'optional') return principal;
  if (!principal) throw new EngineError('unauthenticated');
  if (mode === 'admin' && principal.role !== 'admin') throw new EngineError('forbidden', 'Admin only');
  return principal;
}

/**
 * Collects the body up to the size limit and the deadline. Whatever ends it first
 * settles the promise (the last byte, the limit: 413, the deadline: 408, the client
 * hanging up), so the request's slot always comes back and no buffer outlives it.
 * uWS closes such a connection on its own timer too (after 10-14 s, with no answer);
 * the deadline is ours so that the bound is stated, configurable and answered (408).
 */
function readBody(res: HttpResponse, wanted: boolean, env: HttpEnv, state: RequestState): Promise<Buffer> {
  if (!wanted) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const settle = (outcome: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      state.onAbort = null;
      chunks = [];
      outcome();
    };
    const timer = setTimeout(() => {
      settle(() => reject(new EngineError('request_timeout', `Body not received within ${env.bodyTimeoutMs} ms`)));
    }, env.bodyTimeoutMs);
    state.onAbort = () => settle(() => reject(new EngineError('client_closed')));
    res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > env.bodyLimitBytes) {
        settle(() => reject(new EngineError('body_too_large', `Body exceeds ${env.bodyLimitBytes} bytes`)));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      const body = Buffer.concat(chunks);
      settle(() => resolve(body));
    });
  });
}
