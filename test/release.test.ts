// The release runs outside the checkout. `npm run release` is built into a temporary
// directory; it holds no sources, tests or dev dependencies; the engine and the
// simulators started from it, with an environment that names nothing of the checkout,
// migrate fresh databases from its sql/, serve a customer from login to a paid order,
// and serve the dashboard; its operator tools run from it; and a copy missing a file
// the engine reads at start is refused (exit 78) instead of crash-looping.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { buildDashboard } from '../src/http/dashboard/page.js';
import { ROOT } from '../src/paths.js';
import { ENTRIES, MANIFEST } from '../tools/build/release.js';
import { TOOLS_DIST_DIR } from '../tools/lib/paths.js';
import { spawnSim, type SpawnedSim } from '../tools/lib/spawn.js';
import { waitForUrl } from '../tools/lib/wait.js';
import { admin, api, customer, item, order, useWorld } from './helpers/api.js';
import { isolatedShards, SMALL_POOLS, startCluster, stop, type Install, type Spawned } from './helpers/engine.js';
import { ledgerBalanced, pay, statusBecomes } from './helpers/storefront.js';
import { OWN_PORTS } from './setup/env.js';

const EX_CONFIG = 78;
const PORT = OWN_PORTS.releaseEngine;
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const base = `${pkg.name}-${pkg.version}`;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bf-release-'));
const dir = path.join(tmp, base);
const tarball = path.join(tmp, `${base}.tgz`);
// Only what a server has: no NODE_OPTIONS (tap's loader lives in the checkout), no
// NODE_PATH, no npm variables pointing at the checkout.
const install: Install = { dir, env: { PATH: process.env.PATH } };

const running: { engine?: Spawned; sims: SpawnedSim[]; build?: ReturnType<typeof spawn> } = { sims: [] };
t.teardown(async () => {
  if (running.build?.exitCode === null) process.kill(-running.build.pid!, 'SIGKILL');
  if (running.engine) await stop(running.engine);
  await Promise.all(running.sims.map((s) => s.stop()));
  rmSync(tmp, { recursive: true, force: true });
});

/**
 * The release tool as `npm run release` runs it after its build. Not through npm: that
 * would rebuild dist/ under the other test files running from it.
 */
async function release(): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [path.join(TOOLS_DIST_DIR, 'build', 'release.js'), '--out', dir], {
    cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.build = child;
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, out };
}

/** Files and symlinks under a directory, relative to it. */
function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

function runTool(file: string, args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [path.join(dir, 'dist', 'tools', 'ops', file), ...args], { cwd: dir, env, encoding: 'utf8' });
}

// Every await before the first subtest: tap ends a file whose queue ran empty meanwhile.
const built = await release();
// Fresh databases: the engine migrates them at start from the release's sql/.
const shards = built.code === 0 ? await isolatedShards(`engine_release_${PORT}`) : '';

