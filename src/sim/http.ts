// Small HTTP helpers shared by the gateway and provider simulators.
// The simulators stand in for third parties, so they deliberately share
// nothing with the engine (no imports from src/ outside src/sim/).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Bodies larger than this are refused: a simulator never needs more. */
const MAX_BODY_BYTES = 1024 * 1024;

/** A client error carried up to the router, answered as {"error":{...}}. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export type Json = Record<string, unknown>;

/** Reads the raw body (bounded) so handlers can parse it as JSON or ignore it. */
export function readRawBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'body_too_large', `body exceeds ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Reads a JSON object body. An empty body counts as {} so endpoints without
 * required fields (release, refund) accept a bare POST.
 */
export async function readJsonObject(req: IncomingMessage): Promise<Json> {
  const raw = await readRawBody(req);
  if (raw.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'invalid_json', 'body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new HttpError(400, 'invalid_request', 'body must be a JSON object');
  }
  return parsed as Json;
}

/** Rejects fields the endpoint does not know: catches client typos early. */
export function rejectUnknownFields(body: Json, allowed: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new HttpError(400, 'invalid_request', `unknown field(s): ${unknown.join(', ')}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: { code: err.code, message: err.message, ...err.extra } });
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html),
  });
  res.end(html);
}

export function redirect(res: ServerResponse, location: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(303, { Location: location, 'Content-Length': 0 });
  res.end();
}

/** Bearer check; the comparison length leak is irrelevant for a local simulator. */
export function requireBearer(req: IncomingMessage, key: string): void {
  const header = req.headers.authorization ?? '';
  if (header !== `Bearer ${key}`) {
    throw new HttpError(401, 'unauthorized', 'missing or invalid API key');
  }
}

/** Unref'd so a pending delay (latency, held request) never keeps a closed simulator alive. */
export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms).unref()) : Promise.resolve();
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A route: method, path pattern with named groups, and its handler. */
export interface Route<C> {
  method: string;
  pattern: RegExp;
  handle: (ctx: C, params: Record<string, string>) => Promise<void> | void;
}

/** Finds the route for a request; distinguishes 404 from 405 for clearer errors. */
export function matchRoute<C>(
  routes: readonly Route<C>[],
  method: string,
  path: string,
): { route: Route<C>; params: Record<string, string> } {
  let pathMatched = false;
  for (const route of routes) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (route.method === method) {
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.groups ?? {})) params[k] = decodeURIComponent(v);
      return { route, params };
    }
  }
  if (pathMatched) throw new HttpError(405, 'method_not_allowed', `${method} not allowed on ${path}`);
  throw new HttpError(404, 'not_found', `no route for ${method} ${path}`);
}

/** Answers any thrown error without leaking a stack trace to the client. */
export function answerFailure(res: ServerResponse, err: unknown, log: Logger): void {
  if (err instanceof HttpError) {
    sendError(res, err);
    return;
  }
  log('error', 'internal_error', { error: err instanceof Error ? err.message : String(err) });
  sendError(res, new HttpError(500, 'internal', 'internal simulator error'));
}

export type Logger = (level: 'info' | 'warn' | 'error', msg: string, fields?: Json) => void;

/**
 * One JSON line per event on stdout. `quiet` silences info lines (the
 * "listening" line is always printed because spawners wait for it).
 */
export function makeLogger(component: string, quiet: boolean): Logger {
  return (level, msg, fields = {}) => {
    if (quiet && level === 'info' && msg !== 'listening') return;
    const line = JSON.stringify({ t: new Date().toISOString(), level, msg, sim: component, ...fields });
    process.stdout.write(line + '\n');
  };
}

/** True when this module is the process entry point (`node dist/.../x.js`). */
export function isMain(metaUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return metaUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return metaUrl === pathToFileURL(entry).href;
  }
}

/** Stops the process cleanly on SIGINT/SIGTERM so spawners can kill it. */
export function closeOnSignals(close: () => Promise<void>): void {
  const stop = (): void => {
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

export interface Served { server: Server; port: number; url: string; close(): Promise<void> }

/** Listens and dispatches every request to its route; any thrown error becomes a JSON answer. */
export async function serve<C>(
  routes: readonly Route<C>[], ctxOf: (req: IncomingMessage, res: ServerResponse, url: URL) => C,
  at: { port: number; host: string }, log: Logger,
): Promise<Served> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://sim');
    Promise.resolve()
      .then(() => {
        const { route, params } = matchRoute(routes, req.method ?? 'GET', url.pathname);
        return route.handle(ctxOf(req, res, url), params);
      })
      .catch((err: unknown) => answerFailure(res, err, log));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const close = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return { server, port, url: `http://${at.host}:${port}`, close };
}

/** Runs a simulator when its file is the process entry, until SIGINT/SIGTERM. */
export function runAsMain(metaUrl: string, name: string, start: () => Promise<{ close(): Promise<void> }>): void {
  if (!isMain(metaUrl)) return;
  start().then(
    (sim) => closeOnSignals(sim.close),
    (err: Error) => {
      process.stderr.write(`${name} simulator failed to start: ${err.message}\n`);
      process.exit(1);
    },
  );
}
