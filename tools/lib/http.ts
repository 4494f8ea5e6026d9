// The one HTTP client of tools/, bench/ and test/: JSON in and out, a bearer token,
// extra headers, a deadline on every call, keep-alive sockets (bounded per client when
// asked, so a load can be shaped), and an answer for every outcome: a connection refused,
// reset or past its deadline is status 0 with `error` saying which, never a throw, so a
// caller that hurts the engine on purpose counts what it saw. expectStatus turns an
// answer into its body or an HttpError for callers that want one status.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface Answer<T = any> {
  /** HTTP status; 0 when no answer came (refused, reset, deadline). */
  status: number;
  /** Parsed JSON, the text when it is not JSON, null when empty. */
  body: T;
  headers: Headers;
  ms: number;
  /** Why no answer came: ECONNREFUSED, ECONNRESET, timeout. */
  error?: string;
}

export interface CallOpts {
  token?: string | null;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is (with the content-type of `headers`, if any). */
  raw?: string | Buffer;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** A fresh Idempotency-Key (true) or this one. */
  idempotencyKey?: true | string;
  /**
   * Network failures retried (not deadlines): a keep-alive socket the server closed, a
   * worker respawning. A POST retried that way may have been applied already.
   */
  retries?: number;
  /** On a connection of its own, closed after the answer (say, so SO_REUSEPORT picks a worker anew). */
  newConnection?: boolean;
}

export interface ClientOpts { maxSockets?: number; timeoutMs?: number }

/** For setup and checks (not load, not faults): a longer deadline, network failures retried twice. */
export const PATIENT = { timeoutMs: 15_000, retries: 2 } as const satisfies CallOpts;

/** Bodies kept from an answer; larger ones are cut (callers read small JSON). */
const BODY_MAX_BYTES = 4 * 1_048_576;
const DEFAULT_TIMEOUT_MS = 10_000;
/**
 * A kept-alive socket idle this long is closed by us (Node's agent destroys a free socket
 * at its timeout; a busy one only gets an event nobody here listens to). uWS closes an
 * idle connection after 10-12 s: a request sent on such a socket as the server's FIN is
 * on its way meets ECONNRESET, which a load that judges the engine would count against it.
 */
const FREE_SOCKET_IDLE_MS = 5_000;
/** Methods sent without a body when none is given; the others always say their length (0 when empty), never chunked. */
const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

export class HttpClient {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;

  constructor(base: string, opts: ClientOpts = {}) {
    this.url = new URL(base);
    const Agent = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    const maxSockets = opts.maxSockets ?? Infinity;
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: Number.isFinite(maxSockets) ? maxSockets : 256,
      timeout: FREE_SOCKET_IDLE_MS });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get base(): string { return this.url.origin; }

  async call<T = any>(method: string, path: string, opts: CallOpts = {}): Promise<Answer<T>> {
    for (let attempt = 0; ; attempt++) {
      const a = await once<T>(this.url, this.agent, method, path, opts, this.timeoutMs);
      if (a.status !== 0 || a.error === 'timeout' || attempt >= (opts.retries ?? 0)) return a;
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1))); // not wait.ts's sleep: that module imports this one
    }
  }

  close(): void { this.agent.destroy(); }
}

/** One client per origin for calls that do not bring their own (their sockets idle unref'd). */
const shared = new Map<string, HttpClient>();

/** One call to `base` + `path` on the shared keep-alive client of that origin. */
export function request<T = any>(base: string, method: string, path: string, opts: CallOpts = {}): Promise<Answer<T>> {
  const origin = new URL(base).origin;
  let client = shared.get(origin);
  if (!client) shared.set(origin, (client = new HttpClient(origin)));
  const prefix = new URL(base).pathname.replace(/\/$/, '');
  return client.call<T>(method, `${prefix}${path}`, opts);
}

/** Whether anything answers HTTP on this port of this machine (uWS listens with SO_REUSEPORT: a second server there would split the traffic). */
export async function portAnswers(port: number, timeoutMs = 1000): Promise<boolean> {
  return (await request(`http://127.0.0.1:${port}`, 'GET', '/healthz', { timeoutMs })).status !== 0;
}