t.test('npm run release: a self-contained directory and a tarball beside it', async (t) => {
  t.equal(built.code, 0, `the release tool exits 0${built.code === 0 ? '' : `\n${built.out}`}`);
  if (built.code !== 0) return;
  for (const line of built.out.split('\n').filter((l) => /^release: \d\./.test(l))) t.comment(line);
  t.same(readdirSync(dir).sort(), ['deploy', 'dist', 'node_modules', 'package-lock.json', 'package.json', MANIFEST, 'sql'].sort(),
    'package.json, the lock, dist/, sql/, deploy/, node_modules and the manifest; no src/, test/, bench/');
  t.same(readdirSync(path.join(dir, 'dist')).sort(), ['src', 'tools'], 'dist/ holds no bench/');
  for (const e of ENTRIES) t.ok(existsSync(path.join(dir, 'dist', e)), `dist/${e}`);
  for (const f of ['dashboard.html', 'dashboard.css', 'dashboard.js']) t.ok(existsSync(path.join(dir, 'dist', 'src', 'http', 'dashboard', f)), `the dashboard's ${f}`);
  t.same(readdirSync(path.join(dir, 'dist', 'tools')).sort(), ['lib', 'ops'], 'of tools/, the operator\'s tools and what they import');
  t.same(readdirSync(path.join(dir, 'dist', 'tools', 'lib')).filter((f) => f.endsWith('.js')).sort(), ['args.js', 'ids.js', 'invariants.js'],
    'of tools/lib/, the argument parser and the invariant checker restore-check runs (with the id codec it reads)');
  for (const gone of ['tools/dev', 'tools/chaos', 'tools/build', 'tools/fleet-probe', 'tools/lib/spawn.js', 'tools/lib/http.js']) {
    t.notOk(existsSync(path.join(dir, 'dist', gone)), `no dist/${gone} (dev and test tooling)`);
  }
  t.same(readdirSync(path.join(dir, 'sql')), readdirSync(path.join(ROOT, 'sql')), 'every migration');
  t.ok(existsSync(path.join(dir, 'deploy', '6-node', 'systemd', 'bf-engine.service')), 'the deploy files');
  for (const proof of ['deploy-local.sh', 'lib', path.join('ha', 'ha-probe.mjs')]) {
    t.notOk(existsSync(path.join(dir, 'deploy', '6-node', proof)), `but not the local proof's ${proof}, which needs a checkout`);
  }
  t.same(filesUnder(path.join(dir, 'dist')).filter((f) => f.endsWith('.ts')), [], 'no TypeScript');

  const shipped = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  t.same(shipped.dependencies, pkg.dependencies, 'the same dependencies');
  t.same(shipped.allowScripts, pkg.allowScripts, 'and the same install-script approvals');
  t.equal(shipped.scripts.start, 'node dist/src/cluster.js', 'npm start there starts the engine, without building');

  for (const d of Object.keys(pkg.devDependencies)) t.notOk(existsSync(path.join(dir, 'node_modules', d)), `no dev dependency ${d}`);
  // npm's record of what it installed: a dev package anywhere in the tree is marked dev.
  const installed = JSON.parse(readFileSync(path.join(dir, 'node_modules', '.package-lock.json'), 'utf8')).packages as Record<string, { dev?: boolean }>;
  t.same(Object.entries(installed).filter(([, p]) => p.dev).map(([k]) => k), [], 'no dev package, direct or transitive');
  for (const d of Object.keys(pkg.dependencies)) t.ok(existsSync(path.join(dir, 'node_modules', d, 'package.json')), `dependency ${d} installed`);

  t.ok(existsSync(tarball), `${base}.tgz beside the directory`);
  const listed = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  t.equal(listed.status, 0, 'the tarball reads');
  const entries = listed.stdout.split('\n').filter(Boolean);
  t.same(entries.filter((e) => e !== `${base}/` && !e.startsWith(`${base}/`)), [], `one top directory, ${base}/`);
  const inTar = entries.filter((e) => !e.endsWith('/')).map((e) => e.slice(base.length + 1)).sort();
  t.same(inTar, filesUnder(dir), 'holding exactly the directory');
});

