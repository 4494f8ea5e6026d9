// The engine stands alone: nothing under src/ imports tools/, bench/ or test/ (a
// release ships dist/src without them, and the engine must never run their code).
// Tools, bench and tests import the engine, never the other way round.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../src/paths.js';
import { specifiers } from '../tools/build/release.js';

const SRC = path.join(ROOT, 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Relative imports that resolve outside src/, as `file -> specifier`. */
function escapes(files: { file: string; code: string }[]): string[] {
  return files.flatMap(({ file, code }) => specifiers(code)
    .filter((s) => s.startsWith('.') && !path.resolve(path.dirname(file), s).startsWith(SRC + path.sep))
    .map((s) => `${path.relative(ROOT, file)} -> ${s}`));
}

t.test('no file under src/ imports anything outside src/', async (t) => {
  const files = tsFiles(SRC);
  t.ok(files.length > 100, `${files.length} engine files scanned`);
  t.same(escapes(files.map((file) => ({ file, code: readFileSync(file, 'utf8') }))), [], 'src/ imports only src/ and packages');
});

t.test('the scan sees an import that leaves src/', async (t) => {
  const probe = path.join(SRC, 'http', 'probe.ts');
  const code = "import { x } from '../../tools/lib/http.js';\nexport { y } from '../router/ids.js';\nconst z = await import('../../bench/run.js');\n";
  t.same(specifiers(code), ['../../tools/lib/http.js', '../router/ids.js', '../../bench/run.js'], 'static, re-export and dynamic imports');
  t.same(escapes([{ file: probe, code }]), ['src/http/probe.ts -> ../../tools/lib/http.js', 'src/http/probe.ts -> ../../bench/run.js'],
    'the ones into tools/ and bench/ escape');
});

t.test('the non-engine code lives outside src/', async (t) => {
  for (const gone of ['chaos', 'tools', 'dev', path.join('sim', 'spawn.ts')]) {
    t.notOk(readdirSync(path.dirname(path.join(SRC, gone))).includes(path.basename(gone)), `no src/${gone}`);
  }
});
