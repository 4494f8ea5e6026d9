// `npm run release [-- --out DIR]`: the directory an app server runs, and a tarball of it.
// After `npm run build` it assembles, in DIR (default release/bf-engine-<version>):
//   package.json (its scripts replaced by ones that work there), package-lock.json,
//   dist/: the modules the entry points below import, nothing else (no bench, dev stack,
//     chaos runner, fleet probe or this tool: of tools/ only ops/ and what it imports),
//     with their source maps and the assets beside them,
//   sql/, deploy/ (without deploy-local.sh, lib/ and ha/ha-probe.mjs: the proof needs a checkout), release.json,
//   node_modules from `npm ci --omit=dev --prefer-offline` (npm's cache suffices),
// and bf-engine-<version>.tgz beside DIR (one top directory, bf-engine-<version>/).
// It refuses a shipped module that imports a file that is not shipped or a package that
// is not a production dependency, and a dev dependency found in node_modules.
// Start it with `node dist/src/cluster.js` in DIR (deploy/6-node/RUNBOOK.md).
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { parseCli, UsageError, isEntry } from '../lib/args.js';
import { DIST_DIR, DIST_ROOT, ROOT } from '../lib/paths.js';
import { assetFiles } from './assets.js';

/**
 * What runs on a server, relative to dist/: the engine, the simulators (staging), and the
 * operator's tools of tools/ops/ (with the engine modules and tools/lib/ files they import).
 */
export const ENTRIES = ['src/cluster.js', 'src/sim/gateway.js', 'src/sim/provider.js', 'tools/ops/migrate-cli.js', 'tools/ops/deploy-check.js',
  'tools/ops/restore-check.js'];

/** The release's own npm scripts: the checkout's build, install and test from sources it does not carry. */
const RELEASE_SCRIPTS = {
  start: 'node dist/src/cluster.js',
  migrate: 'node dist/tools/ops/migrate-cli.js',
  'deploy:check': 'node dist/tools/ops/deploy-check.js',
  'restore:check': 'node dist/tools/ops/restore-check.js',
};

/** Written into every release; also how the tool recognizes a directory it may replace. */
export const MANIFEST = 'release.json';

/** Under deploy/, files that are not shipped: the local proof, its shell library and its probe run from a checkout. */
const DEPLOY_LEFT_OUT = new Set([path.join('6-node', 'deploy-local.sh'), path.join('6-node', 'lib'), path.join('6-node', 'ha', 'ha-probe.mjs')]);

interface Pkg { name: string; version: string; dependencies?: Record<string, string>; devDependencies?: Record<string, string>; scripts?: Record<string, string> }

export class ReleaseError extends Error {}

const say = (msg: string) => process.stdout.write(`release: ${msg}\n`);
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
/** A path as the operator can read it: relative when under the working directory. */
const rel = (p: string) => {
  const r = path.relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
};

function readPkg(dir = ROOT): Pkg {
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Pkg;
}

/** The package a bare import specifier names (`@scope/name/sub` -> `@scope/name`). */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

// tsc's output: one `import`/`export ... from '...'` statement per declaration (possibly
// over several lines), side-effect imports, and dynamic import() of a literal.
const STATIC = /^(?:import|export)\b[^;'"]*?\bfrom\s*(['"])([^'"]+)\1/gm;
const BARE = /^import\s*(['"])([^'"]+)\1/gm;
const DYNAMIC = /\bimport\(\s*(['"])([^'"]+)\1\s*\)/g;

/** The module specifiers a file imports or re-exports (tsc output, or TypeScript sources: same forms). */
export function specifiers(code: string): string[] {
  return [STATIC, BARE, DYNAMIC].flatMap((re) => [...code.matchAll(re)].map((m) => m[2]!));
}

export interface Closure { modules: string[]; packages: string[] }

/**
 * Every module the entries reach through relative imports (paths relative to `dist`),
 * and the packages they import. Throws on an import of a file that does not exist or of
 * a package that is not a production dependency: either would fail on a server.
 */
export function moduleClosure(dist: string, entries: string[], dependencies: string[]): Closure {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const problems: string[] = [];
  const queue = entries.map((e) => path.join(dist, e));
  for (const file of queue) {
    if (!existsSync(file)) throw new ReleaseError(`${rel(file)} is not built (run npm run build)`);
  }
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        if (!target.startsWith(dist + path.sep)) problems.push(`${rel(file)} imports ${spec}, outside ${rel(dist)}`);
        else if (!existsSync(target)) problems.push(`${rel(file)} imports ${spec}, which does not exist`);
        else queue.push(target);
      } else if (!isBuiltin(spec)) {
        const name = packageOf(spec);
        if (!dependencies.includes(name)) problems.push(`${rel(file)} imports '${spec}', which is not in package.json dependencies`);
        packages.add(name);
      }
    }
  }
  if (problems.length) throw new ReleaseError(`the shipped code would not run:\n  ${problems.join('\n  ')}`);
  return { modules: [...seen].map((f) => path.relative(dist, f)).sort(), packages: [...packages].sort() };
}

/** Files and bytes under a directory (symlinks counted, not followed). */
function sizeOf(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isDirectory()) continue;
    files++;
    bytes += lstatSync(path.join(e.parentPath, e.name)).size;
  }
  return { files, bytes };
}

