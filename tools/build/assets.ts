// `node dist/tools/build/assets.js` (the second half of `npm run build`): tsc emits only
// JavaScript, so the files a module reads beside itself at run time (the dashboard's
// HTML, CSS and browser script) are copied to the same place under dist/src. Modules
// find them next to their own compiled file, so dist/ runs without src/ (a release).
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DIST_DIR, ROOT } from '../../src/paths.js';
import { isEntry } from '../lib/args.js';

export const SRC_DIR = path.join(ROOT, 'src');

/**
 * The assets, relative to src/: every file that is not TypeScript (tsc's) and not
 * Markdown (documentation for people, read by nothing).
 */
export function assetFiles(dir = SRC_DIR): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && !/\.(ts|md)$/.test(e.name))
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

export function copyAssets(from = SRC_DIR, to = DIST_DIR): string[] {
  const files = assetFiles(from);
  for (const f of files) {
    mkdirSync(path.dirname(path.join(to, f)), { recursive: true });
    copyFileSync(path.join(from, f), path.join(to, f));
  }
  return files;
}

if (isEntry(import.meta.url)) {
  const files = copyAssets();
  process.stdout.write(`assets: ${files.length} copied to ${path.relative(process.cwd(), DIST_DIR) || DIST_DIR} (${files.join(', ')})\n`);
}