if (built.code === 0) {
  t.test('from the release: engine and simulators serve login, an order paid by card, the dashboard', async (t) => {
    const gateway = await spawnSim('gateway', { GATEWAY_PORT: String(OWN_PORTS.releaseGateway) }, 10_000, install);
    running.sims.push(gateway);
    const provider = await spawnSim('provider', { PROVIDER_PORT: String(OWN_PORTS.releaseProvider) }, 10_000, install);
    running.sims.push(provider);
    t.ok(gateway.proc.spawnargs[1]!.startsWith(dir + path.sep), `the gateway simulator runs ${path.relative(tmp, gateway.proc.spawnargs[1]!)}`);
    running.engine = startCluster(PORT, {
      PG_SHARDS: shards, WORKERS: '1', GATEWAY_URL: gateway.url, PROVIDER_URL: provider.url, NOTIFY_FILE: path.join(tmp, 'notices.jsonl'),
    }, SMALL_POOLS, install);
    const engine = running.engine;
    // Ready, or the reason it exited (a refused start need not wait out the timeout).
    await Promise.race([
      waitForUrl(`${engine.url}/readyz`, 60_000),
      engine.exited.then((e) => { throw new Error(`the engine exited (code ${e.code})`); }),
    ]).catch((err: Error) => { throw new Error(`${err.message}\n${engine.out()}`); });
    useWorld({ engine: engine.url, gateway: gateway.url, provider: provider.url, shards });

    t.equal((await api('GET', '/healthz')).status, 200, '/healthz');
    const ready = await api('GET', '/readyz');
    t.equal(ready.status, 200, '/readyz');
    t.equal(ready.body.status, 'ok');

    const adminToken = await admin();
    t.match(adminToken, /^s\d\./, 'the admin logs in');
    const it = await item({ stock: 5, price_cents: 1250 });
    const c = await customer();
    t.ok(c.token, 'a customer registers and logs in');
    const placed = await order(c.token, [{ item_id: it.id, quantity: 2 }]);
    t.equal(placed.status, 201, 'the order is placed');
    const o = placed.body.orders[0];
    const p = await pay(c.token, o.id, 'card');
    t.match(p, { status: 'pending', method: 'card', amount_cents: 2500, redirect_url: /\/checkout\/gws_/ });
    t.match(await fetch(p.redirect_url).then((r) => r.text()), />\s*Pay\s*</, 'the gateway\'s checkout page');
    await fetch(`${gateway.url}/checkout/${p.gateway_session_id}/pay`, { method: 'POST', redirect: 'manual' });
    const done = await statusBecomes(c.token, o.id, 'completed');
    t.ok(done, 'the webhook reached the engine: the order is paid and completed');
    t.match(done?.payments, [{ id: p.id, status: 'succeeded', escrow: 'released' }]);
    await ledgerBalanced(t);

    const page = await fetch(`${engine.url}/dashboard`);
    t.equal(page.status, 200, '/dashboard');
    const expected = buildDashboard(); // the checkout's page, from src/
    t.equal(await page.text(), expected.html, 'the same page as the checkout builds, CSS and script inlined');
    t.equal(page.headers.get('content-security-policy'), expected.csp, 'with the same hashes in its CSP');
  });

  t.test('the operator\'s tools run from the release', async (t) => {
    const check = runTool('migrate-cli.js', ['--check'], { ...install.env, PG_SHARDS: shards });
    t.equal(check.status, 0, `migrate-cli --check: every shard up to date\n${check.stdout}${check.stderr}`);
    t.match(check.stdout, /migrate: \d+ migrations in sql /, 'read from the release\'s sql/');
    const deploy = runTool('deploy-check.js', [], install.env);
    t.equal(deploy.status, 0, `deploy-check on the shipped topology\n${deploy.stdout}${deploy.stderr}`);
    t.match(deploy.stdout, /^deploy:check deploy\/6-node\/topology\.json$/m);
    const restore = runTool('restore-check.js', ['--help'], install.env);
    t.equal(restore.status, 0, `restore-check loads (the restore drill's judge)\n${restore.stdout}${restore.stderr}`);
    t.match(restore.stdout, /^usage: restore-check --restored URL --live URL --target TIME/m);
  });

  t.test('a copy missing a file the engine reads at start is refused, not respawned forever', async (t) => {
    if (running.engine) await stop(running.engine);
    const css = path.join(dir, 'dist', 'src', 'http', 'dashboard', 'dashboard.css');
    renameSync(css, `${css}.away`);
    const s = startCluster(PORT, { PG_SHARDS: 'postgres://127.0.0.1:1/none', WORKERS: '1' }, SMALL_POOLS, install);
    running.engine = s;
    let stderr = '';
    s.child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => s.child.kill('SIGKILL'), 30_000); // a hang is a failure, not a wait
    const { code } = await s.exited;
    clearTimeout(timer);
    renameSync(`${css}.away`, css);
    t.equal(code, EX_CONFIG, 'exit 78: systemd does not retry it');
    t.match(stderr, /incomplete installation: .*dashboard\.css/, 'naming the missing file');
  });
}