/** Refuses to replace a directory that is neither empty nor an earlier release. */
function prepareOut(out: string): void {
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new ReleaseError(`${out} exists and is not a directory`);
    const entries = readdirSync(out);
    if (entries.length && !entries.includes(MANIFEST)) throw new ReleaseError(`${out} is not empty and holds no ${MANIFEST}: not replacing it`);
    rmSync(out, { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
}

function run(cmd: string, args: string[], cwd: string): void {
  const res = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  const output = `${res.stdout ?? ''}${res.stderr ?? ''}`.trim();
  if (output) process.stdout.write(`${output.replace(/^/gm, '    ')}\n`);
  if (res.error) throw new ReleaseError(`${cmd} could not run: ${res.error.message}`);
  if (res.status !== 0) throw new ReleaseError(`${cmd} ${args.join(' ')} exited ${res.status}`);
}

function gitCommit(): { commit: string | null; dirty: boolean | null } {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  if (head.status !== 0) return { commit: null, dirty: null };
  const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  return { commit: head.stdout.trim(), dirty: status.status === 0 ? status.stdout.trim() !== '' : null };
}

export interface Release { dir: string; tarball: string; version: string; modules: string[] }

export function buildRelease(outArg?: string): Release {
  const started = Date.now();
  const pkg = readPkg();
  const base = `${pkg.name}-${pkg.version}`;
  const out = path.resolve(outArg ?? path.join(ROOT, 'release', base));
  const tarball = path.join(path.dirname(out), `${base}.tgz`);
  const git = gitCommit();
  say(`${pkg.name} ${pkg.version}${git.commit ? ` (commit ${git.commit.slice(0, 12)}${git.dirty ? ', uncommitted changes' : ''})` : ''} -> ${rel(out)}`);

  // 1. dist: what the entry points reach, their maps, the assets beside them.
  const dist = DIST_ROOT;
  const srcRel = path.relative(dist, DIST_DIR); // "src": the assets are the engine's
  const closure = moduleClosure(dist, ENTRIES, Object.keys(pkg.dependencies ?? {}));
  const dirs = new Set(closure.modules.map((m) => path.dirname(m)));
  const assets = assetFiles().map((a) => path.join(srcRel, a)).filter((a) => dirs.has(path.dirname(a)));
  for (const a of assets) if (!existsSync(path.join(dist, a))) throw new ReleaseError(`dist/${a} is missing (run npm run build)`);
  const maps = closure.modules.map((m) => `${m}.map`).filter((m) => existsSync(path.join(dist, m)));
  prepareOut(out);
  for (const f of [...closure.modules, ...maps, ...assets]) {
    mkdirSync(path.dirname(path.join(out, 'dist', f)), { recursive: true });
    copyFileSync(path.join(dist, f), path.join(out, 'dist', f));
  }
  const taken = new Set([...closure.modules, ...assets]);
  const leftOut = readdirSync(dist, { recursive: true }).map(String).filter((f) => f.endsWith('.js') && !taken.has(f));
  const where = [...new Set(leftOut.map((f) => {
    const parts = f.split(path.sep);
    return parts.slice(0, parts[0] === srcRel || parts[0] === 'tools' ? 2 : 1).join('/');
  }))].sort();
  say(`1. dist/: ${closure.modules.length} modules reached from ${ENTRIES.join(', ')}, their source maps, ${assets.length} assets beside them`);
  say(`   left out: ${leftOut.length} built modules nothing shipped imports (in ${where.join(', ')})`);
  say(`   packages imported: ${closure.packages.join(', ')}`);

  // 2. The files beside dist/.
  const shipped: Pkg = { ...pkg, scripts: RELEASE_SCRIPTS };
  writeFileSync(path.join(out, 'package.json'), `${JSON.stringify(shipped, null, 2)}\n`);
  copyFileSync(path.join(ROOT, 'package-lock.json'), path.join(out, 'package-lock.json'));
  cpSync(path.join(ROOT, 'sql'), path.join(out, 'sql'), { recursive: true });
  cpSync(path.join(ROOT, 'deploy'), path.join(out, 'deploy'), {
    recursive: true, filter: (src) => !DEPLOY_LEFT_OUT.has(path.relative(path.join(ROOT, 'deploy'), src)),
  });
  writeFileSync(path.join(out, MANIFEST), `${JSON.stringify({
    name: pkg.name, version: pkg.version, ...git, built_at: new Date().toISOString(), built_with_node: process.version, entries: ENTRIES.map((e) => `dist/${e}`),
  }, null, 2)}\n`);
  const migrations = readdirSync(path.join(out, 'sql')).filter((f) => f.endsWith('.sql')).length;
  say(`2. package.json (scripts: ${Object.keys(RELEASE_SCRIPTS).join(', ')}), package-lock.json, sql/ (${migrations} migrations), deploy/ (${sizeOf(path.join(out, 'deploy')).files} files), ${MANIFEST}`);

  // 3. Production dependencies only, from npm's cache when it has them.
  say('3. npm ci --omit=dev --prefer-offline');
  run('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], out);
  const present = Object.keys(pkg.devDependencies ?? {}).filter((d) => existsSync(path.join(out, 'node_modules', d)));
  if (present.length) throw new ReleaseError(`dev dependencies in ${rel(out)}/node_modules: ${present.join(', ')}`);
  const missing = Object.keys(pkg.dependencies ?? {}).filter((d) => !existsSync(path.join(out, 'node_modules', d, 'package.json')));
  if (missing.length) throw new ReleaseError(`dependencies not installed: ${missing.join(', ')}`);
  const nm = sizeOf(path.join(out, 'node_modules'));
  say(`   node_modules: ${readdirSync(path.join(out, 'node_modules')).filter((d) => !d.startsWith('.')).length} top-level entries, ${nm.files} files, ${mb(nm.bytes)}; none of the ${Object.keys(pkg.devDependencies ?? {}).length} dev dependencies`);

  // 4. The tarball: one top directory named after the version. The transform leaves
  //    symlink targets (node_modules/.bin) alone (flag S).
  rmSync(tarball, { force: true });
  run('tar', ['-czf', tarball, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', `--transform=s,^\\.,${base},S`, '-C', out, '.'], out);
  const total = sizeOf(out);
  say(`4. ${rel(tarball)}: ${mb(statSync(tarball).size)} (${total.files} files, ${mb(total.bytes)} unpacked, top directory ${base}/)`);
  say(`done in ${((Date.now() - started) / 1000).toFixed(1)} s. On a server: unpack it, then \`node dist/src/cluster.js\` in ${base}/ with the engine's environment (deploy/6-node/RUNBOOK.md)`);
  return { dir: out, tarball, version: pkg.version, modules: closure.modules };
}

function parseArgs(argv: string[]): { out?: string } {
  let out: string | undefined;
  try {
    out = parseCli(argv, { options: { out: { type: 'string' } } }).values.out;
  } catch (err) {
    if (err instanceof UsageError) throw new ReleaseError(err.message);
    throw err;
  }
  if (out === '') throw new ReleaseError('--out needs a directory');
  return out === undefined ? {} : { out };
}

if (isEntry(import.meta.url)) {
  try {
    const args = parseArgs(process.argv.slice(2));
    // Relative to where the operator typed the command (npm runs scripts from the package root).
    buildRelease(args.out && path.resolve(process.env.INIT_CWD ?? process.cwd(), args.out));
  } catch (err) {
    if (!(err instanceof ReleaseError)) throw err;
    process.stderr.write(`release: FAILED: ${err.message}\nusage: npm run release [-- --out DIR]\n`);
    process.exit(1);
  }
}