export class HttpError extends Error {
  constructor(readonly what: string, readonly answer: Answer, expected: number) {
    super(`${what}: expected HTTP ${expected}, got ${answer.status === 0 ? `no answer (${answer.error})` : `${answer.status} ${JSON.stringify(answer.body)?.slice(0, 300)}`}`);
  }
}

/** The body when the answer has this status; an HttpError naming what was asked otherwise. */
export function expectStatus<T = any>(answer: Answer<T>, status: number, what: string): T {
  if (answer.status !== status) throw new HttpError(what, answer, status);
  return answer.body;
}

function once<T>(url: URL, agent: http.Agent, method: string, path: string, opts: CallOpts, defaultTimeoutMs: number): Promise<Answer<T>> {
  const started = performance.now();
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey === true ? randomUUID() : opts.idempotencyKey;
  let payload: string | Buffer | undefined = opts.raw;
  if (opts.newConnection) headers.connection = 'close';
  if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  }
  if (payload !== undefined || !NO_BODY_METHODS.has(method)) headers['content-length'] = String(Buffer.byteLength(payload ?? ''));
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    let req: http.ClientRequest | undefined;
    // The whole call's deadline (not the socket's idle time): a trickling answer ends too.
    const deadline = setTimeout(() => {
      failed(Object.assign(new Error('timeout'), { code: 'timeout' }));
      req?.destroy();
    }, opts.timeoutMs ?? defaultTimeoutMs);
    const done = (a: Omit<Answer<T>, 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve({ ...a, ms: performance.now() - started });
    };
    const failed = (err: unknown) => done({ status: 0, body: null as T, headers: new Headers(), error: errorCode(err) });
    let sent: http.ClientRequest;
    try {
      sent = lib.request({ protocol: url.protocol, host: url.hostname, port: url.port, method, path, headers, agent: opts.newConnection ? false : agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => { size += c.length; if (size <= BODY_MAX_BYTES) chunks.push(c); });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try { body = text ? JSON.parse(text) : null; } catch { /* not JSON: metrics, HTML */ }
          done({ status: res.statusCode ?? 0, body: body as T, headers: toHeaders(res.headers) });
        });
        res.on('error', failed);
        res.on('aborted', () => failed(new Error('aborted')));
      });
    } catch (err) {
      // A header value Node refuses (say, a control character): the request never left.
      failed(err);
      return;
    }
    req = sent;
    sent.on('error', failed);
    sent.end(payload);
  });
}

/** What a server did with an upload that never finished: its status, a close without one, or nothing in time. */
export type UploadOutcome = number | 'closed' | 'none';

/**
 * A request whose body never ends, on a raw socket to 127.0.0.1:`port`: `head` (request
 * line, headers announcing more bytes than follow, part of the body), then silence or one
 * `drip` every `dripMs`, until the server answers, closes, or `waitMs` passes; the socket
 * is closed then. What the admission tests and the chaos runner's aborted uploads send.
 */
export function unfinishedUpload(port: number, head: string, opts: { waitMs: number; dripMs?: number; drip?: string }): Promise<{ outcome: UploadOutcome; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const sock = net.connect(port, '127.0.0.1');
    let drip: NodeJS.Timeout | undefined;
    let settled = false;
    const done = (outcome: UploadOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(drip);
      sock.destroy();
      resolve({ outcome, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done('none'), opts.waitMs);
    sock.on('connect', () => {
      sock.write(head);
      if (opts.dripMs) drip = setInterval(() => sock.write(opts.drip ?? ' '), opts.dripMs);
    });
    sock.on('data', (d) => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'));
      done(m ? Number(m[1]) : 'closed');
    });
    sock.on('error', () => done('closed'));
    sock.on('close', () => done('closed'));
  });
}

/** Node's headers as fetch's Headers (what the suite reads); a value Headers refuses is left out, never a throw. */
function toHeaders(raw: http.IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(raw)) {
    for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) {
      try { h.append(k, one); } catch { /* not a valid header value for fetch */ }
    }
  }
  return h;
}

function errorCode(err: unknown): string {
  return (err as { code?: string }).code ?? (err instanceof Error ? err.message : String(err));
}
