// The one place that loads uWebSockets.js, and the one every other file takes its
// values and types from.
//
// Two builds are installed (package.json): `uws-upstream`, uWS v20.57.0 with binaries
// for Node 20/22/24/25 whose Linux builds need glibc 2.38+, and `uws-fork`, v20.30.0
// for Node 16/18/20 on an older glibc. The first that loads as a native binding
// serves. The fork meets a Node it has no binary for with a pure-JS server on `ws`
// and only a console warning: the engine never serves on that (its bounds and
// figures are the native server's). With no native build it refuses to start, names
// the runtime, what each build said and what to install, and exits EX_UNAVAILABLE.
//
// Types come from the upstream definitions; `tsconfig.uws-fork.json` (run by
// `npm run build`) compiles the same code against the fork's, so drift between the
// two is a build error.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Definitions from 'uws-upstream';
import type { WebSocketBehavior } from 'uws-upstream';

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocket,
  WebSocketBehavior } from 'uws-upstream';
export type Uws = typeof Definitions;

/** A start no native uWS build allows: EX_UNAVAILABLE (sysexits.h). Restarting cannot fix it. */
export const UWS_UNAVAILABLE_EXIT = 69;

/** The runtimes this engine is built and tested for, as an operator reads them. */
export const SUPPORTED_RUNTIMES = [
  'Node 24 LTS on a glibc 2.38+ host (Debian 13, Ubuntu 24.04): loads uws-upstream (production)',
  'Node 20 on Debian 12 (glibc 2.36): loads uws-fork (the development machine, until its image moves on)',
];

/** In the order they are tried: the current build first, the fork for older hosts. */
const CANDIDATES = [
  { name: 'uws-upstream', serves: 'Node 20/22/24/25 on glibc 2.38+' },
  { name: 'uws-fork', serves: 'Node 16/18/20' },
] as const;

export interface Runtime { node: string; abi: string; platform: string; glibc: string | null }
export interface UwsBuild { package: string; version: string; native: true }
export interface Attempt { package: string; version: string; serves: string; said: string }

export class UwsUnavailable extends Error {
  constructor(readonly runtime: Runtime, readonly attempts: Attempt[]) {
    super(describe(runtime, attempts));
    this.name = 'UwsUnavailable';
  }
}

const require = createRequire(import.meta.url);
// A native module loads once per process: the build that loaded is the process's own.
let loaded: { uws: Uws; build: UwsBuild } | null = null;

let described: Runtime | null = null;

/** This process's Node and C library, as the refusal and the readiness details name them. */
export function runtime(): Runtime {
  if (described) return described;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  described = {
    node: process.version,
    abi: process.versions.modules,
    platform: `${process.platform} ${process.arch}`,
    glibc: report?.header?.glibcVersionRuntime ?? null,
  };
  return described;
}

/** The native uWS of this process (loaded once); throws UwsUnavailable when there is none. */
export function loadUws(): { uws: Uws; build: UwsBuild } {
  if (loaded) return loaded;
  const attempts: Attempt[] = [];
  for (const c of CANDIDATES) {
    const version = versionOf(c.name);
    const { uws, said } = attempt(c.name);
    if (uws) {
      loaded = { uws, build: { package: c.name, version, native: true } };
      return loaded;
    }
    attempts.push({ package: c.name, version, serves: c.serves, said });
  }
  throw new UwsUnavailable(runtime(), attempts);
}

export function uws(): Uws { return loadUws().uws; }

/**
 * `closeOnBackpressureLimit` on. v20.57's definitions type it boolean, v20.30's a
 * number; both bindings coerce (`true` and `1` each close a socket past its
 * maxBackpressure on either build), so this one value is typed for whichever
 * definitions compile the code.
 */
export const CLOSE_ON_BACKPRESSURE_LIMIT =
  true as unknown as NonNullable<WebSocketBehavior<unknown>['closeOnBackpressureLimit']>;

function attempt(name: string): { uws: Uws | null; said: string } {
  const said: string[] = [];
  const { warn, log } = console;
  // The fork says why it fell back only on the console and goes on: its words are
  // kept for the refusal instead of a "performance may be degraded" line.
  console.warn = console.log = (...args: unknown[]) => { said.push(args.map(String).join(' ')); };
  try {
    const mod: unknown = require(name);
    if (isNativeBinding(mod)) return { uws: mod as Uws, said: '' };
    return { uws: null,
      said: `a JavaScript fallback, not a native binding${said.length ? `: ${oneLine(said.join(' '))}` : ''}` };
  } catch (err) {
    return { uws: null, said: oneLine(err instanceof Error ? err.message : String(err)) };
  } finally {
    console.warn = warn;
    console.log = log;
  }
}

/**
 * Both packages hand out, when they work, the very object a `.node` file exported
 * (process.dlopen); the fork's fallback is a JavaScript module (its dist/index.js).
 * Node keeps every loaded addon in the module cache under its .node file name.
 */
function isNativeBinding(mod: unknown): boolean {
  if (typeof mod !== 'object' || mod === null) return false;
  return Object.values(require.cache).some((m) => m?.filename.endsWith('.node') && m.exports === mod);
}

/** The installed version, read from the package's own package.json (upstream does not export it). */
function versionOf(name: string): string {
  try {
    let dir = path.dirname(require.resolve(name));
    while (!existsSync(path.join(dir, 'package.json'))) {
      const up = path.dirname(dir);
      if (up === dir) return 'unknown';
      dir = up;
    }
    return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string }).version
      ?? 'unknown';
  } catch {
    return 'not installed';
  }
}

/** Whitespace collapsed; a require stack (a list of our own files) left out. */
function oneLine(text: string): string {
  return text.replace(/\s*Require stack:[\s\S]*?(?=Falling back|$)/, ' ').replace(/\s+/g, ' ').trim();
}

function describe(rt: Runtime, attempts: Attempt[]): string {
  return [
    `no native uWebSockets.js build loads on Node ${rt.node} (ABI ${rt.abi}, ${rt.platform}, glibc ${rt.glibc
      ?? 'none'}):`,
    ...attempts.map((a) => `  ${a.package} ${a.version} (for ${a.serves}): ${a.said}`),
    'Run one of the supported pairs (the engine never serves on a JavaScript fallback):',
    ...SUPPORTED_RUNTIMES.map((s) => `  ${s}`),
  ].join('\n');
}
