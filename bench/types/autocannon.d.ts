// autocannon 8 ships no typings; this declares the part of its programmatic API the
// harness uses (checked against node_modules/autocannon/lib/{run,httpClient,requestIterator}.js).
declare module 'autocannon' {
  import { EventEmitter } from 'node:events';

  export interface RequestData {
    method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer;
    [key: string]: unknown;
  }
  export type Context = Record<string, unknown>;
  export interface RequestSpec extends RequestData {
    setupRequest?: (req: RequestData, context: Context) => RequestData | null | undefined;
    onResponse?: (status: number, body: string, context: Context, headers: Record<string, string>) => void;
  }
  export interface Options {
    url: string; connections?: number; duration?: number; amount?: number; timeout?: number; pipelining?: number;
    method?: string; headers?: Record<string, string>; body?: string; requests?: RequestSpec[]; title?: string;
    initialContext?: Context; workers?: number; excludeErrorStats?: boolean; skipAggregateResult?: boolean;
    overallRate?: number; connectionRate?: number; bailout?: number;
  }
  export interface Histogram {
    average: number; mean: number; stddev: number; min: number; max: number; total: number;
    p50: number; p90: number; p97_5: number; p99: number; p99_9: number; p2_5: number;
    [key: string]: number;
  }
  export interface Result {
    title?: string; url: string; connections: number; duration: number; start: Date; finish: Date;
    requests: Histogram; latency: Histogram; throughput: Histogram;
    errors: number; timeouts: number; mismatches: number; non2xx: number; resets: number;
    '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number;
    statusCodeStats: Record<string, { count: number }>;
  }
  /** One connection. Its request iterator holds the context that setupRequest/onResponse share. */
  export interface Client extends EventEmitter {
    requestIterator: { context: Context; currentRequest: RequestSpec };
  }
  export interface Instance extends EventEmitter, PromiseLike<Result> {
    stop(): void;
    on(event: 'response', fn: (client: Client, status: number, resBytes: number, responseTimeMs: number) => void): this;
    on(event: 'tick', fn: (t: { counter: number; bytes: number }) => void): this;
    on(event: 'reqError', fn: (err: Error) => void): this;
    on(event: 'done', fn: (r: Result) => void): this;
    on(event: string, fn: (...args: any[]) => void): this;
  }
  function autocannon(opts: Options): Instance;
  export default autocannon;
}
