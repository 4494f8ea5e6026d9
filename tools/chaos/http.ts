// The chaos runner's HTTP client: keep-alive sockets, a hard timeout on every call,
// and a result for every outcome (a dropped connection is status 0, never a throw),
// so a scenario can count what its clients saw while the engine is being hurt.
import http from 'node:http';

export interface CallResult<T = any> {
  /** HTTP status; 0 when no answer came (reset, refused, timeout). */
  status: number;
  body: T;
  headers: http.IncomingHttpHeaders;
  ms: number;
  /** Why no answer came (ECONNRESET, ECONNREFUSED, timeout). */
  error?: string;
}

export interface CallOpts { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string>; timeoutMs?: number }

/** Bodies kept from an answer; larger ones are cut (a scenario only reads small JSON). */
const BODY_MAX_BYTES = 1_048_576;

export class Client {
  private readonly agent: http.Agent;
  private readonly url: URL;

  constructor(base: string, maxSockets = 256, private readonly defaultTimeoutMs = 10_000) {
    this.url = new URL(base);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: 30_000 });
  }

  get base(): string { return this.url.origin; }

  call<T = any>(method: string, path: string, opts: CallOpts = {}): Promise<CallResult<T>> {
    const started = performance.now();
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let payload: string | undefined = opts.raw;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: Omit<CallResult<T>, 'ms'>) => {
        if (settled) return;
        settled = true;
        resolve({ ...r, ms: performance.now() - started });
      };
      const req = http.request({
        host: this.url.hostname, port: this.url.port, method, path, headers, agent: this.agent,
      }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => { size += c.length; if (size <= BODY_MAX_BYTES) chunks.push(c); });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
          done({ status: res.statusCode ?? 0, body: body as T, headers: res.headers });
        });
        res.on('error', (err) => done({ status: 0, body: null as T, headers: {}, error: code(err) }));
      });
      req.setTimeout(opts.timeoutMs ?? this.defaultTimeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (err) => done({ status: 0, body: null as T, headers: {}, error: code(err) }));
      req.end(payload);
    });
  }

  close(): void { this.agent.destroy(); }
}

function code(err: unknown): string {
  return (err as { code?: string }).code ?? (err instanceof Error ? err.message : String(err));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
